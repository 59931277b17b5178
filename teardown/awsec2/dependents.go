package awsec2

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"github.com/leakless/leakless/teardown"
)

// Dependent is a kind of resource an instance leaves behind when it is
// terminated, for [WithDependents]. Kinds combine with |.
type Dependent uint16

// The kinds of dependents.
const (
	// Volumes are EBS volumes attached to the instance and not deleted on
	// its termination (attached after launch, or DeleteOnTermination
	// false): deleted once they are available.
	Volumes Dependent = 1 << iota
	// Interfaces are network interfaces attached to the instance and not
	// deleted on its termination: deleted once they are available.
	Interfaces
	// Addresses are Elastic IPs associated with the instance's
	// interfaces: released once they are no longer associated.
	Addresses
	// SpotRequests are persistent spot requests that launched the
	// instance: cancelled before it is terminated, so that nothing
	// launches a replacement.
	SpotRequests

	allKinds = Volumes | Interfaces | Addresses | SpotRequests
)

// untaggedShift moves a kind's bit to its "untagged" flag.
const untaggedShift = 8

// Untagged returns d marked to be touched even without the owner tags: by
// default only dependents carrying every owner tag ([WithOwner]) with its
// value are deleted, released or cancelled.
func (d Dependent) Untagged() Dependent { return d | (d&allKinds)<<untaggedShift }

