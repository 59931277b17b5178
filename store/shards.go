package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/leakless/leakless/internal/pgdriver"
)

// Shards is one replica's place in a group of shard leases: one lease per
// shard (a location, say), all in the leakless_leases table, so that every
// replica runs a sweeper for every shard and the leading is spread among
// the replicas. Create one Shards per replica and group, and give each
// shard's sweeper [Shards.Lease] of its shard as its leader.
//
// With S shards and R live replicas, a replica leads a shard only while it
// leads fewer than ⌈S/R⌉ of the group's other shards: a replica at its
// share takes no more, and one above it (as when a replica has just
// joined) gives a shard up at its next renewal. At steady state no replica leads more than
// ⌈S/R⌉. A replica is live while it keeps calling Lead on any of its
// shards: each call also renews a membership row, GROUP/member/TOKEN, that
// expires after the ttl, as each shard's lease, GROUP/shard/SHARD, does.
// A replica that stops (crashed, partitioned, paused) therefore loses its
// shards and its membership by the database's clock once the ttl has passed
// since its last Lead, and the other replicas, whose share has grown, take
// its shards at their next renewal: within the ttl and a third of it, with
// a sweeper renewing every third of the ttl.
//
// Like [Lease], it uses the database's clock, never the replicas', and one
// statement per call, with no session state or advisory lock, so it works
// behind a transaction pooler. One shard has at most one leader at a
// time, by the database's clock, as one Lease has.
//
// Every replica should be given the same shards; a replica counts its
// share with its own list. Calls to Lead on one Shards run one at a time
// (each is one short statement), so that a replica counts its own shards
// right.
type Shards struct {
	db     pgdriver.Executor
	sql    *statements
	group  string
	shards []string
	ttl    time.Duration
	holder string        // random token naming this replica in every row it holds
	turn   chan struct{} // one Lead at a time
	err    error         // a bad group, shard list or ttl, reported by every call
}

// ShardLease is one replica's contender for one shard's lease, from
// [Shards.Lease]. Its methods satisfy the sweeper's Leader interface, TTL
// included.
type ShardLease struct {
	s     *Shards
	shard string
	err   error // the group's, or a shard not among its
}

// Shards returns this replica's place in the group of shard leases called
// group, one lease per shard in shards, each held for ttl after each
// successful Lead. Shard names may be any text, "" included; group must
// not be empty or contain "/". An empty group or one with "/", no shards,
// a repeated shard, or a ttl under a millisecond makes Lead, Release and
// Leave return an error wrapping ErrConfig.
func (p *Postgres) Shards(group string, shards []string, ttl time.Duration) *Shards {
	token := make([]byte, 16)
	_, _ = rand.Read(token) // never fails; it crashes the program instead
	s := &Shards{
		db: p.db, sql: &p.sql, group: group, shards: slices.Clone(shards), ttl: ttl,
		holder: hex.EncodeToString(token), turn: make(chan struct{}, 1),
	}
	s.err = s.check()
	return s
}

// Lease returns this replica's contender for shard's lease. Give each
// shard's lease to one sweeper only: leases of one Shards are one holder,
// so two sweepers given the same shard's lease would both lead it. A shard
// not among the group's makes its methods return an error wrapping
// ErrConfig.
func (s *Shards) Lease(shard string) *ShardLease {
	l := &ShardLease{s: s, shard: shard, err: s.err}
	if l.err == nil && !slices.Contains(s.shards, shard) {
		l.err = fmt.Errorf("%w: shard group %q has no shard %q (have %q)", ErrConfig, s.group, shard, s.shards)
	}
	return l
}

// TTL is how long the lease is held after each successful Lead. A sweeper
// renews a leader that reports it every third of it.
func (l *ShardLease) TTL() time.Duration { return l.s.ttl }

