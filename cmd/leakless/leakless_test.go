package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/internal/audit"
	"github.com/leakless/leakless/internal/pgtest"
)

// world is one test's database (a schema of its own, with the host's
// table and leakless's tables migrated by the command) and EC2.
type world struct {
	t     *testing.T
	pool  *pgxpool.Pool
	url   string
	cloud cloud
	team  string // the owner tag team=team marks the world's instances
}

func newWorld(t *testing.T) *world { return newWorldOn(t, newFakeCloud(t), "leakless-cmd-test") }

// newWorldOn is newWorld on c, its instances owned by team.
func newWorldOn(t *testing.T, c cloud, team string) *world {
	t.Helper()
	db := pgtest.Open(t)
	_, err := db.Pool.Exec(context.Background(), `CREATE TABLE workspaces (
		id text PRIMARY KEY, parent_id text, status text NOT NULL, instance_id text)`)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, pool: db.Pool, url: db.URL, cloud: c, team: team}
	if code, _, stderr := w.run("migrate", "up"); code != exitOK {
		t.Fatalf("migrate up: exit %d: %s", code, stderr)
	}
	return w
}

// clouds are the EC2s the end-to-end scenarios run on.
var clouds = []struct {
	name string
	new  func(t *testing.T) *world
}{
	{"ec2fake", newWorld},
	{"moto", func(t *testing.T) *world {
		return newWorldOn(t, newMotoCloud(t), "leakless-cmd-test-"+randomHex(4))
	}},
}

// run runs the command in process with the world's settings in its
// environment.
func (w *world) run(args ...string) (code int, stdout, stderr string) {
	env := map[string]string{"DATABASE_URL": w.url, "EC2_ENDPOINT": w.cloud.url(), "OWNER": "team=" + w.team, "REDRIVE_GRACE": "0s"}
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.pool.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *world) row(id, status, instance string) {
	w.t.Helper()
	var inst any
	if instance != "" {
		inst = instance
	}
	w.exec(`INSERT INTO workspaces (id, status, instance_id) VALUES ($1, $2, $3)
		ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, instance_id = EXCLUDED.instance_id`, id, status, inst)
}

// launch starts an owned instance tagged with row id rid (none when
// empty), launched age ago, with extra tags.
func (w *world) launch(rid string, age time.Duration, extra ...string) string {
	tags := map[string]string{"team": w.team}
	if rid != "" {
		tags["leakless:resource-id"] = rid
	}
	for i := 0; i+1 < len(extra); i += 2 {
		tags[extra[i]] = extra[i+1]
	}
	return w.cloud.launch(w.t, tags, age)
}

// live is the world's instances the cloud says are not on their way out.
func (w *world) live(ids ...string) []string {
	var out []string
	states := w.cloud.states(w.t)
	for _, id := range ids {
		if st := states[id]; st != "shutting-down" && st != "terminated" {
			out = append(out, id)
		}
	}
	return out
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not the JSON expected: %v\n%s", err, s)
	}
	return v
}

// The audit sorts every live owned instance into exactly one class, prices
// and counts them, exits 1 on leaks, and writes nothing anywhere; its
// classes are what the cloud and the table say, class by class.
func TestAuditClassesCountsAndExitCode(t *testing.T) {
	for _, c := range clouds {
		t.Run(c.name, func(t *testing.T) { auditScenario(t, c.new(t)) })
	}
}