// String names the kinds in d, such as "volumes|addresses".
func (d Dependent) String() string {
	var names []string
	for _, k := range []struct {
		kind Dependent
		name string
	}{{Volumes, "volumes"}, {Interfaces, "interfaces"}, {Addresses, "addresses"}, {SpotRequests, "spot-requests"}} {
		if d&k.kind != 0 {
			name := k.name
			if d&(k.kind<<untaggedShift) != 0 {
				name += "(untagged)"
			}
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("Dependent(%d)", uint16(d))
	}
	return strings.Join(names, "|")
}

// Defaults for the dependents' buckets. EC2 meters DeleteVolume,
// DeleteNetworkInterface and ReleaseAddress with a bucket of 100 each,
// refilling 5/s, and CancelSpotInstanceRequests with 50 refilling 5/s. The
// client's buckets run 5% under EC2's, burst and rate: EC2 counts a burst
// as it arrives, and starts refilling only once the last call of it has,
// a moment after the client took its tokens; at EC2's own figures the
// calls after the burst would find their tokens a few short.
const (
	DefaultDeleteRatePerSecond = 4.75
	DefaultDeleteBurst         = 95
	DefaultCancelRatePerSecond = 4.75
	DefaultCancelBurst         = 47
	// DefaultInUseTimeout is how long after its instance's termination a
	// dependent may keep answering that it is in use (VolumeInUse,
	// InvalidIPAddress.InUse, DependencyViolation) before that is taken
	// as permanent: an instance shuts down in minutes, so a volume still
	// in use after a quarter of an hour has been reattached.
	DefaultInUseTimeout = 15 * time.Minute
)

// DependentsAPI is the part of *ec2.Client that [WithDependents] needs
// beyond [API]. New refuses WithDependents for an API without it.
type DependentsAPI interface {
	API
	DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, optFns ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
	DescribeNetworkInterfaces(ctx context.Context, in *ec2.DescribeNetworkInterfacesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	DeleteNetworkInterface(ctx context.Context, in *ec2.DeleteNetworkInterfaceInput, optFns ...func(*ec2.Options)) (*ec2.DeleteNetworkInterfaceOutput, error)
	DescribeAddresses(ctx context.Context, in *ec2.DescribeAddressesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	ReleaseAddress(ctx context.Context, in *ec2.ReleaseAddressInput, optFns ...func(*ec2.Options)) (*ec2.ReleaseAddressOutput, error)
	DescribeSpotInstanceRequests(ctx context.Context, in *ec2.DescribeSpotInstanceRequestsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSpotInstanceRequestsOutput, error)
	CancelSpotInstanceRequests(ctx context.Context, in *ec2.CancelSpotInstanceRequestsInput, optFns ...func(*ec2.Options)) (*ec2.CancelSpotInstanceRequestsOutput, error)
}

// ErrDependentsPending is wrapped by the result of a stop whose instance
// is terminated (or on its way) while some of its dependents are not yet
// finished. It wraps [teardown.ErrPending], unless a dependent failed
// permanently (then the result is marked teardown.Permanent): the stop is
// not done, so a caller keeps the instance's record and stops it again
// later, when the termination has freed them; teardown's loops do not
// retry it at once, nor report it as given up.
var ErrDependentsPending = fmt.Errorf("awsec2: the instance's dependents are not finished: %w", teardown.ErrPending)

// errInUse reports a dependent still attached to, or associated with,
// the instance that is shutting down.
var errInUse = errors.New("awsec2: still in use")

// errBusy reports an instance whose dependents another call is finishing.
var errBusy = errors.New("awsec2: another call is finishing this instance's dependents")

// WithDependents makes a stop also finish what the instance owned, of the
// given kinds (every kind when none is given): before terminating, the
// client reads the instance's block-device mappings, network interfaces,
// Elastic IP association and spot request from the DescribeInstances it
// makes for the batch; it cancels a persistent spot request first, so
// that nothing launches a replacement; once DescribeInstances shows the
// instance terminated, it deletes the volumes that were not deleted with
// it as soon as they are available, deletes the interfaces that are
// available and releases the Elastic IPs no longer associated.
//
// Only dependents carrying every owner tag ([WithOwner]) with its value
// are touched, unless a kind is given as [Dependent.Untagged]. A stop is
// not done until its dependents are: its result wraps
// [ErrDependentsPending] (and so [teardown.ErrPending]) until then, so the
// caller keeps its record and tries again later; the client remembers
// what it learned about the instance between calls. A dependent's failure
// is classified as a stop's: not found is gone; in use (VolumeInUse,
// InvalidIPAddress.InUse, DependencyViolation, an interface "currently in
// use") is retryable for [WithInUseTimeout] after the termination,
// permanent after; AuthFailure and UnauthorizedOperation are permanent. A persistent spot
// request that cannot be cancelled keeps its instance running.
//
// It is off by default, needs the [Terminate] mode, owner tags unless
// every kind is Untagged, and an API that is a [DependentsAPI] (an
// *ec2.Client is).
func WithDependents(kinds ...Dependent) Option {
	return func(c *config) {
		var d Dependent
		for _, k := range kinds {
			if k == 0 || k&^(allKinds|allKinds<<untaggedShift) != 0 {
				c.invalid("unknown dependent kind %d", uint16(k))
				return
			}
			d |= k
		}
		if len(kinds) == 0 {
			d = allKinds
		}
		c.dependents = d
	}
}

// WithDeleteRateLimit sets the client-side buckets for DeleteVolume,
// DeleteNetworkInterface and ReleaseAddress requests, one each. The
// default is 4.75/s with a burst of 95, under EC2's 5/s and 100. perSecond may
// be math.Inf(1) to turn them off.
func WithDeleteRateLimit(perSecond float64, burst int) Option {
	return func(c *config) { c.deletes = c.bucket("delete rate limit", perSecond, burst, c.deletes) }
}

// WithCancelRateLimit sets the client-side bucket for
// CancelSpotInstanceRequests requests. The default is 4.75/s with a burst
// of 47, under EC2's 5/s and 50. perSecond may be math.Inf(1) to turn it
// off.
func WithCancelRateLimit(perSecond float64, burst int) Option {
	return func(c *config) { c.cancels = c.bucket("cancel rate limit", perSecond, burst, c.cancels) }
}

// WithInUseTimeout sets how long after its instance's termination a
// dependent answering that it is in use stays retryable; after it the
// answer is permanent. The default is [DefaultInUseTimeout]; d must be
// positive.
func WithInUseTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.invalid("in-use timeout must be positive, got %v", d)
			return
		}
		c.inUseTimeout = d
	}
}

// dependents finishes the dependents of the instances a Client stops.
type dependents struct {
	api      DependentsAPI
	kinds    Dependent
	owner    map[string]string
	inUseFor time.Duration

	// One bucket per action, as EC2 meters them.
	deleteVolume, deleteInterface, releaseAddress *rate.Limiter
	cancelSpot                                    *rate.Limiter
	describeVolumes, describeInterfaces           *rate.Limiter
	describeAddresses, describeSpots              *rate.Limiter

	mu       sync.Mutex
	owed     map[string]*owed // by instance id: what is known and not yet finished
	prunedAt time.Time        // when release last dropped the stale records
}

