package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/audit"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// regionalEndpoint is one endpoint in front of a fake EC2 per region: it
// sends each request to the fake of the region its signature names, as
// AWS's regional endpoints keep regions apart.
type regionalEndpoint struct {
	fakes map[string]*ec2fake.Server
	srv   *httptest.Server
}

var signedRegion = regexp.MustCompile(`Credential=[^/]+/[0-9]+/([^/]+)/ec2/`)

func newRegionalEndpoint(t *testing.T, regions ...string) *regionalEndpoint {
	e := &regionalEndpoint{fakes: map[string]*ec2fake.Server{}}
	for _, r := range regions {
		f := ec2fake.New()
		t.Cleanup(f.Close)
		e.fakes[r] = f
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var f *ec2fake.Server
		if m := signedRegion.FindStringSubmatch(req.Header.Get("Authorization")); m != nil {
			f = e.fakes[m[1]]
		}
		if f == nil {
			http.Error(w, "no such region", http.StatusBadRequest)
			return
		}
		u, _ := url.Parse(f.URL())
		proxy := httputil.NewSingleHostReverseProxy(u)
		proxy.Transport = f.Client().Transport
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// audit -regions audits each region against its own rows and totals them.
func TestAuditEveryRegion(t *testing.T) {
	w := newWorld(t)
	w.exec(`ALTER TABLE workspaces ADD COLUMN region text`)
	e := newRegionalEndpoint(t, "us-east-1", "eu-west-1")
	launch := func(region, rid string, age time.Duration) string {
		return e.fakes[region].Launch(ec2fake.Instance{
			Tags: map[string]string{"team": w.team, "leakless:resource-id": rid}, LaunchTime: time.Now().Add(-age)})
	}
	// EC2's instance ids are unique across regions; each fake numbers its
	// own from 1, so eu-west-1's start past us-east-1's.
	for range 10 {
		e.fakes["eu-west-1"].Launch(ec2fake.Instance{State: ec2fake.Terminated})
	}
	row := func(region, id, status, instance string) {
		w.row(id, status, instance)
		w.exec(`UPDATE workspaces SET region = $1 WHERE id = $2`, region, id)
	}
	row("us-east-1", "ws-us-held", "active", launch("us-east-1", "ws-us-held", time.Hour))
	launch("us-east-1", "ws-us-gone", time.Hour)
	row("eu-west-1", "ws-eu-held", "active", launch("eu-west-1", "ws-eu-held", time.Hour))
	row("eu-west-1", "ws-eu-removed", "removed", launch("eu-west-1", "ws-eu-removed", time.Hour))
	launch("eu-west-1", "ws-eu-young", time.Minute)

	args := []string{"audit", "-regions", "us-east-1, eu-west-1", "-location-column", "region", "-ec2-endpoint", e.srv.URL}
	code, out, stderr := w.run(append(args, "-output", "json")...)
	if code != exitFinding {
		t.Fatalf("audit exit %d, want 1 (leaks in both regions): %s", code, stderr)
	}
	s := decode[audit.Locations](t, out)
	want := map[string]map[string]int{
		"us-east-1": {audit.Held: 1, audit.RowGone: 1},
		"eu-west-1": {audit.Held: 1, audit.RemovedRunning: 1, audit.Recent: 1},
	}
	if len(s.Locations) != 2 || s.Locations[0].Location != "us-east-1" || s.Locations[1].Location != "eu-west-1" {
		t.Fatalf("locations %+v, want us-east-1 then eu-west-1", s.Locations)
	}
	for _, l := range s.Locations {
		for _, cl := range audit.Classes {
			if got := l.Report.Class(cl).Instances; got != want[l.Location][cl] {
				t.Errorf("%s %s: %d instances, want %d", l.Location, cl, got, want[l.Location][cl])
			}
		}
	}
	total := map[string]int{audit.Held: 2, audit.RowGone: 1, audit.RemovedRunning: 1, audit.Recent: 1}
	for _, ct := range s.Total {
		if ct.Instances != total[ct.Class] || ct.VCPUs != 2*total[ct.Class] {
			t.Errorf("total %s: %d instances, %d vCPUs; want %d and %d", ct.Class, ct.Instances, ct.VCPUs, total[ct.Class], 2*total[ct.Class])
		}
	}
	if s.Leaks != 2 || s.Locations[0].Report.Leaks != 1 || s.Locations[1].Report.Leaks != 1 {
		t.Errorf("leaks: %d in all, %d and %d by region; want 2, 1 and 1", s.Leaks, s.Locations[0].Report.Leaks, s.Locations[1].Report.Leaks)
	}
	if us, eu := s.Locations[0].Report.Backlog, s.Locations[1].Report.Backlog; us.Pending != 0 || eu.Pending != 1 {
		t.Errorf("backlogs %+v and %+v, want ws-eu-removed pending in eu-west-1 alone", us, eu)
	}

	code, out, _ = w.run(args...)
	if code != exitFinding || !strings.Contains(out, "== us-east-1") || !strings.Contains(out, "== eu-west-1") ||
		!regexp.MustCompile(`(?m)^held +1 +1 +2 +4 +`).MatchString(out) || !regexp.MustCompile(`(?m)^row_gone +leak +1 +0 +1 +2 +`).MatchString(out) {
		t.Errorf("table audit -regions exit %d:\n%s\nwant each region and a total by class", code, out)
	}

	for _, bad := range [][]string{{"audit", "-regions", "us-east-1"}, {"audit", "-regions", "a,,b", "-location-column", "region"}, {"audit", "-regions", "a,a", "-location-column", "region"}} {
		if code, _, stderr := w.run(bad...); code != exitError || !strings.Contains(stderr, "-regions") {
			t.Errorf("%q: exit %d, %q; want 2 and a word on -regions", bad, code, stderr)
		}
	}
}
