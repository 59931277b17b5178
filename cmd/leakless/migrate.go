package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
)

// component is one set of versioned migrations: the store's or the
// ledger's.
type component struct {
	Name       string
	migrations []migration
	version    func(context.Context) (int, error)
	migrate    func(context.Context) error
}

type migration struct {
	Version int
	Name    string
	SQL     string
}

func (c *cli) components() []component {
	var st, ev []migration
	for _, m := range c.store.Migrations() {
		st = append(st, migration(m))
	}
	for _, m := range c.events.Migrations() {
		ev = append(ev, migration(m))
	}
	return []component{
		{Name: "store", migrations: st, version: c.store.SchemaVersion, migrate: c.store.Migrate},
		{Name: "events", migrations: ev, version: c.events.SchemaVersion, migrate: c.events.Migrate},
	}
}

func (m component) latest() int {
	if len(m.migrations) == 0 {
		return 0
	}
	return m.migrations[len(m.migrations)-1].Version
}

func migrate(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, "usage: leakless migrate up|status|sql [store|events] [VERSION] [flags]")
	}
	if len(args) == 0 {
		fs.Usage()
		return exitError
	}
	verb, rest := args[0], args[1:]
	var pos []string
	for len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if err := c.parse(fs, rest); err != nil {
		return c.fail(err)
	}
	defer c.close()
	if err := c.open(ctx, false); err != nil {
		return c.fail(err)
	}
	comps := c.components()
	switch verb {
	case "up":
		for _, m := range comps {
			if err := m.migrate(ctx); err != nil {
				return c.fail(err)
			}
		}
		return migrationStatus(ctx, c, comps)
	case "status":
		return migrationStatus(ctx, c, comps)
	case "sql":
		return migrationSQL(c, comps, pos)
	}
	return c.fail(fmt.Errorf("unknown migrate command %q: want up, status or sql", verb))
}

type statusRow struct {
	Component string `json:"component"`
	Version   int    `json:"version"`
	Latest    int    `json:"latest"`
	State     string `json:"state"` // current, behind or ahead
}

func migrationStatus(ctx context.Context, c *cli, comps []component) int {
	var rows []statusRow
	code := exitOK
	for _, m := range comps {
		v, err := m.version(ctx)
		if err != nil {
			return c.fail(err)
		}
		r := statusRow{Component: m.Name, Version: v, Latest: m.latest(), State: "current"}
		switch {
		case v < r.Latest:
			r.State, code = "behind", exitFinding
		case v > r.Latest:
			r.State, code = "ahead", exitFinding
		}
		rows = append(rows, r)
	}
	if c.output == "json" {
		if err := writeJSON(c.stdout, rows); err != nil {
			return c.fail(err)
		}
		return code
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tVERSION\tLATEST\tSTATE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Component, r.Version, r.Latest, r.State)
	}
	tw.Flush()
	return code
}

// migrationSQL prints the SQL of the versions asked for: every version of
// both components, every version of one, or one version of one.
func migrationSQL(c *cli, comps []component, pos []string) int {
	if len(pos) > 2 {
		return c.fail(fmt.Errorf("migrate sql takes at most a component and a version, got %q", pos))
	}
	version := 0
	if len(pos) == 2 {
		v, err := strconv.Atoi(pos[1])
		if err != nil || v < 1 {
			return c.fail(fmt.Errorf("version %q is not a positive number", pos[1]))
		}
		version = v
	}
	found := false
	for _, m := range comps {
		if len(pos) > 0 && pos[0] != m.Name {
			continue
		}
		for _, mg := range m.migrations {
			if version != 0 && mg.Version != version {
				continue
			}
			found = true
			fmt.Fprintf(c.stdout, "-- leakless %s migration %d: %s\n%s\n", m.Name, mg.Version, mg.Name, mg.SQL)
		}
	}
	if !found {
		return c.fail(errors.New("no such migration: want store or events, and a version they have"))
	}
	return exitOK
}

func forget(ctx context.Context, c *cli, args []string) int {
	fs := c.flags()
	var ids []string
	for len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		ids, args = append(ids, args[0]), args[1:]
	}
	if err := c.parse(fs, args); err != nil {
		return c.fail(err)
	}
	ids = append(ids, fs.Args()...)
	if len(ids) == 0 {
		return c.fail(errors.New("usage: leakless forget RESOURCE_ID... [flags]"))
	}
	defer c.close()
	if err := c.open(ctx, false); err != nil {
		return c.fail(err)
	}
	type result struct {
		ResourceID   string `json:"resource_id"`
		Acknowledged bool   `json:"acknowledged"`
	}
	var out []result
	code := exitOK
	for _, id := range ids {
		ok, err := c.store.Forget(ctx, id)
		if err != nil {
			return c.fail(err)
		}
		if !ok {
			code = exitFinding
		}
		out = append(out, result{id, ok})
	}
	if c.output == "json" {
		if err := writeJSON(c.stdout, out); err != nil {
			return c.fail(err)
		}
		return code
	}
	tw := tabwriter.NewWriter(c.stdout, 2, 8, 2, ' ', 0)
	for _, r := range out {
		what := "acknowledged: no longer retried"
		if !r.Acknowledged {
			what = "not pending (no such row, or it holds no instance): nothing written"
		}
		fmt.Fprintf(tw, "%s\t%s\n", r.ResourceID, what)
	}
	tw.Flush()
	return code
}
