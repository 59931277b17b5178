package deployment

import (
	"context"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// DefaultRegion is the region of an endpoint URL when none is given.
const DefaultRegion = "us-east-1"

// AWSConfig returns the AWS configuration endpoint names: "aws" loads the
// default configuration chain (in region, when set); anything else must
// be the http(s) URL of an EC2-compatible endpoint, such as moto, called
// with static test credentials.
func AWSConfig(ctx context.Context, endpoint, region string) (aws.Config, error) {
	if endpoint == "aws" {
		var opts []func(*config.LoadOptions) error
		if region != "" {
			opts = append(opts, config.WithRegion(region))
		}
		cfg, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return aws.Config{}, fmt.Errorf("aws configuration: %w", err)
		}
		return cfg, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return aws.Config{}, fmt.Errorf("ec2 endpoint %q is not \"aws\" or an http(s) URL", endpoint)
	}
	return StaticConfig(endpoint, region), nil
}

// StaticConfig is a configuration for an EC2-compatible endpoint that
// accepts any credentials, in region ("" is [DefaultRegion]).
func StaticConfig(endpoint, region string) aws.Config {
	if region == "" {
		region = DefaultRegion
	}
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("leakless", "leakless", ""),
	}
}
