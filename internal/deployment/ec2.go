package deployment

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
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
		HTTPClient:   PlainBodies(awshttp.NewBuildableClient()),
	}
}

// PlainBodies returns client sending request bodies as plain readers.
// The SDK's own request body answers io.EOF from WriteTo once the SDK
// has closed it, which it does when the response headers arrive; when an
// endpoint on the same machine answers before net/http has finished
// with the body, net/http takes that io.EOF for a write error and closes
// the connection while the answer is still being read ("use of closed
// network connection").
func PlainBodies(client aws.HTTPClient) aws.HTTPClient { return plainBodies{client} }

type plainBodies struct{ next aws.HTTPClient }

func (c plainBodies) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		r := req.Clone(req.Context())
		r.Body = struct{ io.ReadCloser }{req.Body}
		req = r
	}
	return c.next.Do(req)
}
