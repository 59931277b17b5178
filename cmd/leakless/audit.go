package main

import (
	"context"
	"encoding/json"
	"io"

	"github.com/leakless/leakless/internal/audit"
)

func auditCmd(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	var g guardFlags
	g.register(fs, c)
	priceFile := fs.String("price-file", c.getenv("PRICE_FILE"), "JSON object of instance type → estimated $/h, over the embedded table (env PRICE_FILE)")
	if err := c.parse(fs, args); err != nil {
		return c.fail(err)
	}
	if err := g.check(); err != nil {
		return c.fail(err)
	}
	p, err := audit.LoadPrices(*priceFile)
	if err != nil {
		return c.fail(err)
	}
	defer c.close()
	if err := c.open(ctx, true); err != nil {
		return c.fail(err)
	}
	r, err := audit.Take(ctx, audit.Config{
		Inventory: c.cloud, Types: c.ec2, Store: c.store, Ledger: c.events,
		Prices: p, Owner: c.owner, Table: c.table.Name,
		MinAge: g.minAge, ProvisionTimeout: g.provisionTimeout, ResourceTag: g.resourceTag, KeepTag: g.keepTag,
	})
	if err != nil {
		return c.fail(err)
	}
	if c.output == "json" {
		err = writeJSON(c.stdout, r)
	} else {
		err = r.WriteTable(c.stdout)
	}
	if err != nil {
		return c.fail(err)
	}
	if r.Leaks > 0 {
		return exitFinding
	}
	return exitOK
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
