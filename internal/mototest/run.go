package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ImageID is an AMI that moto knows in every region; ec2fake accepts any.
const ImageID = "ami-12c6146b"

// RunInstances launches n instances through the real RunInstances call,
// tagged with tags, and returns their ids. It fails the test on error.
func RunInstances(t testing.TB, api *ec2.Client, n int, tags map[string]string) []string {
	t.Helper()
	in := &ec2.RunInstancesInput{ImageId: aws.String(ImageID), MinCount: aws.Int32(int32(n)), MaxCount: aws.Int32(int32(n))}
	if len(tags) > 0 {
		spec := types.TagSpecification{ResourceType: types.ResourceTypeInstance}
		for k, v := range tags {
			spec.Tags = append(spec.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		in.TagSpecifications = []types.TagSpecification{spec}
	}
	out, err := api.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatalf("mototest: RunInstances: %v", err)
	}
	ids := make([]string, len(out.Instances))
	for i, inst := range out.Instances {
		ids[i] = aws.ToString(inst.InstanceId)
	}
	return ids
}