// newDependents checks the configuration and builds the dependents'
// state: nil when the API has no dependents' calls, finishing nothing at
// stops (only serving the inventory) when WithDependents was not given.
func newDependents(api API, c config) (*dependents, error) {
	dapi, ok := api.(DependentsAPI)
	switch {
	case c.dependents == 0 && !ok:
		return nil, nil
	case c.dependents == 0:
		// Off, but the buckets serve the dependents inventory.
	case !ok:
		return nil, fmt.Errorf("awsec2: WithDependents needs an API with the volume, interface, address and spot request calls (a DependentsAPI): %w", teardown.ErrConfig)
	case c.mode != Terminate:
		return nil, fmt.Errorf("awsec2: WithDependents needs the Terminate mode: a stopped instance keeps its dependents: %w", teardown.ErrConfig)
	case len(c.owner) == 0 && c.dependents&allKinds != (c.dependents>>untaggedShift)&allKinds:
		return nil, fmt.Errorf("awsec2: WithDependents needs WithOwner, unless every kind is Untagged: %w", teardown.ErrConfig)
	}
	lim := func(b bucket) *rate.Limiter { return rate.NewLimiter(limit(b.perSecond), b.burst) }
	return &dependents{
		api: dapi, kinds: c.dependents, owner: c.owner, inUseFor: c.inUseTimeout,
		deleteVolume: lim(c.deletes), deleteInterface: lim(c.deletes), releaseAddress: lim(c.deletes),
		cancelSpot:      lim(c.cancels),
		describeVolumes: lim(c.describes), describeInterfaces: lim(c.describes),
		describeAddresses: lim(c.describes), describeSpots: lim(c.describes),
		owed: map[string]*owed{},
	}, nil
}

// on reports whether stops finish dependents.
func (d *dependents) on() bool { return d != nil && d.kinds != 0 }

// has reports whether kind k is to be finished.
func (d *dependents) has(k Dependent) bool { return d.kinds&k != 0 }

// owns reports whether a dependent of kind k with tags may be touched.
func (d *dependents) owns(k Dependent, tags []types.Tag) bool {
	if d.kinds&(k<<untaggedShift) != 0 {
		return true
	}
	for key, v := range d.owner {
		if !slices.ContainsFunc(tags, func(t types.Tag) bool { return aws.ToString(t.Key) == key && aws.ToString(t.Value) == v }) {
			return false
		}
	}
	return true
}

// learnedFor is how long the client trusts what it learned of an
// instance whose stop has not succeeded yet, so that a retry sends the
// termination without describing it again: a retry comes within seconds,
// and nothing an instance owns at launch changes in a minute (a volume
// attached meanwhile is left to the dependents sweep).
const learnedFor = time.Minute

// owed is what one instance left to finish.
type owed struct {
	busy         bool // a call is working on it (guarded by dependents.mu)
	learned      bool // its dependents were read from DescribeInstances
	learnedAt    time.Time
	terminated   bool // DescribeInstances showed it terminated
	terminatedAt time.Time
	spot         string // its persistent spot request, until cancelled or found not to need it
	items        []*item
}

// item is one dependent left to finish.
type item struct {
	kind Dependent
	id   string // volume, interface or allocation id; a public IP until the allocation is known
	ip   string // an Elastic IP's public address
	err  error  // why it is not finished yet
}

func (o *owed) pending() bool { return o.spot != "" || len(o.items) > 0 }

// claim marks each id's record busy, making records as needed; an id that
// another call is working on gets errBusy in res and is left out. A
// record that owes nothing and was learned longer than learnedFor ago is
// started afresh.
func (d *dependents) claim(ids []string, res map[string]error, now time.Time) map[string]*owed {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]*owed, len(ids))
	for _, id := range ids {
		o := d.owed[id]
		if o != nil && !o.busy && !o.pending() && now.Sub(o.learnedAt) > learnedFor {
			o = nil
		}
		if o == nil {
			o = &owed{}
			d.owed[id] = o
		}
		if o.busy {
			res[id] = fmt.Errorf("awsec2: terminate %s: %w", id, errBusy)
			continue
		}
		o.busy = true
		out[id] = o
	}
	return out
}

