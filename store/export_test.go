package store

import (
	"testing"
	"time"
)

// MaxLastError is maxLastError, for the contract suite in store_test.
const MaxLastError = maxLastError

// ContractFixture is one of fixtures, for the contract suite in
// store_test: Open builds its store with a redrive grace given as no
// option at all when it is the default, so the default is what is tested.
type ContractFixture struct {
	Name string
	ID   func(i int) string
	Open func(t *testing.T, withParent bool, grace time.Duration) (Store, ContractHost)
}

// ContractHost is a fixture's hostTable with exported methods.
type ContractHost struct{ h hostTable }

func (c ContractHost) Put(t *testing.T, r Row)                 { c.h.put(t, r) }
func (c ContractHost) Get(t *testing.T, id string) (Row, bool) { return c.h.get(t, id) }
func (c ContractHost) Delete(t *testing.T, id string)          { c.h.del(t, id) }

// ContractFixtures returns every fixture.
func ContractFixtures() []ContractFixture {
	var out []ContractFixture
	for _, f := range fixtures() {
		out = append(out, ContractFixture{Name: f.name, ID: f.id, Open: func(t *testing.T, withParent bool, grace time.Duration) (Store, ContractHost) {
			var opts []Option
			if grace != DefaultRedriveGrace {
				opts = append(opts, WithRedriveGrace(grace))
			}
			st, h := f.open(t, withParent, opts...)
			return st, ContractHost{h}
		}})
	}
	return out
}
