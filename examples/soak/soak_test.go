package soak

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leakless/leakless/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var soakFlag = flag.Bool("soak", false, "run the soak ten times bigger (as LEAKLESS_SOAK=1 does)")

// Sizes. The ordinary size fits well within two minutes under the race
// detector on two cores; the big one is ten times it.
const (
	lifecycles = 2000
	workers    = 72
	bigFactor  = 10
)

// size returns the number of lifecycles to drive and whether this is the
// big run.
func size() (int, bool) {
	if *soakFlag || os.Getenv("LEAKLESS_SOAK") == "1" {
		return lifecycles * bigFactor, true
	}
	if testing.Short() {
		return lifecycles / 10, false
	}
	return lifecycles, false
}

// seed returns LEAKLESS_SOAK_SEED, or a fresh seed; the figures print it.
func seed(t *testing.T) uint64 {
	if s := os.Getenv("LEAKLESS_SOAK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("LEAKLESS_SOAK_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestSoak drives workspace lifecycles through two API replicas while three
// sweeper replicas, EC2 and the database all misbehave, then lets the
// sweepers drain and checks that nothing leaked, nothing live was
// terminated and no give-up went unrecorded.
func TestSoak(t *testing.T) {
	n, big := size()
	sd := seed(t)
	start := time.Now()
	w := newWorld(t, sd)
	ctx := t.Context()

	// The run: lifecycles, sweepers restarting, connections dying.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	defer stopChaos()
	waitSweepers := w.runSweepers(chaosCtx)
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		w.chaos.killConnections(chaosCtx, w.db.Pool, w.app)
	}()
	outaged := make(chan struct{})
	go func() {
		defer close(outaged)
		w.chaos.outage(chaosCtx, w.proxy)
	}()
	d := &driver{w: w}
	d.run(ctx, n, workers, sd)
	driven := time.Since(start)

	// Faults off, replicas down, then drain.
	w.chaos.on.Store(false)
	stopChaos()
	<-killed
	<-outaged
	waitSweepers()
	// Every event a database outage held back is written now, or lost.
	sctx, cancelSpools := context.WithTimeout(ctx, 30*time.Second)
	spooled, spoolErr := w.closeSpools(sctx)
	cancelSpools()
	if spoolErr != nil || spooled.Dropped > 0 {
		t.Errorf("event spools: %d events dropped; close: %v", spooled.Dropped, spoolErr)
	}
	w.spoolStats = spooled
	dr := w.drain(ctx)
	s := w.read(ctx)
	v := w.check(s)
	wall := time.Since(start)

	report := w.figures(n, big, sd, driven, wall, dr, v)
	t.Log("\n" + report)
	if testing.Verbose() {
		fmt.Println(report)
	}

	if !dr.drained {
		t.Errorf("the drain did not go quiet within its bound: %d passes in %v", dr.passes, dr.took.Round(time.Millisecond))
	}
	assertNone(t, "leaked instances (live, owned, not protected, held by no live row)", v.leaked)
	assertNone(t, "instances we cannot terminate (protected, or without the owner tag) left without an event on record", v.unrecorded)
	assertNone(t, "instances terminated while their row was live", v.liveTerminated)
	assertNone(t, "rows cleared while their instance still ran", v.clearedLive)
	assertNone(t, "instances left running after IAM refused a call for another instance", v.stranded)
	assertNone(t, "instances whose durable teardown.retry_exhausted events differ from the API's give-ups", v.ledger)
	assertNone(t, "DELETEs answered 204 while a removed row of their tree still held an instance", w.apiStats.heldAfter204())
	assertNone(t, "dependents left (owned volumes, Elastic IPs, interfaces, open or active spot requests whose row is removed or gone)", v.dependentsLeft)
	if errs := d.errs.snapshot(); len(errs) > 0 {
		t.Errorf("API requests that got no answer: %v", errs)
	}

	// The soak must have exercised what it claims to.
	f := w.faults(v)
	for _, kind := range []string{fault5xx, faultThrottle, faultLatency, faultRowGone, faultKilled, faultOutage, faultRestarts,
		faultUntagged, faultRefused, faultRefusedMany, faultNotFound, faultInterrupted} {
		if f[kind] == 0 {
			t.Errorf("no %s during the run", kind)
		}
	}
	if f[faultWalkedAway] > 0 && v.provisionTimedOut == 0 {
		t.Errorf("%d killed creates were never deleted, and no instance was terminated for its provisioning timing out", f[faultWalkedAway])
	}
	if v.gaveUp == 0 {
		t.Error("the API never gave up on a stop: the give-up ledger went untested")
	}
	if v.rowGoneTerminated == 0 {
		t.Error("no row-gone instance was terminated")
	}
	if v.byType[events.TypeReaped] == 0 {
		t.Error("the sweepers reaped nothing")
	}
	scene := w.chaos.scene.snapshot()
	for _, kind := range []string{sceneVolumes, sceneAddresses, sceneLeftover} {
		if scene[kind] == 0 {
			t.Errorf("no %s during the run", kind)
		}
	}
	if v.byType[events.TypeDependentReaped] == 0 {
		t.Error("the sweepers reaped no dependent")
	}
}

// faults is what the run injected: the chaos's own counts, and what EC2
// answered because of the fake's conditions (IAM's tag condition, the
// propagation delay).
func (w *world) faults(v verdict) map[string]int {
	f := w.chaos.figures()
	f[faultRefused] = v.refusals
	f[faultRefusedMany] = v.refusalsOfSeveral
	f[faultNotFound] = v.notFound
	return f
}

// assertNone fails the test if found is not empty, showing the first few.
func assertNone(t *testing.T, what string, found []string) {
	t.Helper()
	if len(found) == 0 {
		return
	}
	show := found
	if len(show) > 10 {
		show = show[:10]
	}
	t.Errorf("%d %s, want 0; first %d:\n\t%s", len(found), what, len(show), strings.Join(show, "\n\t"))
}

// figures is the run's report.
func (w *world) figures(n int, big bool, sd uint64, driven, wall time.Duration, dr drainReport, v verdict) string {
	var b strings.Builder
	mode := "ordinary"
	if big {
		mode = "big (x10)"
	}
	fmt.Fprintf(&b, "soak figures (%s size, seed %d)\n", mode, sd)
	fmt.Fprintf(&b, "  lifecycles:      %d on %d workers, %d API replicas, %d sweeper replicas\n", n, workers, apiReplicas, sweeperReplicas)
	fmt.Fprintf(&b, "  wall time:       %v (drive %v, drain %v in %d passes)\n",
		wall.Round(time.Millisecond), driven.Round(time.Millisecond), dr.took.Round(time.Millisecond), dr.passes)

	f := w.faults(v)
	b.WriteString("  faults injected:\n")
	for _, k := range sortedKeys(f) {
		fmt.Fprintf(&b, "    %-40s %6d\n", k, f[k])
	}

	fmt.Fprintf(&b, "  event spools:    %d events written through them, %d dropped, %d still held at close\n",
		w.spoolStats.Written, w.spoolStats.Dropped, w.spoolStats.Queued)
	b.WriteString("  API calls (both replicas):\n")
	calls := w.apiStats.calls.snapshot()
	for _, k := range sortedKeys(calls) {
		fmt.Fprintf(&b, "    %-40s %6d\n", k, calls[k])
	}
	b.WriteString("  EC2 calls received by the fake:\n")
	for _, a := range []string{"RunInstances", "TerminateInstances", "DescribeInstances"} {
		fmt.Fprintf(&b, "    %-40s %6d\n", a, w.fake.Calls(a))
	}
	b.WriteString("  EC2 error answers, by code:\n")
	codes := make(map[string]int)
	for _, r := range w.fake.Requests() {
		switch {
		case r.Code != "":
			codes[r.Code]++
		case r.Status != 200:
			codes[fmt.Sprintf("HTTP %d", r.Status)]++
		}
	}
	for _, k := range sortedKeys(codes) {
		fmt.Fprintf(&b, "    %-40s %6d\n", k, codes[k])
	}

	fmt.Fprintf(&b, "  reaps:           %d rows re-driven by sweepers (%d in the drain), %d row-gone instances terminated (%d in the drain, %d for a provisioning timeout)\n",
		v.byType[events.TypeReaped], dr.reaped, v.rowGoneTerminated, dr.rowGoneTerminated, v.provisionTimedOut)
	fmt.Fprintf(&b, "  give-ups:        %d by the API, %d durable %s events\n", v.gaveUp, v.durableExhausted, events.TypeRetryExhausted)
	scene := w.chaos.scene.snapshot()
	fmt.Fprintf(&b, "  dependents:      %d added (%d %s on %d %s, %d %s, %d %s); %d reaped by sweepers; %d volumes and %d Elastic IPs still in EC2; %d left\n",
		scene[sceneVolumes]+scene[sceneAddresses]+scene[sceneLeftover], scene[sceneVolumes], sceneVolumes, scene[sceneEquipped], sceneEquipped,
		scene[sceneAddresses], sceneAddresses, scene[sceneLeftover], sceneLeftover,
		v.byType[events.TypeDependentReaped], v.ownedVolumes, v.ownedAddresses, len(v.dependentsLeft))

	b.WriteString("  events (durable; handed to sinks; sink writes failed):\n")
	emitted, failed := w.sinks.emitted.snapshot(), w.sinks.failed.snapshot()
	types := make(map[string]bool)
	for _, m := range []map[string]int{v.byType, emitted, failed} {
		for k := range m {
			types[k] = true
		}
	}
	for _, k := range sortedKeys(types) {
		fmt.Fprintf(&b, "    %-40s %6d %6d %6d\n", k, v.byType[k], emitted[k], failed[k])
	}

	failures := make(map[string]int)
	samples := make(map[string]string)
	for _, e := range w.lastEvents {
		if e.Type != events.TypeReapFailed {
			continue
		}
		code, _ := e.Payload["error_code"].(string)
		k := fmt.Sprintf("%s permanent=%v row_gone=%v", code, e.Payload["permanent"], e.Payload["row_gone"] == true)
		failures[k]++
		if _, ok := samples[k]; !ok {
			samples[k], _ = e.Payload["error"].(string)
		}
	}
	b.WriteString("  sweeper.reap_failed, by error code:\n")
	for _, k := range sortedKeys(failures) {
		fmt.Fprintf(&b, "    %-40s %6d  %.300s\n", k, failures[k], samples[k])
	}
	if errs := w.sinks.errors.snapshot(); len(errs) > 0 {
		b.WriteString("  sink writes that failed, by type and error:\n")
		for _, k := range sortedKeys(errs) {
			fmt.Fprintf(&b, "    %6d  %s\n", errs[k], k)
		}
	}
	column := "instance_id text (NULL when empty)"
	if w.notNull {
		column = "instance_id text NOT NULL DEFAULT ''"
	}
	fmt.Fprintf(&b, "  end state:       %d instances, %d live (%d held by live rows, %d protected, %d without the owner tag); %d rows, %d live (%d under a removed parent), %d removed still holding; %s\n",
		len(w.fake.Instances()), v.liveInstances, v.liveHeld, v.protectedLeft, v.untaggedLeft, v.rows, v.liveRows, v.orphanedRows, v.removedHolding, column)
	fmt.Fprintf(&b, "  violations:      %d leaked, %d unrecorded, %d terminated while live, %d cleared while running, %d stranded by a refusal, %d ledger mismatches, %d DELETEs answered 204 while still holding, %d dependents left\n",
		len(v.leaked), len(v.unrecorded), len(v.liveTerminated), len(v.clearedLive), len(v.stranded), len(v.ledger), len(w.apiStats.heldAfter204()), len(v.dependentsLeft))
	return b.String()
}
