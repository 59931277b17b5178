package awsec2_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/teardown"
	"github.com/leakless/leakless/teardown/awsec2"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// newEC2 returns an SDK client for srv. Against real EC2 it would be
// ec2.NewFromConfig(cfg), with cfg from config.LoadDefaultConfig.
func newEC2(srv *ec2fake.Server) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL()),
		HTTPClient:   srv.Client(),
		Credentials:  credentials.NewStaticCredentialsProvider("id", "secret", ""),
	})
}

func ExampleNew() {
	srv := ec2fake.New()
	defer srv.Close()
	id := srv.Launch(ec2fake.Instance{})

	ec2c, err := awsec2.New(newEC2(srv), awsec2.WithOwner(map[string]string{"leakless:deployment": "prod"}))
	if err != nil {
		panic(err)
	}
	err = teardown.StopWithRetry(context.Background(), ec2c, id, teardown.WithMaxAttempts(5))
	fmt.Println(err)
	in, _ := srv.Instance(id)
	fmt.Println(in.State)
	// Output:
	// <nil>
	// terminated
}

// One unknown id fails a whole TerminateInstances call on EC2, and so does
// one protected instance; StopBatch still settles every id on its own. An
// id EC2 does not know is not found, which is not yet gone: right after
// launch EC2 answers so for a running instance.
func ExampleClient_StopBatch() {
	srv := ec2fake.New()
	defer srv.Close()
	a := srv.Launch(ec2fake.Instance{})
	b := srv.Launch(ec2fake.Instance{Protected: true})
	unknown := "i-0000000000000dead"
	ec2c, _ := awsec2.New(newEC2(srv))

	res := ec2c.StopBatch(context.Background(), []string{a, unknown, b})
	for _, id := range []string{a, unknown, b} {
		err := res[id]
		fmt.Printf("%s stopped=%v not-found=%v permanent=%v\n", id, err == nil, errors.Is(err, teardown.ErrNotFound), teardown.IsPermanent(err))
	}
	// Output:
	// i-00000000000000002 stopped=true not-found=false permanent=false
	// i-0000000000000dead stopped=false not-found=true permanent=false
	// i-00000000000000004 stopped=false not-found=false permanent=true
}

func ExampleClient_Owned() {
	srv := ec2fake.New()
	defer srv.Close()
	srv.Launch(ec2fake.Instance{Tags: map[string]string{"deployment": "blue"}})
	srv.Launch(ec2fake.Instance{Tags: map[string]string{"deployment": "green"}})
	srv.Launch(ec2fake.Instance{Tags: map[string]string{"deployment": "blue"}, State: ec2fake.Stopped})

	ec2c, _ := awsec2.New(newEC2(srv), awsec2.WithOwner(map[string]string{"deployment": "blue"}))
	owned, _ := ec2c.Owned(context.Background())
	for _, in := range owned {
		fmt.Println(in.ID, in.State, in.Tags["deployment"])
	}
	// Output:
	// i-00000000000000002 running blue
	// i-00000000000000006 stopped blue
}
