package ec2fake_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// DescribeInstanceTypes answers with EC2's (and moto's) figures, and an
// unknown type fails the whole call.
func TestDescribeInstanceTypes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			api := b.open(t).api
			out, err := api.DescribeInstanceTypes(context.Background(), &ec2.DescribeInstanceTypesInput{
				InstanceTypes: []types.InstanceType{"t3.micro", "m5.large"},
			})
			if err != nil {
				t.Fatal(err)
			}
			got := map[types.InstanceType][2]int64{}
			for _, it := range out.InstanceTypes {
				got[it.InstanceType] = [2]int64{int64(aws.ToInt32(it.VCpuInfo.DefaultVCpus)), aws.ToInt64(it.MemoryInfo.SizeInMiB)}
			}
			want := map[types.InstanceType][2]int64{"t3.micro": {2, 1024}, "m5.large": {2, 8192}}
			if len(got) != len(want) || got["t3.micro"] != want["t3.micro"] || got["m5.large"] != want["m5.large"] {
				t.Errorf("vCPUs and MiB = %v, want %v", got, want)
			}
			_, err = api.DescribeInstanceTypes(context.Background(), &ec2.DescribeInstanceTypesInput{
				InstanceTypes: []types.InstanceType{"t3.micro", "x9.nonesuch"},
			}, noRetry)
			if code, _ := apiError(t, err); code != "InvalidInstanceType" {
				t.Errorf("unknown type: code %q, want InvalidInstanceType", code)
			}
		})
	}
}
