package teardown

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Defaults for [Coalesce].
const (
	DefaultCoalesceIdle    = 100 * time.Millisecond
	DefaultCoalesceMaxWait = 1 * time.Second
	DefaultCoalesceMaxIDs  = 500
)

// ErrClosed is returned by a [Coalescer] that has been closed.
var ErrClosed = errors.New("teardown: coalescer is closed")

// CoalesceOption configures [Coalesce].
type CoalesceOption func(*coalesceConfig)

type coalesceConfig struct {
	idle, maxWait time.Duration
	maxIDs        int
	err           error
}

// WithCoalesceWindow sets how long a batch waits for more ids: it is sent
// once idle has passed with no new id, or maxWait after its first id,
// whichever comes first. The default is 100ms idle, 1s at most; both must
// be positive and idle must not exceed maxWait.
func WithCoalesceWindow(idle, maxWait time.Duration) CoalesceOption {
	return func(c *coalesceConfig) {
		if idle <= 0 || maxWait <= 0 || idle > maxWait {
			c.err = fmt.Errorf("%w: coalesce window idle %v, max %v: both must be positive, idle at most max", ErrConfig, idle, maxWait)
			return
		}
		c.idle, c.maxWait = idle, maxWait
	}
}

// WithCoalesceMaxIDs sets how many distinct ids make a batch full; a full
// batch is sent at once. The default is 500, one EC2 TerminateInstances
// call's worth; n must be at least 1.
func WithCoalesceMaxIDs(n int) CoalesceOption {
	return func(c *coalesceConfig) {
		if n < 1 {
			c.err = fmt.Errorf("%w: coalesce max ids %d, want at least 1", ErrConfig, n)
			return
		}
		c.maxIDs = n
	}
}

// Coalescer is a [BatchStopper] that gathers the stops of concurrent
// callers into batches. Create it with [Coalesce] and Close it when done.
// It is safe for concurrent use.
type Coalescer struct {
	bs  BatchStopper
	cfg coalesceConfig

	mu      sync.Mutex
	open    *batch // the batch gathering ids, or nil
	closed  bool
	flights sync.WaitGroup // batches being sent
}

// batch is one StopBatch call in the making: its ids, in arrival order,
// and the callers waiting on each.
type batch struct {
	ids     []string
	waiting map[string]int // callers still waiting, by id
	results map[string]error
	done    chan struct{} // closed once results is filled
	first   time.Time
	timer   *time.Timer
	sent    bool

	// Deadlines of the callers, so the call ends when the last one would
	// have given up; a caller without a deadline keeps it open-ended.
	latest      time.Time
	anyOpenEnds bool
	cancel      context.CancelFunc // ends the call once no caller waits
	ctx         context.Context
}

// Coalesce returns a Coalescer over bs. A burst of request handlers each
// stopping one instance would spend one call of EC2's request budget
// (5 calls a second for TerminateInstances) per instance; gathered, a
// thousand stops are two calls. Each caller gets its own id's result and
// keeps its own context: a caller whose context ends stops waiting (and its
// id is dropped from a batch not yet sent, unless another caller waits on
// it). Bad options are an error wrapping [ErrConfig].
func Coalesce(bs BatchStopper, opts ...CoalesceOption) (*Coalescer, error) {
	if bs == nil {
		return nil, fmt.Errorf("%w: batch stopper is nil", ErrConfig)
	}
	cfg := coalesceConfig{idle: DefaultCoalesceIdle, maxWait: DefaultCoalesceMaxWait, maxIDs: DefaultCoalesceMaxIDs}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	return &Coalescer{bs: bs, cfg: cfg}, nil
}

// Stop adds id to the batch being gathered and waits for its result, or
// for ctx to end.
func (c *Coalescer) Stop(ctx context.Context, id string) error {
	return c.StopBatch(ctx, []string{id})[id]
}

