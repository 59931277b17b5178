package ec2fake_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

func Example() {
	srv := ec2fake.New()
	defer srv.Close()
	client := ec2.New(ec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL()),
		HTTPClient:   srv.Client(),
		Credentials:  credentials.NewStaticCredentialsProvider("id", "secret", ""),
	})

	id := srv.Launch(ec2fake.Instance{Tags: map[string]string{"app": "demo"}})
	srv.Fail("TerminateInstances", "RequestLimitExceeded", 1)

	in := &ec2.TerminateInstancesInput{InstanceIds: []string{id}}
	noRetry := func(o *ec2.Options) { o.Retryer = aws.NopRetryer{} }
	_, err := client.TerminateInstances(context.Background(), in, noRetry)
	fmt.Println(err != nil)
	_, err = client.TerminateInstances(context.Background(), in, noRetry)
	fmt.Println(err)

	got, _ := srv.Instance(id)
	fmt.Println(got.State, srv.Calls("TerminateInstances"))
	for _, r := range srv.Requests() {
		fmt.Printf("%s %d %q %s\n", r.Action, r.Status, r.Code, r.SDKRequest)
	}
	// Output:
	// true
	// <nil>
	// terminated 2
	// TerminateInstances 503 "RequestLimitExceeded" attempt=1; max=1
	// TerminateInstances 200 "" attempt=1; max=1
}