// release ends a call's work on its records, forgetting those finished:
// owing nothing, and stopped (or gone) by this call or never learned (an
// instance EC2 did not describe, which the next call describes again). A
// record that owes nothing but whose stop failed is kept, so that the
// retry need not describe the instance again; records older than
// learnedFor that owe nothing are dropped, looked for once every
// learnedFor rather than on every call.
func (d *dependents) release(claimed map[string]*owed, res map[string]error, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, o := range claimed {
		o.busy = false
		err := res[id]
		if !o.pending() && (!o.learned || err == nil || errors.Is(err, teardown.ErrGone)) {
			delete(d.owed, id)
		}
	}
	if now.Sub(d.prunedAt) < learnedFor {
		return
	}
	d.prunedAt = now
	for id, o := range d.owed {
		if !o.busy && !o.pending() && now.Sub(o.learnedAt) > learnedFor {
			delete(d.owed, id)
		}
	}
}

// stopOwning terminates ids, a batch, and finishes their dependents (see
// WithDependents), recording a result for each.
func (c *Client) stopOwning(ctx context.Context, ids []string, res map[string]error) {
	d := c.deps
	now := time.Now()
	claimed := d.claim(ids, res, now)
	defer func() { d.release(claimed, res, time.Now()) }()

	// One DescribeInstances for the batch: it learns each instance's
	// dependents and confirms the termination of those sent before. An
	// instance learned owing nothing is not described again.
	var look []string
	for _, id := range ids {
		if o := claimed[id]; o != nil && !o.terminated && (!o.learned || o.pending()) {
			look = append(look, id)
		}
	}
	err := c.byID(ctx, look, func(in types.Instance) {
		o := claimed[aws.ToString(in.InstanceId)]
		if o == nil {
			return
		}
		if !o.learned {
			o.learned, o.learnedAt = true, now
			d.learn(o, in)
		}
		if in.State != nil && in.State.Name == types.InstanceStateNameTerminated {
			o.terminated, o.terminatedAt = true, now
		}
	})
	held := d.cancelSpots(ctx, claimed, res)
	if err != nil {
		// Only those it was to learn or confirm wait for the next call;
		// those learned owing nothing are sent all the same.
		if held == nil {
			held = map[string]bool{}
		}
		for _, id := range look {
			held[id] = true
			res[id] = fmt.Errorf("awsec2: terminate %s: reading its dependents: %w", id, err)
		}
	}
	var send []string
	for _, id := range ids {
		o := claimed[id]
		switch {
		case o == nil || held[id]:
		case o.terminated:
			res[id] = nil
		default:
			send = append(send, id)
		}
	}
	c.settle(ctx, send, res, false)

	var finish []string
	for _, id := range ids {
		o := claimed[id]
		if o == nil || held[id] || !o.pending() {
			continue
		}
		if err := res[id]; err != nil && !errors.Is(err, teardown.ErrGone) {
			continue
		}
		if !o.terminated {
			// Its volumes and interfaces are freed only once it is
			// terminated: the next call's describe will tell.
			res[id] = fmt.Errorf("awsec2: terminate %s: waiting for the termination to finish: %w", id, ErrDependentsPending)
			continue
		}
		finish = append(finish, id)
	}
	d.finish(ctx, finish, claimed, now)
	for _, id := range finish {
		if o := claimed[id]; o.pending() {
			res[id] = o.failure(id)
		}
	}
}

// learn records the dependents DescribeInstances lists for in.
func (d *dependents) learn(o *owed, in types.Instance) {
	if d.has(Volumes) {
		for _, m := range in.BlockDeviceMappings {
			if m.Ebs != nil && m.Ebs.VolumeId != nil && !aws.ToBool(m.Ebs.DeleteOnTermination) {
				o.items = append(o.items, &item{kind: Volumes, id: *m.Ebs.VolumeId})
			}
		}
	}
	for _, n := range in.NetworkInterfaces {
		if d.has(Interfaces) && n.NetworkInterfaceId != nil && n.Attachment != nil && !aws.ToBool(n.Attachment.DeleteOnTermination) {
			o.items = append(o.items, &item{kind: Interfaces, id: *n.NetworkInterfaceId})
		}
		// An address EC2 owns ("amazon") is the instance's own public IP,
		// gone with it; an Elastic IP names the account.
		if a := n.Association; d.has(Addresses) && a != nil && a.PublicIp != nil && aws.ToString(a.IpOwnerId) != "amazon" {
			o.items = append(o.items, &item{kind: Addresses, ip: *a.PublicIp})
		}
	}
	if d.has(SpotRequests) && in.SpotInstanceRequestId != nil {
		o.spot = *in.SpotInstanceRequestId
	}
}