func auditScenario(t *testing.T, w *world) {
	// The old instances first; on moto, settle makes them old.
	held := w.launch("ws-held", 3*time.Hour)
	w.row("ws-held", "active", held)
	w.row("ws-stuck", "creating", "")
	stuck := w.launch("ws-stuck", 2*time.Hour)
	removed := w.launch("ws-removed", time.Hour)
	w.row("ws-removed", "removed", removed)
	gone := w.launch("ws-gone", time.Hour)
	kept := w.launch("", 5*time.Hour, "leakless:keep", "debugging")
	prot := w.launch("ws-prot", 4*time.Hour)
	w.cloud.protect(t, prot)
	w.launch("", 9*time.Hour, "team", "someone-else")
	done := w.launch("ws-done", 9*time.Hour)
	w.cloud.terminate(t, done)
	w.cloud.settle()
	w.row("ws-prov", "creating", "")
	prov := w.launch("ws-prov", 5*time.Minute)
	recent := w.launch("ws-young", time.Minute)

	sink, err := events.NewPgx(w.pool)
	if err != nil {
		t.Fatal(err)
	}
	err = sink.Emit(context.Background(), events.Event{Type: events.TypeReapFailed, Subject: "ws-prot", Payload: map[string]any{
		"instance_id": prot, "error_code": "OperationNotPermitted", "permanent": true, "error": "termination protection"}})
	if err != nil {
		t.Fatal(err)
	}

	code, out, stderr := w.run(append([]string{"audit", "-output", "json"}, w.cloud.guards()...)...)
	if code != exitFinding {
		t.Fatalf("audit exit %d, want %d (leaks exist); stderr %s", code, exitFinding, stderr)
	}
	r := decode[audit.Report](t, out)
	wantClass := map[string]string{held: audit.Held, prov: audit.Provisioning, stuck: audit.StuckProvisioning, removed: audit.RemovedRunning,
		gone: audit.RowGone, recent: audit.Recent, kept: audit.Kept, prot: audit.Protected}
	var audited []string
	for _, in := range r.Instances {
		audited = append(audited, in.InstanceID)
		if wantClass[in.InstanceID] != in.Class {
			t.Errorf("%s (row %q) is %s, want %s", in.InstanceID, in.ResourceID, in.Class, wantClass[in.InstanceID])
		}
		if in.Type != "t3.micro" || in.VCPUs != 2 || in.USDPerH != 0.0104 {
			t.Errorf("%s: type %q, %d vCPUs, $%v/h; want t3.micro, 2, 0.0104", in.InstanceID, in.Type, in.VCPUs, in.USDPerH)
		}
	}
	// The audited instances are the owned ones the cloud says are live.
	live := w.live(held, stuck, removed, gone, kept, prot, done, prov, recent)
	slices.Sort(live)
	slices.Sort(audited)
	if !slices.Equal(audited, live) {
		t.Errorf("audited %v, want the live owned instances %v", audited, live)
	}
	for _, ct := range r.Classes {
		if ct.Instances != 1 || ct.VCPUs != 2 || ct.USDPerH != 0.0104 || ct.Leak != audit.IsLeak(ct.Class) {
			t.Errorf("class %+v: want 1 instance, 2 vCPUs, $0.0104/h, leak %v", ct, audit.IsLeak(ct.Class))
		}
	}
	if len(r.Classes) != len(audit.Classes) {
		t.Errorf("%d classes, want all %d", len(r.Classes), len(audit.Classes))
	}
	if r.Leaks != 4 || r.LeakUSDPerHour < 0.0415 || r.LeakUSDPerHour > 0.0417 {
		t.Errorf("leaks %d at $%v/h, want 4 at $0.0416/h", r.Leaks, r.LeakUSDPerHour)
	}
	if r.Backlog.Pending != 1 {
		t.Errorf("backlog %+v, want 1 pending", r.Backlog)
	}
	if len(r.Permanent) != 1 || r.Permanent[0].InstanceID != prot || r.Permanent[0].ErrorCode != "OperationNotPermitted" {
		t.Errorf("permanent leaks %+v, want %s refused with OperationNotPermitted", r.Permanent, prot)
	}
	if !strings.Contains(r.PriceNote, "estimated") {
		t.Errorf("price note %q does not say the figures are estimates", r.PriceNote)
	}
	if n, counted := w.cloud.writes(); counted && n != 1 { // the test's own terminate
		t.Errorf("%d EC2 writes, want the test's 1: audit is read-only", n)
	}
	if states := w.cloud.states(t); states[removed] != "running" || states[gone] != "running" {
		t.Errorf("after the audit %s is %s and %s is %s, want both running", removed, states[removed], gone, states[gone])
	}
	var n int
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM leakless_attempts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("leakless_attempts has %d rows (%v), want 0: audit writes nothing", n, err)
	}

	// The table output says the same, labelled as an estimate.
	code, out, _ = w.run(append([]string{"audit"}, w.cloud.guards()...)...)
	if code != exitFinding || !strings.Contains(out, "4 leaking") || !strings.Contains(out, "estimated") || !strings.Contains(out, stuck) {
		t.Errorf("table audit exit %d:\n%s\nwant exit 1, 4 leaking, estimated, and %s listed", code, out, stuck)
	}
	for _, ct := range r.Classes {
		if !regexp.MustCompile(`(?m)^` + ct.Class + ` +(leak +)?1 +2 +0\.0104$`).MatchString(out) {
			t.Errorf("table audit has no line saying %s: 1 instance, 2 vCPUs, $0.0104/h:\n%s", ct.Class, out)
		}
	}

	// A price file overrides the embedded table.
	file := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(file, []byte(`{"t3.micro": 1.5}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, out, stderr = w.run(append([]string{"audit", "-output", "json", "-price-file", file}, w.cloud.guards()...)...)
	if stderr != "" {
		t.Logf("audit -price-file: %s", stderr)
	}
	if r := decode[audit.Report](t, out); r.LeakUSDPerHour != 6 {
		t.Errorf("leak cost with the price file $%v/h, want 4 × 1.5 = 6", r.LeakUSDPerHour)
	}
}

// The audit lists the owned dependents by class with their estimated
// cost: an attached volume is in use, a free volume of a removed row and
// an Elastic IP of no row are left behind (exit 1 though no instance
// leaks), and another owner's volume is not counted.
func TestAuditListsDependentsByClassWithCost(t *testing.T) {
	for _, c := range clouds {
		t.Run(c.name, func(t *testing.T) { dependentsAuditScenario(t, c.new(t)) })
	}
}

func dependentsAuditScenario(t *testing.T, w *world) {
	ctx := context.Background()
	api := w.cloud.sdk()
	held := w.launch("ws-held", 3*time.Hour)
	w.row("ws-held", "active", held)
	w.row("ws-removed", "removed", "")
	tags := func(resource types.ResourceType, team, rid string) []types.TagSpecification {
		spec := types.TagSpecification{ResourceType: resource, Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String(team)}}}
		if rid != "" {
			spec.Tags = append(spec.Tags, types.Tag{Key: aws.String("leakless:resource-id"), Value: aws.String(rid)})
		}
		return []types.TagSpecification{spec}
	}
	volume := func(gib int32, team, rid string) string {
		out, err := api.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(gib),
			VolumeType: types.VolumeTypeGp3, TagSpecifications: tags(types.ResourceTypeVolume, team, rid)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VolumeId)
	}
	attached := volume(50, w.team, "ws-held")
	if _, err := api.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(attached), InstanceId: aws.String(held), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	left := volume(100, w.team, "ws-removed")
	volume(30, "someone-else", "ws-removed")
	eip, err := api.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc, TagSpecifications: tags(types.ResourceTypeElasticIp, w.team, "ws-never")})
	if err != nil {
		t.Fatal(err)
	}
	w.cloud.settle()

	code, out, stderr := w.run(append([]string{"audit", "-output", "json"}, w.cloud.guards()...)...)
	if code != exitFinding {
		t.Fatalf("audit exit %d, want %d (dependents left behind); stderr %s", code, exitFinding, stderr)
	}
	r := decode[audit.Report](t, out)
	if r.Leaks != 0 {
		t.Errorf("%d instance leaks, want 0", r.Leaks)
	}
	got := map[string]string{}
	for _, d := range r.Dependents {
		got[d.ID] = d.Class
	}
	want := map[string]string{attached: audit.DependentInUse, left: audit.DependentRemoved, aws.ToString(eip.AllocationId): audit.DependentMissing}
	if !maps.Equal(got, want) {
		t.Errorf("dependents by class %v, want %v (another owner's volume not listed)", got, want)
	}
	removed, missing := r.DependentClass(audit.DependentRemoved), r.DependentClass(audit.DependentMissing)
	if removed.Volumes != 1 || removed.VolumeGiB != 100 || math.Abs(removed.USDPerH-100*0.08/730) > 1e-9 {
		t.Errorf("row_removed %+v, want one 100 GiB gp3 volume at $%.6f/h", removed, 100*0.08/730)
	}
	if missing.Addresses != 1 || missing.USDPerH != 0.005 {
		t.Errorf("row_missing %+v, want one Elastic IP at $0.005/h", missing)
	}
	if r.DependentLeaks != 2 || math.Abs(r.DependentLeakUSDPerHour-(100*0.08/730+0.005)) > 1e-9 {
		t.Errorf("%d dependents left at $%v/h, want 2 at $%v/h", r.DependentLeaks, r.DependentLeakUSDPerHour, 100*0.08/730+0.005)
	}

	code, out, _ = w.run(append([]string{"audit"}, w.cloud.guards()...)...)
	if code != exitFinding || !strings.Contains(out, "2 left behind") || !strings.Contains(out, left) {
		t.Errorf("table audit exit %d:\n%s\nwant exit 1, 2 left behind, %s listed", code, out, left)
	}
	if code, out, _ := w.run(append([]string{"audit", "-dependents=false"}, w.cloud.guards()...)...); code != exitOK || strings.Contains(out, "dependent") {
		t.Errorf("audit -dependents=false exit %d, want 0 and no dependents:\n%s", code, out)
	}
}

func TestAuditOfACleanAccountExitsZero(t *testing.T) {
	w := newWorld(t)
	w.row("ws-1", "active", w.launch("ws-1", time.Hour))
	if code, out, stderr := w.run("audit"); code != exitOK {
		t.Fatalf("audit exit %d, want 0:\n%s%s", code, out, stderr)
	}
}

// plan lists exactly what a sweep would stop, touching nothing; apply
// stops exactly those, after re-checking each, and refuses one whose row
// came back.
func TestPlanThenApplyStopsExactlyThePlan(t *testing.T) {
	for _, c := range clouds {
		t.Run(c.name, func(t *testing.T) { planApplyScenario(t, c.new(t)) })
	}
}

func planApplyScenario(t *testing.T, w *world) {
	a := w.launch("ws-a", time.Hour)
	w.row("ws-a", "removed", a)
	b := w.launch("ws-b", time.Hour)
	w.row("ws-b", "removed", b)
	gone := w.launch("ws-gone", time.Hour)
	back := w.launch("ws-back", time.Hour)
	w.row("ws-back", "removed", "")
	live := w.launch("ws-live", time.Hour)
	w.row("ws-live", "active", live)
	w.cloud.settle()
	young := w.launch("ws-young", time.Minute)

	code, out, stderr := w.run(append([]string{"plan", "-row-gone"}, w.cloud.guards()...)...)
	if code != exitOK {
		t.Fatalf("plan exit %d: %s", code, stderr)
	}
	p := decode[Plan](t, out)
	got := map[string]Action{}
	for _, act := range p.Actions {
		got[act.InstanceID] = act
	}
	want := map[string][2]string{a: {kindPending, "row_removed"}, b: {kindPending, "row_removed"}, gone: {kindOrphan, "row_gone"}, back: {kindOrphan, "row_removed"}}
	if len(got) != len(want) {
		t.Errorf("plan has %d actions, want %d: %+v", len(got), len(want), p.Actions)
	}
	for id, kr := range want {
		if act := got[id]; act.Kind != kr[0] || act.Reason != kr[1] {
			t.Errorf("planned %s: %+v, want kind %s reason %s", id, act, kr[0], kr[1])
		}
	}
	if _, ok := got[young]; ok {
		t.Errorf("plan stops %s, younger than the minimum age", young)
	}
	if p.Version != planVersion || p.Owner["team"] != w.team || p.Table != "workspaces" || !p.RowGone {
		t.Errorf("plan header %+v", p)
	}
	if n, counted := w.cloud.writes(); counted && n != 0 {
		t.Fatalf("plan made %d EC2 writes, want 0", n)
	}
	all := []string{a, b, gone, back, live, young}
	if got := w.live(all...); len(got) != len(all) {
		t.Fatalf("after the plan only %v of %v are live, want all: plan stops nothing", got, all)
	}

	// Between plan and apply the host restores ws-back with its instance.
	w.row("ws-back", "active", back)
	file := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = w.run("apply", "-plan", file, "-output", "json")
	if code != exitFinding {
		t.Fatalf("apply exit %d, want 1 (one refused): %s", code, stderr)
	}
	outs := decode[[]outcome](t, out)
	for _, o := range outs {
		wantResult := "stopped"
		if o.InstanceID == back {
			wantResult = "refused"
		}
		if o.Result != wantResult {
			t.Errorf("%s: %s (%s), want %s", o.InstanceID, o.Result, o.Why, wantResult)
		}
	}
	var terminated []string
	for _, id := range all {
		if !slices.Contains(w.live(id), id) {
			terminated = append(terminated, id)
		}
	}
	slices.Sort(terminated)
	wantTerminated := []string{a, b, gone}
	slices.Sort(wantTerminated)
	if !slices.Equal(terminated, wantTerminated) {
		t.Errorf("terminated %v, want exactly %v", terminated, wantTerminated)
	}
	var holding int
	if err := w.pool.QueryRow(context.Background(), `SELECT count(*) FROM workspaces WHERE id IN ('ws-a', 'ws-b') AND instance_id IS NOT NULL`).Scan(&holding); err != nil || holding != 0 {
		t.Errorf("%d applied rows still hold their instance (%v), want 0", holding, err)
	}

	// The ledger shows what apply did, newest first.
	code, out, _ = w.run("ledger", "-type", events.TypeReaped, "-output", "json")
	es := decode[[]events.Event](t, out)
	if code != exitOK || len(es) != 2 || es[0].ID < es[1].ID || es[0].Payload["source"] != "leakless apply" {
		t.Errorf("ledger exit %d: %+v; want the two reaped rows, newest first, from apply", code, es)
	}
	code, out, _ = w.run("ledger", "-subject", "ws-gone")
	if code != exitOK || !strings.Contains(out, gone) || !strings.Contains(out, events.TypeRowGoneTerminated) || strings.Contains(out, "ws-a") {
		t.Errorf("ledger -subject ws-gone exit %d:\n%s", code, out)
	}
}

func TestMigrateStatusSQLAndForget(t *testing.T) {
	w := newWorld(t)
	code, out, _ := w.run("migrate", "status", "-output", "json")
	rows := decode[[]statusRow](t, out)
	if code != exitOK || len(rows) != 2 || rows[0].State != "current" || rows[1].State != "current" || rows[0].Version < 2 {
		t.Errorf("status after up: exit %d %+v, want both current", code, rows)
	}
	if code, _, stderr := w.run("migrate", "up"); code != exitOK {
		t.Errorf("second migrate up: exit %d %s, want a no-op", code, stderr)
	}
	w.exec(`DELETE FROM leakless_migrations WHERE component LIKE 'store%' AND version = 2`)
	code, out, _ = w.run("migrate", "status")
	if code != exitFinding || !strings.Contains(out, "behind") {
		t.Errorf("status with store's version 2 missing: exit %d\n%s; want 1 and behind", code, out)
	}
	code, out, _ = w.run("migrate", "sql", "store", "1")
	if code != exitOK || !strings.HasPrefix(out, "-- leakless store migration 1") || strings.Contains(out, "migration 2") || !strings.Contains(out, "leakless_attempts") {
		t.Errorf("migrate sql store 1: exit %d\n%.300s", code, out)
	}
	if code, _, _ := w.run("migrate", "sql", "store", "99"); code != exitError {
		t.Errorf("migrate sql of an unknown version: exit %d, want 2", code)
	}

	w.row("ws-stuck", "removed", w.launch("ws-stuck", time.Hour))
	code, out, _ = w.run("forget", "ws-stuck", "ws-none")
	if code != exitFinding || !strings.Contains(out, "acknowledged: no longer retried") || !strings.Contains(out, "not pending") {
		t.Errorf("forget exit %d:\n%s\nwant 1, ws-stuck acknowledged and ws-none not pending", code, out)
	}
	_, out, _ = w.run("audit", "-output", "json")
	if b := decode[audit.Report](t, out).Backlog; b.Pending != 0 || b.Acknowledged != 1 {
		t.Errorf("backlog after forget %+v, want 0 pending and 1 acknowledged", b)
	}
}

func TestUsageErrors(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nonesuch"}, "unknown command"},
		{[]string{"audit", "-output", "yaml"}, "-output"},
		{[]string{"audit", "-owner", "nokey"}, "KEY=VALUE"},
		{[]string{"audit", "-min-age", "0s"}, "must be positive"},
		{[]string{"apply"}, "-plan FILE is required"},
		{[]string{"migrate", "sideways"}, "unknown migrate command"},
		{[]string{"forget"}, "usage"},
		{[]string{"ledger", "-since", "yesterday"}, "neither"},
	} {
		code, _, stderr := w.run(tc.args...)
		if code != exitError || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"audit"}, func(string) string { return "" }, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), "DATABASE_URL") {
		t.Errorf("audit without a database: exit %d, %q", code, errOut.String())
	}
}

// Without -row-gone the plan is what a sweeper with only an inventory
// would do: removed rows and instances tagged with a removed row, never
// an instance whose row is merely missing.
func TestPlanWithoutRowGone(t *testing.T) {
	w := newWorld(t)
	a := w.launch("ws-a", time.Hour)
	w.row("ws-a", "removed", a)
	w.launch("ws-missing", time.Hour)
	tagged := w.launch("ws-deleted", time.Hour)
	w.row("ws-deleted", "removed", "")

	code, out, stderr := w.run("plan")
	if code != exitOK {
		t.Fatalf("plan exit %d: %s", code, stderr)
	}
	p := decode[Plan](t, out)
	var got []string
	for _, act := range p.Actions {
		got = append(got, act.Kind+" "+act.InstanceID+" "+act.Reason)
	}
	slices.Sort(got)
	want := []string{kindOrphan + " " + tagged + " row_removed", kindPending + " " + a + " row_removed"}
	if !slices.Equal(got, want) || p.RowGone {
		t.Errorf("plan %v (row_gone %v), want exactly %v", got, p.RowGone, want)
	}
}
