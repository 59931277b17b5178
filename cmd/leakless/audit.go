package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/leakless/leakless/internal/audit"
	"github.com/leakless/leakless/internal/deployment"
)

func auditCmd(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	var g guardFlags
	g.register(fs, c)
	priceFile := fs.String("price-file", c.getenv("PRICE_FILE"), "JSON object of instance type → estimated $/h, over the embedded table (env PRICE_FILE)")
	regionList := fs.String("regions", c.getenv("REGIONS"),
		"comma-separated regions to audit one by one, each against the rows -location-column puts there, with a total (env REGIONS); empty: -region alone")
	fs.StringVar(&c.table.Location, "location-column", deployment.Env(c.getenv, "LOCATION_COLUMN", ""),
		"the host table's column naming a row's region, for -regions (env LOCATION_COLUMN)")
	withDeps := fs.Bool("dependents", deployment.Env(c.getenv, "DEPENDENTS", "true") != "false",
		"also census the owned volumes, interfaces, Elastic IPs and spot requests (env DEPENDENTS); needs the Describe calls of each kind")
	if err := c.parse(fs, args); err != nil {
		return c.fail(err)
	}
	if err := g.check(); err != nil {
		return c.fail(err)
	}
	regions, err := splitRegions(*regionList)
	if err == nil && len(regions) > 0 && c.table.Location == "" {
		err = errors.New("-regions needs -location-column: the column that says which region a row's instance is in")
	}
	if err != nil {
		return c.fail(err)
	}
	p, err := audit.LoadPrices(*priceFile)
	if err != nil {
		return c.fail(err)
	}
	defer c.close()
	if err := c.open(ctx, len(regions) == 0); err != nil {
		return c.fail(err)
	}
	take := func(st audit.Store) (*audit.Report, error) {
		var deps audit.DependentLister
		if *withDeps {
			deps = c.cloud
		}
		return audit.Take(ctx, audit.Config{
			Dependents: deps,
			Inventory:  c.cloud, Types: c.ec2, Store: st, Ledger: c.events,
			Prices: p, Owner: c.owner, Table: c.table.Name,
			MinAge: g.minAge, ProvisionTimeout: g.provisionTimeout, ResourceTag: g.resourceTag, KeepTag: g.keepTag,
		})
	}
	var out interface{ WriteTable(io.Writer) error }
	var leaks int
	if len(regions) == 0 {
		r, err := take(c.store)
		if err != nil {
			return c.fail(err)
		}
		out, leaks = r, r.Leaks+r.DependentLeaks
	} else {
		var located []audit.Located
		for _, region := range regions {
			c.region = region
			if err := c.openEC2(ctx); err != nil {
				return c.fail(fmt.Errorf("%s: %w", region, err))
			}
			st, err := c.store.In(region)
			if err != nil {
				return c.fail(err)
			}
			r, err := take(st)
			if err != nil {
				return c.fail(fmt.Errorf("%s: %w", region, err))
			}
			located = append(located, audit.Located{Location: region, Report: r})
		}
		sum := audit.Sum(located)
		out, leaks = sum, sum.Leaks+sum.DependentLeaks
	}
	if c.output == "json" {
		err = writeJSON(c.stdout, out)
	} else {
		err = out.WriteTable(c.stdout)
	}
	if err != nil {
		return c.fail(err)
	}
	if leaks > 0 {
		return exitFinding
	}
	return exitOK
}

// splitRegions parses -regions: each region named once, none empty.
func splitRegions(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var regions []string
	for r := range strings.SplitSeq(list, ",") {
		r = strings.TrimSpace(r)
		if r == "" || slices.Contains(regions, r) {
			return nil, fmt.Errorf("-regions %q: name each region once, none empty", list)
		}
		regions = append(regions, r)
	}
	return regions, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