// cancelSpots cancels the persistent spot requests of the instances about
// to be terminated and reports the instances that must not be: their
// request could not be cancelled, and would launch a replacement.
func (d *dependents) cancelSpots(ctx context.Context, claimed map[string]*owed, res map[string]error) map[string]bool {
	byRequest := map[string][]string{}
	var sirs []string
	for id, o := range claimed {
		if o.spot != "" && !o.terminated {
			if byRequest[o.spot] == nil {
				sirs = append(sirs, o.spot)
			}
			byRequest[o.spot] = append(byRequest[o.spot], id)
		}
	}
	if len(sirs) == 0 {
		return nil
	}
	slices.Sort(sirs)
	held := map[string]bool{}
	fail := func(sir string, err error) {
		for _, id := range byRequest[sir] {
			held[id] = true
			res[id] = fmt.Errorf("awsec2: terminate %s: cancelling spot request %s first: %w", id, sir, err)
			if classifyDependent(err) == depPermanent {
				res[id] = teardown.Permanent(res[id])
			}
		}
	}
	done := func(sir string) {
		for _, id := range byRequest[sir] {
			claimed[id].spot = ""
		}
	}
	var cancel []string
	for chunk := range slices.Chunk(sirs, maxFilterValues) {
		found := map[string]types.SpotInstanceRequest{}
		err := d.spotPages(ctx, idFilter("spot-instance-request-id", chunk), func(r types.SpotInstanceRequest) { found[aws.ToString(r.SpotInstanceRequestId)] = r })
		for _, sir := range chunk {
			r, ok := found[sir]
			switch {
			case err != nil:
				fail(sir, err)
			case !ok, !d.owns(SpotRequests, r.Tags), r.Type != types.SpotInstanceTypePersistent:
				// Gone, not ours, or one-time: closed with its instance.
				done(sir)
			case r.State == types.SpotInstanceStateOpen || r.State == types.SpotInstanceStateActive || r.State == types.SpotInstanceStateDisabled:
				cancel = append(cancel, sir)
			default:
				done(sir)
			}
		}
	}
	for chunk := range slices.Chunk(cancel, maxFilterValues) {
		if err := d.cancel(ctx, chunk); err != nil {
			if classifyDependent(err) != depGone {
				for _, sir := range chunk {
					fail(sir, err)
				}
				continue
			}
			// One unknown id fails the whole call: try each on its own.
			for _, sir := range chunk {
				switch err := d.cancel(ctx, []string{sir}); classifyDependent(err) {
				case depDone, depGone:
					done(sir)
				default:
					fail(sir, err)
				}
			}
			continue
		}
		for _, sir := range chunk {
			done(sir)
		}
	}
	return held
}

func (d *dependents) cancel(ctx context.Context, sirs []string) error {
	if err := wait(ctx, d.cancelSpot, 1); err != nil {
		return err
	}
	_, err := d.api.CancelSpotInstanceRequests(ctx, &ec2.CancelSpotInstanceRequestsInput{SpotInstanceRequestIds: sirs}, noRetry)
	d.drainOn(err, d.cancelSpot)
	return err
}

// drainOn empties l when err is a throttling answer.
func (d *dependents) drainOn(err error, l *rate.Limiter) {
	if kind, _ := classify(err); err != nil && kind == throttled {
		drain(l)
	}
}

