package sqlident_test

import (
	"errors"
	"fmt"

	"github.com/leakless/leakless/internal/sqlident"
)

func ExampleQuote() {
	for _, name := range []string{"structure_events", "audit.events", "events; drop table x"} {
		q, err := sqlident.Quote(name)
		fmt.Println(q, errors.Is(err, sqlident.ErrInvalid))
	}
	// Output:
	// "structure_events" false
	// "audit"."events" false
	//  true
}
