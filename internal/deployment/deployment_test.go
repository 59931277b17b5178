package deployment_test

import (
	"context"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/leakless/leakless/internal/deployment"
)

func TestFlagsTakeTheEnvironmentThenTheProgramsDefaults(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://db", "REDRIVE_GRACE": "5s"}
	var f deployment.Flags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Register(fs, func(k string) string { return env[k] }, deployment.Defaults{EC2Endpoint: "aws", Owner: "team=x"})
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if f.DatabaseURL != "postgres://db" || f.EC2Endpoint != "aws" || f.Owner != "team=x" || f.RedriveGrace != 5*time.Second {
		t.Errorf("flags %+v: want the environment's url and grace, the program's endpoint and owner", f)
	}
	if err := f.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
}

func TestFlagsReportABadEnvironmentValue(t *testing.T) {
	var f deployment.Flags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	f.Register(fs, func(k string) string { return map[string]string{"REDRIVE_GRACE": "soon"}[k] }, deployment.Defaults{})
	if err := f.Check(); err == nil || !strings.Contains(err.Error(), "REDRIVE_GRACE") {
		t.Errorf("Check = %v, want an error naming REDRIVE_GRACE", err)
	}
	f = deployment.Flags{RedriveGrace: -time.Second}
	if err := f.Check(); err == nil {
		t.Error("Check of a negative grace: nil error, want one")
	}
}

func TestParseOwner(t *testing.T) {
	got, err := deployment.ParseOwner(" team = a=b ")
	if err != nil || len(got) != 1 || got["team"] != "a=b" {
		t.Errorf("ParseOwner = %v, %v; want team=a=b", got, err)
	}
	for _, bad := range []string{"", "team", "=x", "team=", " = "} {
		if _, err := deployment.ParseOwner(bad); err == nil {
			t.Errorf("ParseOwner(%q): nil error, want one", bad)
		}
	}
}

func TestAWSConfig(t *testing.T) {
	cfg, err := deployment.AWSConfig(context.Background(), "http://127.0.0.1:5000", "")
	if err != nil || cfg.Region != deployment.DefaultRegion || cfg.BaseEndpoint == nil || *cfg.BaseEndpoint != "http://127.0.0.1:5000" {
		t.Errorf("AWSConfig(url) = region %q endpoint %v, %v; want the URL in %s", cfg.Region, cfg.BaseEndpoint, err, deployment.DefaultRegion)
	}
	if cfg, _ := deployment.AWSConfig(context.Background(), "http://x", "eu-west-1"); cfg.Region != "eu-west-1" {
		t.Errorf("region %q, want eu-west-1", cfg.Region)
	}
	for _, bad := range []string{"", "localhost:5000", "ftp://x", "http://", "::"} {
		if _, err := deployment.AWSConfig(context.Background(), bad, ""); err == nil {
			t.Errorf("AWSConfig(%q): nil error, want one", bad)
		}
	}
}