// finish deletes the volumes and interfaces of the terminated instances
// ids that are available, then releases their Elastic IPs no longer
// associated, recording on each item why it is not finished.
func (d *dependents) finish(ctx context.Context, ids []string, claimed map[string]*owed, now time.Time) {
	if len(ids) == 0 {
		return
	}
	var vols, enis, ips []*item
	owner := map[*item]string{}
	for _, id := range ids {
		for _, it := range claimed[id].items {
			owner[it] = id
			switch it.kind {
			case Volumes:
				vols = append(vols, it)
			case Interfaces:
				enis = append(enis, it)
			case Addresses:
				ips = append(ips, it)
			}
		}
	}
	// Each kind has its own bucket, so each its own workers: the releases
	// do not wait behind the deletes. An address still on an interface
	// deleted now is in use until the next call.
	work := [][]func(){d.volumeWork(ctx, vols, owner), d.interfaceWork(ctx, enis, owner), d.addressWork(ctx, ips, owner, claimed)}
	var wg sync.WaitGroup
	for _, w := range work {
		wg.Go(func() { runAll(w) })
	}
	wg.Wait()

	for _, id := range ids {
		o := claimed[id]
		o.items = slices.DeleteFunc(o.items, func(it *item) bool {
			if it.err == nil {
				return true
			}
			if errors.Is(it.err, errInUse) && now.Sub(o.terminatedAt) > d.inUseFor {
				it.err = teardown.Permanent(fmt.Errorf("%w for %v after its instance was terminated", it.err, d.inUseFor))
			}
			return false
		})
	}
}

// dependentWorkers bounds the delete calls in flight for one batch.
const dependentWorkers = 8

// runAll runs fns on at most dependentWorkers goroutines and returns when
// all have returned.
func runAll(fns []func()) {
	var wg sync.WaitGroup
	next := make(chan func())
	for range min(dependentWorkers, len(fns)) {
		wg.Go(func() {
			for f := range next {
				f()
			}
		})
	}
	for _, f := range fns {
		next <- f
	}
	close(next)
	wg.Wait()
}

// volumeWork describes vols and returns the deletes of those available.
func (d *dependents) volumeWork(ctx context.Context, vols []*item, owner map[*item]string) []func() {
	byID := map[string]*item{}
	var ids []string
	for _, it := range vols {
		byID[it.id] = it
		ids = append(ids, it.id)
	}
	found := map[string]types.Volume{}
	err := describeChunks(ids, func(chunk []string) error {
		return d.volumePages(ctx, idFilter("volume-id", chunk), func(v types.Volume) { found[aws.ToString(v.VolumeId)] = v })
	})
	var work []func()
	for _, it := range vols {
		v, ok := found[it.id]
		switch {
		case err != nil:
			it.err = fmt.Errorf("describing volume %s: %w", it.id, err)
		case !ok || v.State == types.VolumeStateDeleting || v.State == types.VolumeStateDeleted:
			it.err = nil // gone
		case !d.owns(Volumes, v.Tags):
			it.err = nil // not ours: never touched
		case v.State == types.VolumeStateInUse:
			if slices.ContainsFunc(v.Attachments, func(a types.VolumeAttachment) bool { return aws.ToString(a.InstanceId) != owner[it] }) {
				it.err = nil // attached to another instance since: in use, and not ours to take
				continue
			}
			it.err = fmt.Errorf("volume %s: %w by %s", it.id, errInUse, owner[it])
		default:
			work = append(work, func() {
				err := wait(ctx, d.deleteVolume, 1)
				if err == nil {
					_, err = d.api.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(it.id)}, noRetry)
					d.drainOn(err, d.deleteVolume)
				}
				it.err = dependentResult("delete volume "+it.id, err)
			})
		}
	}
	return work
}

// interfaceWork describes enis and returns the deletes of those available.
func (d *dependents) interfaceWork(ctx context.Context, enis []*item, owner map[*item]string) []func() {
	var ids []string
	for _, it := range enis {
		ids = append(ids, it.id)
	}
	found := map[string]types.NetworkInterface{}
	err := describeChunks(ids, func(chunk []string) error {
		return d.interfacePages(ctx, idFilter("network-interface-id", chunk), func(n types.NetworkInterface) { found[aws.ToString(n.NetworkInterfaceId)] = n })
	})
	var work []func()
	for _, it := range enis {
		n, ok := found[it.id]
		switch {
		case err != nil:
			it.err = fmt.Errorf("describing network interface %s: %w", it.id, err)
		case !ok:
			it.err = nil
		case !d.owns(Interfaces, n.TagSet):
			it.err = nil
		case n.Status != types.NetworkInterfaceStatusAvailable:
			if n.Attachment != nil && aws.ToString(n.Attachment.InstanceId) != "" && aws.ToString(n.Attachment.InstanceId) != owner[it] {
				it.err = nil // attached elsewhere since
				continue
			}
			it.err = fmt.Errorf("network interface %s: %w by %s", it.id, errInUse, owner[it])
		default:
			work = append(work, func() {
				err := wait(ctx, d.deleteInterface, 1)
				if err == nil {
					_, err = d.api.DeleteNetworkInterface(ctx, &ec2.DeleteNetworkInterfaceInput{NetworkInterfaceId: aws.String(it.id)}, noRetry)
					d.drainOn(err, d.deleteInterface)
				}
				it.err = dependentResult("delete network interface "+it.id, err)
			})
		}
	}
	return work
}

