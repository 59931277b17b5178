package awsec2_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// A router over two regions, each with its own client and so its own
// rate limiters. Each fake EC2 numbers its instances alike, so the same id
// lives in both regions: stopping it in one leaves the other's running.
func ExampleNewRouter() {
	owner := map[string]string{"team": "workspaces"}
	clients := map[string]*awsec2.Client{}
	fakes := map[string]*ec2fake.Server{}
	for _, region := range []string{"eu-west-1", "us-east-1"} {
		srv := ec2fake.New()
		defer srv.Close()
		srv.Launch(ec2fake.Instance{Tags: owner})
		c, err := awsec2.New(newEC2(srv), awsec2.WithOwner(owner))
		if err != nil {
			panic(err)
		}
		clients[region], fakes[region] = c, srv
	}
	router, err := awsec2.NewRouter(clients)
	if err != nil {
		panic(err)
	}

	owned, _ := router.Owned(context.Background())
	for _, in := range owned {
		fmt.Println(in.Location, in.ID, in.State)
	}
	eu, _ := router.At("eu-west-1")
	fmt.Println(eu.Stop(context.Background(), owned[0].ID))
	for _, region := range router.Locations() {
		in, _ := fakes[region].Instance(owned[0].ID)
		fmt.Println(region, in.State)
	}
	_, err = router.At("ap-south-1")
	fmt.Println(errors.Is(err, awsec2.ErrUnknownLocation))

	_, err = awsec2.NewRouter(map[string]*awsec2.Client{"eu-west-1": eu, "eu-central-1": eu})
	fmt.Println(errors.Is(err, teardown.ErrConfig))
	// Output:
	// eu-west-1 i-00000000000000002 running
	// us-east-1 i-00000000000000002 running
	// <nil>
	// eu-west-1 terminated
	// us-east-1 running
	// true
	// true
}
