package ec2fake_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/mototest"
	"github.com/leakless/leakless/teardown/awsec2/ec2fake"
)

// boto3 and the AWS CLI, Python's EC2 clients, see the fake as they see
// moto, scenario by scenario (testdata/boto3_conformance.py). Skipped
// without python3 and boto3.
func TestBoto3AgreesWithMoto(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on PATH")
	}
	if out, err := exec.Command(py, "-c", "import boto3").CombinedOutput(); err != nil {
		t.Skipf("python3 has no boto3 (pip install boto3): %s", out)
	}
	moto := mototest.URL(t)
	srv := ec2fake.New()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/boto3_conformance.py", "--image", mototest.ImageID,
		"moto="+moto, "ec2fake="+srv.URL()).CombinedOutput()
	if err != nil {
		t.Fatalf("boto3_conformance.py: %v\n%s", err, out)
	}
	t.Logf("records both agree on:\n%s", out)
}
