package workspaces_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/examples/httpserver/workspaces"
	"github.com/leakless/leakless/teardown"
)

func TestBadInputIsRejectedAndWritesNothing(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		live := e.create("")
		removed := e.create("")
		e.deleteOK(removed.ID)
		unknown := workspaces.NewID()

		cases := []struct {
			name, method, path, body string
			want                     int
		}{
			{"malformed JSON", "POST", "/workspaces", `{`, 400},
			{"not an object", "POST", "/workspaces", `[]`, 400},
			{"unknown field", "POST", "/workspaces", `{"parent":"` + live.ID + `"}`, 400},
			{"trailing data", "POST", "/workspaces", `{} {}`, 400},
			{"parent_id not a string", "POST", "/workspaces", `{"parent_id":7}`, 400},
			{"malformed parent_id", "POST", "/workspaces", `{"parent_id":"x'; drop table workspaces; --"}`, 400},
			{"body too large", "POST", "/workspaces", `{"parent_id":"` + strings.Repeat("a", 1<<17) + `"}`, 400},
			{"unknown parent", "POST", "/workspaces", `{"parent_id":"` + unknown + `"}`, 404},
			{"removed parent", "POST", "/workspaces", `{"parent_id":"` + removed.ID + `"}`, 409},
			{"GET malformed id", "GET", "/workspaces/nope", "", 400},
			{"GET id with a non-hex digit", "GET", "/workspaces/" + "g" + live.ID[1:], "", 400},
			{"GET unknown id", "GET", "/workspaces/" + unknown, "", 404},
			{"DELETE malformed id", "DELETE", "/workspaces/nope", "", 400},
			{"DELETE unknown id", "DELETE", "/workspaces/" + unknown, "", 404},
			{"events limit zero", "GET", "/events?limit=0", "", 400},
			{"events limit not a number", "GET", "/events?limit=ten", "", 400},
			{"events limit past the cap", "GET", "/events?limit=1001", "", 400},
			{"events before not a number", "GET", "/events?before=x", "", 400},
			{"events type with a NUL byte", "GET", "/events?type=a%00b", "", 400},
			{"events subject not UTF-8", "GET", "/events?subject=%ff", "", 400},
		}
		parent := e.t
		defer func() { e.t = parent }()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.t = t
				before := e.snapshot()
				status, raw := e.do(c.method, c.path, c.body)
				if status != c.want {
					t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, status, raw, c.want)
				}
				var body map[string]any
				decode(t, raw, &body)
				if msg, _ := body["error"].(string); msg == "" {
					t.Errorf("body %s has no error message", raw)
				}
				e.assertNothingWritten(before)
				if got := e.get(live.ID); got.Status != workspaces.StatusRunning || got.InstanceID != live.InstanceID {
					t.Errorf("live workspace changed: %+v", got)
				}
				e.assertRunning(live)
			})
		}
	})
}

func TestEventsFilters(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		a, b := e.create(""), e.create("")
		e.setProtection(a.InstanceID, true)
		e.setProtection(b.InstanceID, true)
		e.deleteFailure(a.ID, map[string]string{a.ID: a.InstanceID})
		e.deleteFailure(b.ID, map[string]string{b.ID: b.InstanceID})

		// The ledger is about workspaces: the subject is the row id, the
		// instance is in the payload.
		all := e.events("")
		if len(all) != 2 || all[0].Subject != b.ID || all[1].Subject != a.ID || all[0].Payload["instance_id"] != b.InstanceID {
			t.Fatalf("events %+v, want b's then a's (newest first), each naming its instance", all)
		}
		if got := e.events("?limit=1"); len(got) != 1 || got[0].Subject != b.ID {
			t.Errorf("limit=1: %+v, want b's only", got)
		}
		if got := e.events("?subject=" + a.ID); len(got) != 1 || got[0].Type != events.TypeRetryExhausted {
			t.Errorf("subject=a: %+v, want a's retry_exhausted event", got)
		}
		// Paging: limit=1 then before=next gives a's event, then nothing.
		status, raw := e.do(http.MethodGet, "/events?limit=1", "")
		var page workspaces.EventList
		decode(t, raw, &page)
		if status != http.StatusOK || page.Next == "" {
			t.Fatalf("GET /events?limit=1: %d %s, want a next cursor", status, raw)
		}
		if got := e.events("?limit=1&before=" + page.Next); len(got) != 1 || got[0].Subject != a.ID {
			t.Errorf("second page: %+v, want a's event", got)
		}
		if got := e.events("?type=" + events.TypeReaped); len(got) != 0 {
			t.Errorf("type=%s: %+v, want none", events.TypeReaped, got)
		}
	})
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	e := newEnv(t, "memory")
	mem := workspaces.NewMemory()
	sink := workspaces.NewMemoryEvents()
	stop := teardown.StopperFunc(nil)
	full := func() workspaces.Config {
		return workspaces.Config{Store: mem, Rows: mem, Events: sink, Ledger: sink, EC2: e.ec2, Stopper: stop, Owner: owner}
	}
	if _, err := workspaces.New(full()); err != nil {
		t.Fatalf("complete config: %v", err)
	}
	cases := map[string]func(*workspaces.Config){
		"no store":               func(c *workspaces.Config) { c.Store = nil },
		"no rows":                func(c *workspaces.Config) { c.Rows = nil },
		"no events":              func(c *workspaces.Config) { c.Events = nil },
		"no ledger":              func(c *workspaces.Config) { c.Ledger = nil },
		"no ec2":                 func(c *workspaces.Config) { c.EC2 = nil },
		"no stopper":             func(c *workspaces.Config) { c.Stopper = nil },
		"no owner":               func(c *workspaces.Config) { c.Owner = nil },
		"empty owner value":      func(c *workspaces.Config) { c.Owner = map[string]string{"k": ""} },
		"resource tag is owner":  func(c *workspaces.Config) { c.ResourceTag = "leakless:owner" },
		"negative delete budget": func(c *workspaces.Config) { c.DeleteTimeout = -1 },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			c := full()
			breakIt(&c)
			if _, err := workspaces.New(c); !errors.Is(err, workspaces.ErrConfig) {
				t.Errorf("New: %v, want ErrConfig", err)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	e := newEnv(t, "memory")
	before := e.snapshot()
	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/workspaces/"+workspaces.NewID(), nil)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", resp.StatusCode)
	}
	e.assertNothingWritten(before)
}
