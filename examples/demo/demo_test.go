package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/audit"
	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/internal/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// small is a run of the demo sized for tests.
func small() Config {
	c := DefaultConfig()
	c.Workspaces = 14 // six trees: 1, 2, 4, 1, 2, 4 workspaces
	c.Live = 2
	c.FailTrees = 2
	c.MinAge = 300 * time.Millisecond
	c.Interval = 50 * time.Millisecond
	c.Timeout = 20 * time.Second
	return c
}

func TestDemo(t *testing.T) {
	for _, name := range []string{"memory", "postgres", "moto"} {
		t.Run(name, func(t *testing.T) {
			cfg := small()
			switch name {
			case "postgres":
				cfg.DatabaseURL = pgtest.ServerURL(t)
			case "moto":
				cfg.EC2Endpoint = mototest.URL(t)
			}
			var out bytes.Buffer
			res, err := run(context.Background(), cfg, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			defer func() {
				if t.Failed() {
					t.Log("\n" + out.String())
				}
			}()

			if err := res.Err(); err != nil {
				t.Errorf("Err: %v", err)
			}
			if len(res.WronglyTerminated) != 0 {
				t.Errorf("wrongly terminated: %v, want none", res.WronglyTerminated)
			}
			if res.Protected == "" || !slices.Equal(res.Leaked, []string{res.Protected}) {
				t.Errorf("leaked %v, want exactly the protected instance %q", res.Leaked, res.Protected)
			}
			if !res.ProtectedOnRecord {
				t.Errorf("the protected instance has no permanent %s event", events.TypeReapFailed)
			}
			// 14 deleted, 2 kept, 1 still provisioning, 1 whose row never
			// existed; on the embedded EC2 also the persistent spot request's
			// instance, whose row never existed either, and which nothing
			// relaunches.
			spot := 0
			if name != "moto" {
				spot = 1
			}
			if res.Launched != 18+spot || res.InUse != 3 || res.Terminated != 14+spot {
				t.Errorf("launched %d, in use %d, terminated %d; want %d, 3, %d", res.Launched, res.InUse, res.Terminated, 18+spot, 14+spot)
			}
			if res.DependentsLeft != 0 || res.Events[events.TypeDependentReaped] != 1 {
				t.Errorf("dependents left %d, %s events %d; want 0 and 1 (the detached volume)", res.DependentsLeft, events.TypeDependentReaped, res.Events[events.TypeDependentReaped])
			}
			if res.Deletes != 6 {
				t.Errorf("deletes %d, want 6", res.Deletes)
			}
			wantFailed := 1 // the protected instance's tree
			if name != "moto" {
				wantFailed += cfg.FailTrees
			}
			if res.DeletesFailed < wantFailed {
				t.Errorf("deletes answered 500: %d, want at least %d", res.DeletesFailed, wantFailed)
			}
			if res.Events[events.TypeRetryExhausted] < wantFailed {
				t.Errorf("%s events: %d, want at least %d", events.TypeRetryExhausted, res.Events[events.TypeRetryExhausted], wantFailed)
			}
			if res.Events[events.TypeRowGoneTerminated] != 1+spot {
				t.Errorf("%s events: %d, want %d", events.TypeRowGoneTerminated, res.Events[events.TypeRowGoneTerminated], 1+spot)
			}
			// The closing audit agrees: the 2 live workspaces held, the one
			// in flight provisioning, the protected instance the one leak.
			a := res.Audit
			if a == nil {
				t.Fatal("no closing audit")
			}
			wantClass := map[string]int{audit.Held: 2, audit.Provisioning: 1, audit.Protected: 1}
			for _, ct := range a.Classes {
				if ct.Instances != wantClass[ct.Class] {
					t.Errorf("audit class %s: %d instances, want %d", ct.Class, ct.Instances, wantClass[ct.Class])
				}
			}
			if a.Leaks != 1 || len(a.Permanent) != 1 || a.Permanent[0].InstanceID != res.Protected || a.Permanent[0].ErrorCode != "OperationNotPermitted" {
				t.Errorf("audit: %d leaks, permanent %+v; want 1, the protected %s refused with OperationNotPermitted", a.Leaks, a.Permanent, res.Protected)
			}
			if a.LeakUSDPerHour != 0.0104 || a.Class(audit.Protected).VCPUs != 2 {
				t.Errorf("audit: leak $%v/h on %d vCPUs, want one t3.micro: $0.0104/h on 2", a.LeakUSDPerHour, a.Class(audit.Protected).VCPUs)
			}
			if a.DependentClasses == nil || a.DependentLeaks != 0 {
				t.Errorf("audit: dependent classes %v, %d left behind; want the dependents taken, none left", a.DependentClasses, a.DependentLeaks)
			}
			for _, want := range []string{"still leaked", "wrongly terminated", "dependents left", "durable events", res.Protected, "1 leaking", "leaking instances:", "0 left behind"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
		})
	}
}

func TestResultErr(t *testing.T) {
	good := Result{Protected: "i-p", Leaked: []string{"i-p"}, ProtectedOnRecord: true}
	if err := good.Err(); err != nil {
		t.Fatalf("good result: %v", err)
	}
	cases := map[string]func(*Result){
		"another leak":             func(r *Result) { r.Leaked = []string{"i-p", "i-x"} },
		"protected not reported":   func(r *Result) { r.Leaked = nil },
		"protected not on record":  func(r *Result) { r.ProtectedOnRecord = false },
		"live instance terminated": func(r *Result) { r.WronglyTerminated = []string{"i-live"} },
		"dependents left behind":   func(r *Result) { r.DependentsLeft = 1 },
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			r := good
			spoil(&r)
			if err := r.Err(); err == nil {
				t.Error("Err: nil, want an error")
			}
		})
	}
}

func TestRunMainExitStatus(t *testing.T) {
	if code := runMain(context.Background(), []string{"-workspaces", "0"}, func(string) string { return "" }, io.Discard, io.Discard); code != 2 {
		t.Errorf("-workspaces 0: exit %d, want 2", code)
	}
	if code := runMain(context.Background(), []string{"-nope"}, func(string) string { return "" }, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	var out bytes.Buffer
	args := []string{"-workspaces", "7", "-live", "1", "-fail-trees", "1", "-min-age", "200ms", "-interval", "50ms"}
	if code := runMain(context.Background(), args, func(string) string { return "" }, &out, io.Discard); code != 0 {
		t.Errorf("small run: exit %d, want 0\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "OK:") {
		t.Errorf("output lacks the OK line:\n%s", out.String())
	}
}

func TestPlan(t *testing.T) {
	trees := plan(14)
	var sizes, depths []int
	for _, tr := range trees {
		sizes = append(sizes, len(tr.nodes))
		depths = append(depths, tr.deepest().depth)
	}
	if !slices.Equal(sizes, []int{1, 2, 4, 1, 2, 4}) || !slices.Equal(depths, []int{1, 2, 3, 1, 2, 3}) {
		t.Errorf("plan(14): sizes %v depths %v", sizes, depths)
	}
	if got := plan(5); len(got) != 3 || len(got[2].nodes) != 2 {
		t.Errorf("plan(5) does not truncate the last tree to 2 workspaces")
	}
	protected, unlucky := pickTrouble(trees, 2)
	if protected != 2 || len(unlucky) != 2 || unlucky[protected] {
		t.Errorf("pickTrouble: protected %d, unlucky %v; want tree 2 and two others", protected, unlucky)
	}
}