// StopBatch adds ids to the batch being gathered (a full batch is sent and
// a new one started) and waits for every result, or for ctx to end, which
// leaves the ids not yet answered with ctx's cause. The result has one
// entry per distinct id.
func (c *Coalescer) StopBatch(ctx context.Context, ids []string) map[string]error {
	res := make(map[string]error, len(ids))
	var joined []*batch
	var joinedIDs [][]string

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		for _, id := range ids {
			res[id] = ErrClosed
		}
		return res
	}
	for _, id := range ids {
		if _, dup := res[id]; dup {
			continue
		}
		res[id] = nil
		if id == "" {
			res[id] = errEmptyID
			continue
		}
		b := c.openLocked()
		if _, in := b.waiting[id]; !in {
			b.ids = append(b.ids, id)
		}
		b.waiting[id]++
		b.join(ctx)
		if len(joined) == 0 || joined[len(joined)-1] != b {
			joined = append(joined, b)
			joinedIDs = append(joinedIDs, nil)
		}
		joinedIDs[len(joinedIDs)-1] = append(joinedIDs[len(joinedIDs)-1], id)
		if len(b.ids) >= c.cfg.maxIDs {
			c.sendLocked(b)
		} else {
			c.scheduleLocked(b)
		}
	}
	c.mu.Unlock()

	for i, b := range joined {
		select {
		case <-b.done:
			for _, id := range joinedIDs[i] {
				res[id] = b.results[id]
			}
		case <-ctx.Done():
			cause := context.Cause(ctx)
			for j := i; j < len(joined); j++ {
				c.leave(joined[j], joinedIDs[j])
			}
			for _, ids := range joinedIDs[i:] {
				for _, id := range ids {
					res[id] = cause
				}
			}
			return res
		}
	}
	return res
}

// Close sends the batch being gathered at once and waits for every batch
// in flight; later stops fail with [ErrClosed]. No goroutine of the
// Coalescer runs once it returns.
func (c *Coalescer) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.open != nil {
		c.sendLocked(c.open)
	}
	c.mu.Unlock()
	c.flights.Wait()
	return nil
}

// openLocked returns the batch gathering ids, starting one if needed.
func (c *Coalescer) openLocked() *batch {
	if c.open == nil {
		c.open = &batch{waiting: map[string]int{}, done: make(chan struct{}), first: time.Now()}
	}
	return c.open
}

// scheduleLocked sets b to be sent when it has been idle long enough, or
// has waited its longest.
func (c *Coalescer) scheduleLocked(b *batch) {
	wait := min(c.cfg.idle, time.Until(b.first.Add(c.cfg.maxWait)))
	if b.timer == nil {
		b.timer = time.AfterFunc(wait, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !b.sent {
				c.sendLocked(b)
			}
		})
		return
	}
	b.timer.Reset(wait)
}

// sendLocked closes b to new ids and makes its StopBatch call.
func (c *Coalescer) sendLocked(b *batch) {
	if b.sent {
		return
	}
	b.sent = true
	if b.timer != nil {
		b.timer.Stop()
	}
	if c.open == b {
		c.open = nil
	}
	ids := b.ids[:0:0]
	for _, id := range b.ids {
		if b.waiting[id] > 0 {
			ids = append(ids, id)
		}
	}
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !b.anyOpenEnds && !b.latest.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, b.latest)
	}
	ctx, cancelAll := context.WithCancel(ctx)
	b.ctx, b.cancel = ctx, func() { cancelAll(); cancel() }
	if len(ids) == 0 {
		b.results = map[string]error{}
		b.cancel()
		close(b.done)
		return
	}
	c.flights.Add(1)
	go func() {
		defer c.flights.Done()
		defer b.cancel()
		results := c.bs.StopBatch(ctx, ids)
		for _, id := range ids {
			if _, ok := results[id]; !ok {
				results[id] = errNoResult
			}
		}
		c.mu.Lock()
		b.results = results
		c.mu.Unlock()
		close(b.done)
	}()
}

// join records one more caller's deadline on b.
func (b *batch) join(ctx context.Context) {
	d, ok := ctx.Deadline()
	if !ok {
		b.anyOpenEnds = true
		return
	}
	if d.After(b.latest) {
		b.latest = d
	}
}

// leave takes a caller that stopped waiting off b: an id nobody waits for
// is not sent, and a call nobody waits for is ended.
func (c *Coalescer) leave(b *batch, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if b.waiting[id] > 0 {
			b.waiting[id]--
		}
	}
	if !b.sent {
		return
	}
	for _, n := range b.waiting {
		if n > 0 {
			return
		}
	}
	b.cancel()
}

var _ BatchStopper = (*Coalescer)(nil)
