package leakless_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/events"
	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
)

var workspaces = store.Table{
	Name: "workspaces", ID: "id", Parent: "parent_id",
	Status: "status", InstanceID: "instance_id", Removed: "removed",
}

// The wiring of the package documentation, on the in-memory store and a
// stopper that is throttled once: the DELETE handler stops what it can,
// and the sweeper finishes the rest.
func Example() {
	ctx := context.Background()
	st := store.NewMemory(workspaces, store.WithRedriveGrace(0))
	st.Put(store.Row{ID: "ws-1", Status: "active", InstanceID: "i-0aa"})
	st.Put(store.Row{ID: "ws-2", Parent: "ws-1", Status: "active", InstanceID: "i-0bb"})
	sink := events.NewMemory()
	throttled := false
	ec2Client := teardown.StopperFunc(func(_ context.Context, id string) error {
		if id == "i-0bb" && !throttled {
			throttled = true
			return errors.New("RequestLimitExceeded")
		}
		return nil
	})

	// The DELETE handler: remove the tree, stop what it held, clear each
	// row that was stopped.
	held, err := st.RemoveTree(ctx, "ws-1")
	if err != nil {
		log.Fatal(err)
	}
	ids := make([]string, len(held))
	for i, p := range held {
		ids[i] = p.InstanceID
	}
	results := teardown.StopAll(ctx, ec2Client, ids,
		teardown.WithMaxAttempts(1),
		teardown.WithOnExhausted(events.Exhausted(sink, events.TypeRetryExhausted)))
	for _, p := range held {
		if results[p.InstanceID] == nil {
			if _, err := st.Reaped(ctx, p); err != nil {
				log.Fatal(err)
			}
		}
	}
	fmt.Println("left to the sweeper:", len(sink.Events()), "give-up recorded")

	// The sweeper, for whatever the request path could not finish.
	sw, err := sweeper.New(st, ec2Client, sweeper.WithEvents(sink))
	if err != nil {
		log.Fatal(err)
	}
	rep, err := sw.SweepOnce(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sweeper reaped:", rep.Reaped)
	// Output:
	// left to the sweeper: 1 give-up recorded
	// sweeper reaped: 1
}

// The same wiring on PostgreSQL and EC2, as a service runs it: one store
// over the host's table, the leak ledger beside it, and a sweeper that
// leads through the store's lease. It needs a database and AWS
// credentials, so it is compiled, not run.
func Example_postgres() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := store.NewPgx(pool, workspaces)
	if err != nil {
		log.Fatal(err)
	}
	ledger, err := events.NewPgx(pool)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []interface{ Migrate(context.Context) error }{st, ledger} {
		if err := m.Migrate(ctx); err != nil {
			log.Fatal(err)
		}
	}
	sink := events.Spool(ledger)
	defer sink.Close(ctx)

	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	ec2Client, err := awsec2.New(ec2.NewFromConfig(awsCfg), awsec2.WithOwner(map[string]string{"app": "workspaces"}))
	if err != nil {
		log.Fatal(err)
	}

	sw, err := sweeper.New(st, ec2Client,
		sweeper.WithEvents(sink),
		sweeper.WithLeader(st.Lease("leakless-sweeper", 30*time.Second)),
		sweeper.WithRowGone(ec2Client, sweeper.RowGone{MinAge: 15 * time.Minute}))
	if err != nil {
		log.Fatal(err)
	}
	if err := sw.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
