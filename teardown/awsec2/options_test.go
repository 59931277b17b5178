package awsec2

import (
	"errors"
	"math"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"golang.org/x/time/rate"

	"github.com/leakless/leakless/teardown"
)

func TestNewNilAPI(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, teardown.ErrConfig) {
		t.Fatalf("New(nil): %v, want ErrConfig", err)
	}
	var api *ec2.Client
	if _, err := New(api); !errors.Is(err, teardown.ErrConfig) {
		t.Fatalf("New((*ec2.Client)(nil)): %v, want ErrConfig", err)
	}
}

func TestDefaults(t *testing.T) {
	api := ec2.New(ec2.Options{Region: "us-east-1"})
	c, err := New(api)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		name  string
		l     *rate.Limiter
		rate  rate.Limit
		burst int
	}{
		{"calls", c.calls, 5, 100},
		{"resources", c.resources, 19, 1000},
		{"describes", c.describes, 20, 100},
	} {
		if b.l.Limit() != b.rate || b.l.Burst() != b.burst {
			t.Errorf("%s bucket %v/s burst %d, want %v/s burst %d", b.name, b.l.Limit(), b.l.Burst(), b.rate, b.burst)
		}
	}
	if c.mode != Terminate || c.batchSize != 500 || c.owner != nil {
		t.Errorf("mode %v, batch size %d, owner %v", c.mode, c.batchSize, c.owner)
	}

	stop, _ := New(api, WithMode(Stop))
	if stop.calls.Burst() != 50 {
		t.Errorf("Stop mode request burst %d, want EC2's 50 for StopInstances", stop.calls.Burst())
	}
	set, _ := New(api, WithMode(Stop), WithRateLimit(2, 7))
	if set.calls.Burst() != 7 || set.calls.Limit() != 2 {
		t.Errorf("explicit rate limit replaced in Stop mode: %v/s burst %d", set.calls.Limit(), set.calls.Burst())
	}
	off, _ := New(api, WithRateLimit(math.Inf(1), 1), WithResourceRateLimit(math.Inf(1), 1), WithBatchSize(1000))
	if off.calls.Limit() != rate.Inf || off.resources.Limit() != rate.Inf {
		t.Errorf("infinite rates not turned off: %v, %v", off.calls.Limit(), off.resources.Limit())
	}
}

func TestOwnerIsCopied(t *testing.T) {
	tags := map[string]string{"k": "v"}
	c, err := New(ec2.New(ec2.Options{Region: "us-east-1"}), WithOwner(tags))
	if err != nil {
		t.Fatal(err)
	}
	tags["k"] = "changed"
	if c.owner["k"] != "v" {
		t.Fatal("the client shares the caller's owner map")
	}
}

func TestBadOptions(t *testing.T) {
	api := ec2.New(ec2.Options{Region: "us-east-1"})
	for name, opt := range map[string][]Option{
		"mode":                  {WithMode(Mode(7))},
		"owner empty":           {WithOwner(map[string]string{})},
		"owner empty key":       {WithOwner(map[string]string{"": "v"})},
		"owner empty value":     {WithOwner(map[string]string{"k": ""})},
		"rate zero":             {WithRateLimit(0, 1)},
		"rate negative":         {WithRateLimit(-1, 1)},
		"rate NaN":              {WithRateLimit(math.NaN(), 1)},
		"burst zero":            {WithRateLimit(1, 0)},
		"describe rate":         {WithDescribeRateLimit(0, 1)},
		"describe burst":        {WithDescribeRateLimit(1, -1)},
		"resource rate":         {WithResourceRateLimit(0, 1)},
		"batch zero":            {WithBatchSize(0)},
		"batch over 1000":       {WithBatchSize(1001)},
		"batch over resources":  {WithResourceRateLimit(20, 100)},
		"batch over resources2": {WithBatchSize(800), WithResourceRateLimit(20, 700)},
	} {
		if _, err := New(api, opt...); !errors.Is(err, teardown.ErrConfig) {
			t.Errorf("%s: New: %v, want ErrConfig", name, err)
		}
	}
}

func TestModeString(t *testing.T) {
	if Terminate.String() != "terminate" || Stop.String() != "stop" || Mode(9).String() != "Mode(9)" {
		t.Fatal(Terminate.String(), Stop.String(), Mode(9).String())
	}
}