// Lead acquires the shard's lease if it is free or expired and this
// replica leads fewer than its share of the group's other shards, renews
// it if this replica has it and is within its share, and gives it up at
// once if this replica has it and leads more than its share. It reports
// whether this replica now leads the shard. It returns (false, nil) while
// another replica's lease is unexpired.
func (l *ShardLease) Lead(ctx context.Context) (bool, error) {
	_, ok, err := l.lead(ctx)
	return ok, err
}

func (l *ShardLease) lead(ctx context.Context) (leaseGrant, bool, error) {
	if err := l.valid(); err != nil {
		return leaseGrant{}, false, err
	}
	s := l.s
	select {
	case s.turn <- struct{}{}:
		defer func() { <-s.turn }()
	case <-ctx.Done():
		return leaseGrant{}, false, fmt.Errorf("store: shard %q of %q: lead: %w", l.shard, s.group, ctx.Err())
	}
	var (
		g       leaseGrant
		leading bool
	)
	err := s.db.QueryRow(ctx, s.sql.shardLead,
		s.shardName(l.shard), s.holder, s.ttl.Microseconds(), s.memberName(),
		s.shardPrefix(), s.memberPrefix(), len(s.shards),
	).Scan(&g.term, &g.from, &g.until, &leading)
	switch {
	case isNoRows(err):
		return leaseGrant{}, false, nil
	case err != nil:
		return leaseGrant{}, false, fmt.Errorf("store: shard %q of %q: lead: %w", l.shard, s.group, err)
	}
	return g, leading, nil
}

// Release gives the shard's lease up at once if this replica has it, so
// another replica need not wait out the ttl. Releasing a lease this
// replica does not have is not an error. The replica stays a member of
// the group; [Shards.Leave] ends that.
func (l *ShardLease) Release(ctx context.Context) error {
	if err := l.valid(); err != nil {
		return err
	}
	s := l.s
	if err := s.db.Exec(ctx, s.sql.release, s.shardName(l.shard), s.holder); err != nil {
		return fmt.Errorf("store: shard %q of %q: release: %w", l.shard, s.group, err)
	}
	return nil
}

// Leave gives up every shard lease this replica holds in the group and its
// membership, so the other replicas count one replica fewer and take its
// shards at their next renewal instead of after the ttl. Call it once this
// replica's sweepers have returned: a later Lead joins the group again.
func (s *Shards) Leave(ctx context.Context) error {
	if err := s.valid(); err != nil {
		return err
	}
	if err := s.db.Exec(ctx, s.sql.shardLeave, s.memberName(), s.shardPrefix(), s.holder); err != nil {
		return fmt.Errorf("store: shards of %q: leave: %w", s.group, err)
	}
	return nil
}

func (s *Shards) shardPrefix() string           { return s.group + "/shard/" }
func (s *Shards) memberPrefix() string          { return s.group + "/member/" }
func (s *Shards) shardName(shard string) string { return s.shardPrefix() + shard }
func (s *Shards) memberName() string            { return s.memberPrefix() + s.holder }

// check validates what Shards was given, once.
func (s *Shards) check() error {
	switch {
	case s.group == "" || !storable(s.group):
		return fmt.Errorf("%w: shard group name %q is empty or not PostgreSQL text", ErrConfig, s.group)
	case strings.Contains(s.group, "/"):
		return fmt.Errorf("%w: shard group %q: the name must not contain /", ErrConfig, s.group)
	case len(s.shards) == 0:
		return fmt.Errorf("%w: shard group %q has no shards", ErrConfig, s.group)
	case s.ttl < time.Millisecond:
		return fmt.Errorf("%w: shard group %q: ttl %v is under a millisecond", ErrConfig, s.group, s.ttl)
	}
	for i, shard := range s.shards {
		if !storable(shard) {
			return fmt.Errorf("%w: shard group %q: shard %q cannot be PostgreSQL text", ErrConfig, s.group, shard)
		}
		if slices.Contains(s.shards[:i], shard) {
			return fmt.Errorf("%w: shard group %q: shard %q is given twice", ErrConfig, s.group, shard)
		}
	}
	return nil
}

func (s *Shards) valid() error { return s.err }

func (l *ShardLease) valid() error { return l.err }
