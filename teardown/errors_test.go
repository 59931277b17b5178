package teardown

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// apiError stands in for a cloud SDK's typed error.
type apiError struct{ code string }

func (e *apiError) Error() string { return "api error " + e.code }

func TestRetryErrorExposesCauseAndLast(t *testing.T) {
	last := fmt.Errorf("terminate: %w", &apiError{code: "RequestLimitExceeded"})
	err := error(&RetryError{ID: "i-1", Attempts: 2, Cause: context.DeadlineExceeded, Last: last})

	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is(err, DeadlineExceeded) = false, want true")
	}
	var api *apiError
	if !errors.As(err, &api) || api.code != "RequestLimitExceeded" {
		t.Errorf("errors.As found %v, want the stopper's API error", api)
	}
	want := `teardown: stop "i-1" gave up after 2 attempts: context deadline exceeded: last error: terminate: api error RequestLimitExceeded`
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if got := (&RetryError{ID: "i-1", Cause: context.Canceled}).Unwrap(); len(got) != 1 {
		t.Errorf("Unwrap() without Last = %v, want only the cause", got)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("UnauthorizedOperation")
	p := Permanent(base)
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"marked", p, true},
		{"wrapped", fmt.Errorf("terminate: %w", p), true},
		{"joined", errors.Join(errThrottled, p), true},
		{"inside a RetryError", &RetryError{Cause: ErrPermanent, Last: p}, true},
	} {
		if got := IsPermanent(tt.err); got != tt.want {
			t.Errorf("%s: IsPermanent = %v, want %v", tt.name, got, tt.want)
		}
	}
	if !errors.Is(p, base) || p.Error() != base.Error() {
		t.Errorf("Permanent(%v) = %v, want it to read as and unwrap to the original", base, p)
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if Permanent(p) != p {
		t.Error("Permanent marked an already permanent error twice")
	}
}
