package leaklesstest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/leakless/leakless/events"
)

// RequireEvent returns the first event in sink of type typ about subject
// ("" matches any subject), and fails t, listing the events sink holds,
// when there is none.
func RequireEvent(t testing.TB, sink *events.Memory, typ, subject string) events.Event {
	t.Helper()
	all := sink.Events()
	for _, e := range all {
		if e.Type == typ && (subject == "" || e.Subject == subject) {
			return e
		}
	}
	seen := make([]string, len(all))
	for i, e := range all {
		seen[i] = fmt.Sprintf("%s %q", e.Type, e.Subject)
	}
	t.Fatalf("leaklesstest: no %s event about %q among %d: [%s]", typ, subject, len(all), strings.Join(seen, ", "))
	return events.Event{}
}
