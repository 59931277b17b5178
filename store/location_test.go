package store

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/leakless/leakless/internal/pgtest"
)

// A store scoped to a location sees only that location's pending rows;
// rows with no location are the default one, and Known still answers for
// every location.
func TestPostgresInScopesPendingToALocation(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			db := pgtest.Open(t)
			createHostTable(t, db.Pool, "text")
			exec(t, db.Pool, `ALTER TABLE workspaces ADD COLUMN region text`)
			tbl := testTable(true)
			tbl.Location = "region"
			st := newStoreOn(t, driver, db, tbl)
			exec(t, db.Pool, `INSERT INTO workspaces (id, status, instance_id, region) VALUES
				('ws-1', 'removed', 'i-1', 'us-east-1'), ('ws-2', 'removed', 'i-2', 'eu-west-1'),
				('ws-3', 'removed', 'i-3', NULL), ('ws-4', 'removed', 'i-4', ''),
				('ws-5', 'removed', 'i-5', 'eu-west-1'), ('ws-6', 'active', 'i-6', 'eu-west-1')`)
			in := func(loc string) *Postgres {
				v, err := st.In(loc)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			eu, us, def := in("eu-west-1"), in("us-east-1"), in("")
			wantIDs(t, "eu-west-1", mustPending(t, eu, 10), "ws-2", "ws-5")
			wantIDs(t, "us-east-1", mustPending(t, us, 10), "ws-1")
			wantIDs(t, "the default location", mustPending(t, def, 10), "ws-3", "ws-4")
			wantIDs(t, "the whole table", mustPending(t, st, 10), "ws-1", "ws-2", "ws-3", "ws-4", "ws-5")

			// A failure recorded through one view hides the row from every
			// view; a due record of another location is no view's stale one.
			mustFailed(t, eu, Pending{ResourceID: "ws-2", InstanceID: "i-2"}, errors.New("throttled"), dueNow)
			wantIDs(t, "eu-west-1 after a failure", mustPending(t, eu, 10), "ws-5", "ws-2")
			wantIDs(t, "us-east-1 again", mustPending(t, us, 10), "ws-1")
			wantIDs(t, "eu-west-1 again", mustPending(t, eu, 10), "ws-5", "ws-2")

			k, err := us.Known(context.Background(), []string{"ws-6"}, []string{"i-6"})
			if err != nil || !k.Held["i-6"] {
				t.Fatalf("Known through a view = %+v, %v; want i-6 held: a row anywhere protects its instance", k, err)
			}
		})
	}
}

func TestInNeedsALocationColumn(t *testing.T) {
	st, err := NewSQL(&sql.DB{}, testTable(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.In("us-east-1"); !errors.Is(err, ErrConfig) {
		t.Fatalf("In without Table.Location: %v, want ErrConfig", err)
	}
	tbl := testTable(true)
	tbl.Location = "region"
	if st, err = NewSQL(&sql.DB{}, tbl); err != nil {
		t.Fatal(err)
	}
	if _, err := st.In("us-east-1\x00"); !errors.Is(err, ErrConfig) {
		t.Fatalf("In with a NUL byte: %v, want ErrConfig", err)
	}
	tbl.Location = "status"
	if _, err := NewSQL(&sql.DB{}, tbl); !errors.Is(err, ErrConfig) {
		t.Fatalf("Location naming the status column: %v, want ErrConfig", err)
	}
}

func TestMemoryInScopesPendingToALocation(t *testing.T) {
	m := NewMemory(testTable(true))
	m.Put(Row{ID: "ws-1", Status: "removed", InstanceID: "i-1", Location: "us-east-1"})
	m.Put(Row{ID: "ws-2", Status: "removed", InstanceID: "i-2", Location: "eu-west-1"})
	m.Put(Row{ID: "ws-3", Status: "removed", InstanceID: "i-3"})
	wantIDs(t, "eu-west-1", mustPending(t, m.In("eu-west-1"), 10), "ws-2")
	wantIDs(t, "the default location", mustPending(t, m.In(""), 10), "ws-3")
	wantIDs(t, "the whole table", mustPending(t, m, 10), "ws-1", "ws-2", "ws-3")
	if !mustReaped(t, m.In("eu-west-1"), Pending{ResourceID: "ws-1", InstanceID: "i-1"}) {
		t.Fatal("Reaped through a view did not clear a row of another location")
	}
	wantIDs(t, "the whole table after", mustPending(t, m, 10), "ws-2", "ws-3")
}
