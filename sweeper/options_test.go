package sweeper

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/teardown"
)

func TestNewRejectsBadConfiguration(t *testing.T) {
	st := store.NewMemory(table)
	stop := &recorder{}
	inv := inventoryFunc(nil)
	cases := []struct {
		name string
		st   store.Store
		s    teardown.Stopper
		opt  Option
	}{
		{"nil store", nil, stop, nil},
		{"nil stopper", st, nil, nil},
		{"zero interval", st, stop, WithInterval(0)},
		{"negative interval", st, stop, WithInterval(-time.Second)},
		{"zero pass timeout", st, stop, WithPassTimeout(0)},
		{"negative pass timeout", st, stop, WithPassTimeout(-time.Second)},
		{"zero batch size", st, stop, WithBatchSize(0)},
		{"zero concurrency", st, stop, WithConcurrency(0)},
		{"zero row backoff base", st, stop, WithRowBackoff(0, time.Hour)},
		{"negative row backoff max", st, stop, WithRowBackoff(time.Minute, -time.Hour)},
		{"row backoff max below base", st, stop, WithRowBackoff(time.Hour, time.Minute)},
		{"nil events sink", st, stop, WithEvents(nil)},
		{"nil logger", st, stop, WithLogger(nil)},
		{"nil meter provider", st, stop, WithMeterProvider(nil)},
		{"nil leader", st, stop, WithLeader(nil)},
		{"nil inventory", st, stop, WithRowGone(nil, RowGone{})},
		{"negative MinAge", st, stop, WithRowGone(inv, RowGone{MinAge: -time.Minute})},
		{"negative ConfirmPasses", st, stop, WithRowGone(inv, RowGone{ConfirmPasses: -1})},
		{"negative MaxPerPass", st, stop, WithRowGone(inv, RowGone{MaxPerPass: -1})},
		{"negative MaxFraction", st, stop, WithRowGone(inv, RowGone{MaxFraction: -0.1})},
		{"MaxFraction above 1", st, stop, WithRowGone(inv, RowGone{MaxFraction: 1.5})},
		{"NaN MaxFraction", st, stop, WithRowGone(inv, RowGone{MaxFraction: math.NaN()})},
		{"bad retry option", st, stop, WithRetry(teardown.WithMaxAttempts(0))},
		{"bad retry backoff", st, stop, WithRetry(teardown.WithBackoff(-time.Second, time.Second))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sw, err := New(tc.st, tc.s, tc.opt)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, %v; want an error wrapping ErrConfig", sw, err)
			}
			if sw != nil {
				t.Errorf("New returned a Sweeper with its error")
			}
		})
	}
}

func TestRowGoneDefaults(t *testing.T) {
	sw := newSweeper(t, store.NewMemory(table), &recorder{}, WithRowGone(inventoryFunc(nil), RowGone{}))
	want := RowGone{
		MinAge:        10 * time.Minute,
		ConfirmPasses: 2,
		MaxPerPass:    50,
		MaxFraction:   0.5,
		ResourceTag:   "leakless:resource-id",
		KeepTag:       "leakless:keep",

		ProvisionTimeout: time.Hour,
	}
	if got := sw.cfg.guard; !sw.cfg.rowGone || got != want {
		t.Errorf("RowGone defaults = %+v, want %+v", got, want)
	}

	sw = newSweeper(t, store.NewMemory(table), &recorder{})
	if sw.cfg.rowGone || sw.cfg.inventory != nil {
		t.Errorf("row-gone reaping is on without WithRowGone")
	}
	if sw.cfg.interval != time.Minute || sw.cfg.passTimeout != 30*time.Second ||
		sw.cfg.rowBase != time.Minute || sw.cfg.rowMax != time.Hour || sw.cfg.batchSize != 500 {
		t.Errorf("defaults: interval %v, pass timeout %v, row backoff %v..%v, batch %d; want 1m, 30s, 1m..1h, 500",
			sw.cfg.interval, sw.cfg.passTimeout, sw.cfg.rowBase, sw.cfg.rowMax, sw.cfg.batchSize)
	}
}

func TestRowDelay(t *testing.T) {
	sw := newSweeper(t, store.NewMemory(table), &recorder{}, WithRowBackoff(time.Minute, time.Hour))
	cases := []struct {
		attempts  int
		permanent bool
		want      time.Duration
	}{
		{0, false, time.Minute},
		{1, false, 2 * time.Minute},
		{2, false, 4 * time.Minute},
		{5, false, 32 * time.Minute},
		{6, false, time.Hour},
		{1 << 30, false, time.Hour}, // no overflow
		{0, true, time.Hour},
	}
	for _, tc := range cases {
		if got := sw.rowDelay(tc.attempts, tc.permanent); got != tc.want {
			t.Errorf("rowDelay(%d, %v) = %v, want %v", tc.attempts, tc.permanent, got, tc.want)
		}
	}
}

func TestNewDoesNotFireTheRetryHooks(t *testing.T) {
	fired := 0
	hook := func(context.Context, *teardown.RetryError) { fired++ }
	newSweeper(t, store.NewMemory(table), &recorder{}, WithRetry(teardown.WithOnExhausted(hook)))
	if fired != 0 {
		t.Errorf("OnExhausted fired %d times while New checked the options, want 0", fired)
	}
}
