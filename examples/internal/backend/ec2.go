package backend

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/internal/deployment"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// Region is the region used for the embedded fake and for endpoint URLs
// (AWS itself takes its region from the default configuration chain).
const Region = deployment.DefaultRegion

// EC2 is the cloud the examples run on.
type EC2 struct {
	// Client is the SDK client, with the SDK's ordinary retries: it
	// launches instances (each launch carries a ClientToken, so a retried
	// launch cannot start a second one).
	Client *ec2.Client
	// Stopper stops and lists this deployment's instances: it switches the
	// SDK's retries off per call and retries in teardown instead.
	Stopper *awsec2.Client
	// Fake is the embedded fake EC2, nil on a real endpoint.
	Fake *ec2fake.Server
	// Endpoint says where EC2 is, for logs: "embedded", a URL, or "aws".
	Endpoint string
}

// OpenEC2 connects to EC2 as endpoint says: "" starts an embedded fake
// (with fakeOpts), "aws" uses the default AWS configuration chain, and
// anything else is the URL of an EC2-compatible endpoint, such as moto,
// called with static test credentials. The owner tags are required: the
// Stopper lists only instances carrying them.
func OpenEC2(ctx context.Context, endpoint string, owner map[string]string, stopperOpts []awsec2.Option, fakeOpts ...ec2fake.Option) (*EC2, error) {
	return openEC2(ctx, endpoint, "", owner, stopperOpts, fakeOpts)
}

// openEC2 is OpenEC2 in region; "" is the default: [Region] on the fake
// and on an endpoint URL, the configuration chain's on AWS.
func openEC2(ctx context.Context, endpoint, region string, owner map[string]string, stopperOpts []awsec2.Option, fakeOpts []ec2fake.Option) (*EC2, error) {
	e := &EC2{Endpoint: endpoint}
	switch endpoint {
	case "":
		e.Fake = ec2fake.New(fakeOpts...)
		e.Endpoint = "embedded"
		e.Client = ec2.NewFromConfig(deployment.StaticConfig(e.Fake.URL(), region), func(o *ec2.Options) {
			o.HTTPClient = e.Fake.Client()
		})
	default:
		cfg, err := deployment.AWSConfig(ctx, endpoint, region)
		if err != nil {
			return nil, fmt.Errorf("backend: %w", err)
		}
		e.Client = ec2.NewFromConfig(cfg)
	}
	opts := append([]awsec2.Option{awsec2.WithOwner(owner)}, stopperOpts...)
	stopper, err := awsec2.New(e.Client, opts...)
	if err != nil {
		e.Close()
		return nil, fmt.Errorf("backend: %w", err)
	}
	e.Stopper = stopper
	return e, nil
}

// Regions is EC2 in several regions: one SDK client and one [awsec2.Client]
// (so one set of rate limiters) per region, behind a router.
type Regions struct {
	Router *awsec2.Router
	// EC2 is each region's cloud; on the embedded endpoint each region is
	// a fake of its own, as each AWS region is apart.
	EC2 map[string]*EC2
	// Endpoint says where EC2 is, for logs, as EC2.Endpoint does.
	Endpoint string
}

// OpenRegions connects to EC2 in every one of regions, as OpenEC2 does to
// one, closing what it opened when a later region fails.
func OpenRegions(ctx context.Context, endpoint string, regions []string, owner map[string]string, stopperOpts []awsec2.Option) (*Regions, error) {
	r := &Regions{EC2: map[string]*EC2{}}
	clients := map[string]*awsec2.Client{}
	for _, region := range regions {
		if region == "" {
			r.Close()
			return nil, fmt.Errorf("backend: an empty region in %q", regions)
		}
		e, err := openEC2(ctx, endpoint, region, owner, stopperOpts, nil)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.EC2[region], clients[region], r.Endpoint = e, e.Stopper, e.Endpoint
	}
	router, err := awsec2.NewRouter(clients)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("backend: %w", err)
	}
	r.Router = router
	return r, nil
}

// Close stops every region's embedded fake, if any.
func (r *Regions) Close() {
	for _, e := range r.EC2 {
		e.Close()
	}
}

// Close stops the embedded fake, if any.
func (e *EC2) Close() {
	if e.Fake != nil {
		e.Fake.Close()
	}
}