// addressWork describes the Elastic IPs ips and returns the releases of
// those no longer associated.
func (d *dependents) addressWork(ctx context.Context, ips []*item, owner map[*item]string, claimed map[string]*owed) []func() {
	var publics []string
	for _, it := range ips {
		publics = append(publics, it.ip)
	}
	found := map[string]types.Address{}
	err := describeChunks(publics, func(chunk []string) error {
		return d.addresses(ctx, idFilter("public-ip", chunk), func(a types.Address) { found[aws.ToString(a.PublicIp)] = a })
	})
	var work []func()
	for _, it := range ips {
		a, ok := found[it.ip]
		switch {
		case err != nil:
			it.err = fmt.Errorf("describing address %s: %w", it.ip, err)
		case !ok || a.AllocationId == nil:
			it.err = nil
		case !d.owns(Addresses, a.Tags):
			it.err = nil
		case a.AssociationId != nil:
			if !d.associatedWith(a, owner[it], claimed[owner[it]]) {
				it.err = nil // associated with something else since: not ours to release
				continue
			}
			it.err = fmt.Errorf("address %s: %w by %s", it.ip, errInUse, owner[it])
		default:
			it.id = *a.AllocationId
			work = append(work, func() {
				err := wait(ctx, d.releaseAddress, 1)
				if err == nil {
					_, err = d.api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(it.id)}, noRetry)
					d.drainOn(err, d.releaseAddress)
				}
				it.err = dependentResult("release address "+it.ip, err)
			})
		}
	}
	return work
}

// associatedWith reports whether a is still associated with the instance
// id or one of its interfaces.
func (d *dependents) associatedWith(a types.Address, id string, o *owed) bool {
	if aws.ToString(a.InstanceId) == id {
		return true
	}
	eni := aws.ToString(a.NetworkInterfaceId)
	if eni == "" {
		return aws.ToString(a.InstanceId) == ""
	}
	return o != nil && slices.ContainsFunc(o.items, func(it *item) bool { return it.kind == Interfaces && it.id == eni })
}

// idFilter is the filter naming ids.
func idFilter(name string, ids []string) []types.Filter {
	return []types.Filter{{Name: aws.String(name), Values: ids}}
}

// addresses calls f for every Elastic IP the filters match.
func (d *dependents) addresses(ctx context.Context, filters []types.Filter, f func(types.Address)) error {
	if err := wait(ctx, d.describeAddresses, 1); err != nil {
		return err
	}
	out, err := d.api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: filters}, noRetry)
	d.drainOn(err, d.describeAddresses)
	if err != nil {
		return err
	}
	for _, a := range out.Addresses {
		f(a)
	}
	return nil
}

// describeChunks calls f for ids in chunks of at most maxFilterValues,
// stopping at the first error.
func describeChunks(ids []string, f func([]string) error) error {
	for chunk := range slices.Chunk(ids, maxFilterValues) {
		if err := f(chunk); err != nil {
			return err
		}
	}
	return nil
}

func (d *dependents) volumePages(ctx context.Context, filters []types.Filter, f func(types.Volume)) error {
	var token *string
	for {
		if err := wait(ctx, d.describeVolumes, 1); err != nil {
			return err
		}
		out, err := d.api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
			Filters: filters, MaxResults: aws.Int32(500), NextToken: token,
		}, noRetry)
		d.drainOn(err, d.describeVolumes)
		if err != nil {
			return err
		}
		for _, v := range out.Volumes {
			f(v)
		}
		if token = out.NextToken; aws.ToString(token) == "" {
			return nil
		}
	}
}

