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

	"github.com/leakless/leakless/teardown"
)

// embeddedPrices are list prices in US dollars, us-east-1: an hour of
// common instance types on demand (Linux), a GB-month of each EBS volume
// type, and an hour of a public IPv4 address (AWS bills every one since
// February 2024, associated or not). An estimate of what a resource
// costs, never a bill: no discounts, no other region, no provisioned IOPS
// or throughput.
//
//go:embed prices.json
var embeddedPrices []byte

// PriceNote labels every dollar figure a report shows.
const PriceNote = "estimated: on-demand list prices (Linux, us-east-1), not a bill"

// Prices maps a priced thing to its estimated dollars: an instance type
// ("m5.large") to dollars an hour, "volume:" and an EBS volume type
// ("volume:gp3") to dollars a GB-month, and "address" to dollars an hour
// for an Elastic IP.
type Prices map[string]float64

// Keys of Prices beside the instance types.
const (
	volumePricePrefix = "volume:"
	addressPrice      = "address"
)

// hoursPerMonth is AWS's month for GB-month prices.
const hoursPerMonth = 730

// Dependent returns the estimated dollars an hour of d: a volume's size
// at its type's GB-month price, an Elastic IP's hourly price, and nothing
// for an interface or a spot request (the instance a request launches is
// priced as an instance). priced is false when the table has no price
// for it.
func (p Prices) Dependent(d teardown.Dependent) (usdPerHour float64, priced bool) {
	switch d.Kind {
	case teardown.DependentVolume:
		gbMonth, ok := p[volumePricePrefix+d.Type]
		return gbMonth * float64(d.SizeGiB) / hoursPerMonth, ok
	case teardown.DependentAddress:
		h, ok := p[addressPrice]
		return h, ok
	}
	return 0, true
}

// LoadPrices returns the embedded table, overridden and extended by the
// JSON object in file ({"m5.large": 0.096, "volume:gp3": 0.08,
// "address": 0.005, ...}) when file is not empty.
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
