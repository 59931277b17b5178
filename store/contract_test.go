package store_test

import (
	"context"
	"testing"

	"github.com/leakless/leakless/leaklesstest"
	"github.com/leakless/leakless/store"
)

// Both implementations offer Stopping, whose cases the suite skips for a
// store without it.
var (
	_ interface {
		Stopping(context.Context, ...store.Pending) error
	} = (*store.Memory)(nil)
	_ interface {
		Stopping(context.Context, ...store.Pending) error
	} = (*store.Postgres)(nil)
)

// TestContract runs the one contract suite, leaklesstest.StoreContract,
// against every implementation — Memory, and Postgres through pgx and
// database/sql with text, uuid and bigint ids — so they cannot drift apart.
func TestContract(t *testing.T) {
	for _, f := range store.ContractFixtures() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			leaklesstest.StoreContract(t, func(t *testing.T, cfg leaklesstest.StoreConfig) (store.Store, leaklesstest.Host) {
				return f.Open(t, cfg.Table.Parent != "", cfg.RedriveGrace)
			}, leaklesstest.WithIDs(f.ID), leaklesstest.WithLastErrorLimit(store.MaxLastError), leaklesstest.WithErrorPrefix("store: "))
		})
	}
}
