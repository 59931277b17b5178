package audit

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// embeddedPrices are on-demand list prices in US dollars an hour, Linux,
// us-east-1, for common instance types: an estimate of what an instance
// costs, never a bill (no discounts, no other region, no storage).
//
//go:embed prices.json
var embeddedPrices []byte

// PriceNote labels every dollar figure a report shows.
const PriceNote = "estimated: on-demand list prices (Linux, us-east-1), not a bill"

// Prices maps an instance type to its estimated dollars an hour.
type Prices map[string]float64

// LoadPrices returns the embedded table, overridden and extended by the
// JSON object in file ({"m5.large": 0.096, ...}) when file is not empty.
func LoadPrices(file string) (Prices, error) {
	p, err := decodePrices(embeddedPrices)
	if err != nil {
		return nil, fmt.Errorf("audit: embedded prices: %w", err)
	}
	if file == "" {
		return p, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("audit: price file: %w", err)
	}
	over, err := decodePrices(b)
	if err != nil {
		return nil, fmt.Errorf("audit: price file %s: %w", file, err)
	}
	maps.Copy(p, over)
	return p, nil
}

func decodePrices(b []byte) (Prices, error) {
	var p Prices
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, err
	}
	for k, v := range p {
		if math.IsNaN(v) || v < 0 {
			return nil, fmt.Errorf("price of %q is %v, want a non-negative number of dollars an hour", k, v)
		}
	}
	return p, nil
}

// TypeDescriber is the SDK call that tells an instance type's vCPUs;
// *ec2.Client is one.
type TypeDescriber interface {
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

// describeTypesBatch is how many types one DescribeInstanceTypes call names.
const describeTypesBatch = 100

// vcpus returns the default vCPU count of each of names that EC2 knows.
func vcpus(ctx context.Context, api TypeDescriber, names []string) (map[string]int, error) {
	out := map[string]int{}
	for batch := range slices.Chunk(names, describeTypesBatch) {
		in := &ec2.DescribeInstanceTypesInput{}
		for _, n := range batch {
			in.InstanceTypes = append(in.InstanceTypes, types.InstanceType(n))
		}
		res, err := api.DescribeInstanceTypes(ctx, in)
		if err != nil {
			return out, fmt.Errorf("describe instance types: %w", err)
		}
		for _, it := range res.InstanceTypes {
			if it.VCpuInfo != nil {
				out[string(it.InstanceType)] = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
			}
		}
	}
	return out, nil
}