func (d *dependents) interfacePages(ctx context.Context, filters []types.Filter, f func(types.NetworkInterface)) error {
	var token *string
	for {
		if err := wait(ctx, d.describeInterfaces, 1); err != nil {
			return err
		}
		out, err := d.api.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
			Filters: filters, MaxResults: aws.Int32(1000), NextToken: token,
		}, noRetry)
		d.drainOn(err, d.describeInterfaces)
		if err != nil {
			return err
		}
		for _, n := range out.NetworkInterfaces {
			f(n)
		}
		if token = out.NextToken; aws.ToString(token) == "" {
			return nil
		}
	}
}

func (d *dependents) spotPages(ctx context.Context, filters []types.Filter, f func(types.SpotInstanceRequest)) error {
	var token *string
	for {
		if err := wait(ctx, d.describeSpots, 1); err != nil {
			return err
		}
		out, err := d.api.DescribeSpotInstanceRequests(ctx, &ec2.DescribeSpotInstanceRequestsInput{
			Filters: filters, MaxResults: aws.Int32(1000), NextToken: token,
		}, noRetry)
		d.drainOn(err, d.describeSpots)
		if err != nil {
			return err
		}
		for _, r := range out.SpotInstanceRequests {
			f(r)
		}
		if token = out.NextToken; aws.ToString(token) == "" {
			return nil
		}
	}
}

// depClass is what an error means for one dependent.
type depClass int

const (
	depDone depClass = iota
	depGone
	depInUse
	depPermanent
	depRetryable
)

// dependentCodes classify the answers to the dependents' calls; codes
// starting "InvalidParameter" are permanent, except an interface
// "currently in use", and anything else is retryable.
var dependentCodes = map[string]depClass{
	"InvalidVolume.NotFound":                depGone,
	"InvalidAllocationID.NotFound":          depGone,
	"InvalidAddress.NotFound":               depGone,
	"InvalidNetworkInterfaceID.NotFound":    depGone,
	"InvalidSpotInstanceRequestID.NotFound": depGone,
	"VolumeInUse":                           depInUse, // still attached while the instance shuts down
	"InvalidIPAddress.InUse":                depInUse, // still on the instance's interface
	"DependencyViolation":                   depInUse,
	"InvalidNetworkInterface.InUse":         depInUse,
	"AuthFailure":                           depPermanent,
	"UnauthorizedOperation":                 depPermanent, // IAM: a tag condition, or the action denied
	"OperationNotPermitted":                 depPermanent,
	"InvalidVolumeID.Malformed":             depPermanent,
	"InvalidAllocationID.Malformed":         depPermanent,
	"InvalidNetworkInterfaceID.Malformed":   depPermanent,
}

// classifyDependent says what err, the answer to a dependent's call, means.
func classifyDependent(err error) depClass {
	if err == nil {
		return depDone
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return depRetryable
	}
	code := api.ErrorCode()
	if k, ok := dependentCodes[code]; ok {
		return k
	}
	if strings.HasPrefix(code, "InvalidParameter") {
		// EC2 answers a delete of an attached interface so.
		if strings.Contains(api.ErrorMessage(), "currently in use") {
			return depInUse
		}
		return depPermanent
	}
	return depRetryable
}

// dependentResult turns the answer to what (such as "delete volume
// vol-1") into the item's error: nil when done or gone.
func dependentResult(what string, err error) error {
	switch classifyDependent(err) {
	case depDone, depGone:
		return nil
	case depInUse:
		return fmt.Errorf("%s: %w: %w", what, errInUse, err)
	case depPermanent:
		return teardown.Permanent(fmt.Errorf("%s: %w", what, err))
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// failure is the stop's result while o's items are not all finished:
// permanent when one of them failed permanently, else retryable.
func (o *owed) failure(id string) error {
	errs := make([]error, 0, len(o.items))
	permanent := false
	for _, it := range o.items {
		errs = append(errs, it.err)
		permanent = permanent || teardown.IsPermanent(it.err)
	}
	err := fmt.Errorf("awsec2: terminate %s: %d not finished: %w: %w", id, len(o.items), ErrDependentsPending, errors.Join(errs...))
	if permanent {
		return teardown.Permanent(err)
	}
	return err
}
