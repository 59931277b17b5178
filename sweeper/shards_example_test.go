package sweeper_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leakless/leakless/store"
	"github.com/leakless/leakless/sweeper"
	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
)

// One sweeper per region, each over its region's rows and with its
// region's stopper, all run until ctx ends. Here ctx ends once both
// removed rows' instances are stopped.
func ExampleRunAll() {
	st := store.NewMemory(workspaces)
	st.Put(store.Row{ID: "ws-1", Status: "removed", InstanceID: "i-0aaa", Location: "us-east-1"})
	st.Put(store.Row{ID: "ws-2", Status: "removed", InstanceID: "i-0bbb", Location: "eu-west-1"})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu      sync.Mutex
		stopped []string
	)
	var sweepers []*sweeper.Sweeper
	for _, region := range []string{"eu-west-1", "us-east-1"} {
		ec2 := teardown.StopperFunc(func(ctx context.Context, id string) error {
			mu.Lock()
			defer mu.Unlock()
			stopped = append(stopped, id+" in "+region)
			if len(stopped) == 2 {
				cancel()
			}
			return nil
		})
		sw, err := sweeper.New(st.In(region), ec2)
		if err != nil {
			fmt.Println(err)
			return
		}
		sweepers = append(sweepers, sw)
	}
	err := sweeper.RunAll(ctx, sweepers...)
	slices.Sort(stopped)
	fmt.Println(stopped, err)
	// Output: [i-0aaa in us-east-1 i-0bbb in eu-west-1] <nil>
}

// A replica of a worker that sweeps two regions: each region's rows (the
// host table's region column) with that region's EC2 client and a shard
// lease of its own. Every replica runs both sweepers; the leading is
// spread across the replicas.
func ExampleRunAll_regions() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	st, err := store.NewPgx(pool, store.Table{Name: "workspaces", ID: "id", Status: "status",
		InstanceID: "instance_id", Removed: "removed", Location: "region"})
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	clients := map[string]*awsec2.Client{}
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		api := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Region = region })
		if clients[region], err = awsec2.New(api, awsec2.WithOwner(map[string]string{"team": "workspaces"})); err != nil {
			log.Fatal(err)
		}
	}
	if err := sweepRegions(ctx, st, clients); err != nil {
		log.Fatal(err)
	}
}

// sweepRegions is the README's wiring.
func sweepRegions(ctx context.Context, st *store.Postgres, clients map[string]*awsec2.Client) error {
	router, err := awsec2.NewRouter(clients) // one *awsec2.Client per region
	if err != nil {
		return err
	}
	shards := st.Shards("leakless-sweeper", router.Locations(), 30*time.Second)
	var sweepers []*sweeper.Sweeper
	for _, region := range router.Locations() {
		scoped, err := st.In(region) // st's Table has Location: "region"
		if err != nil {
			return err
		}
		ec2c, _ := router.At(region)
		sw, err := sweeper.New(scoped, ec2c, sweeper.WithLeader(shards.Lease(region)),
			sweeper.WithInventory(ec2c))
		if err != nil {
			return err
		}
		sweepers = append(sweepers, sw)
	}
	err = sweeper.RunAll(ctx, sweepers...)
	return errors.Join(err, shards.Leave(context.WithoutCancel(ctx)))
}
