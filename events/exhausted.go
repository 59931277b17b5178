package events

import (
	"context"
	"errors"
	"strings"

	"github.com/leakless/leakless/teardown"
)

// The values of the "cause" payload field written by [Exhausted].
const (
	CauseExhausted = "exhausted" // every allowed attempt failed
	CauseDeadline  = "deadline"  // the caller's context reached its deadline
	CauseCanceled  = "canceled"  // the caller's context was canceled
	CausePermanent = "permanent" // the stopper's error was marked permanent
)

// Exhausted adapts s for [teardown.WithOnExhausted]: each time
// StopWithRetry gives up, it emits one event, synchronously, before
// StopWithRetry returns. An empty eventType means [TypeRetryExhausted].
//
// The event's Subject is the RetryError's ID, and its payload is
//
//	resource_id  the same id
//	attempts     the number of calls actually made
//	cause        "exhausted", "deadline", "canceled" or "permanent"
//	last_error   the text of the stopper's last error (absent if no call was made)
//	error_code   the API error code, such as EC2's "UnauthorizedOperation",
//	             when the last error carries one (absent otherwise)
//
// The context StopWithRetry hands over has often ended — that is frequently
// why it gave up — so s receives it detached from its cancellation, with
// its values kept: a sink that honours cancellation still writes. s must
// bound its own writes, as the Postgres sink does. The callback has no
// error to return, so a failed Emit is dropped; wrap s in [BestEffort] to
// have it logged.
func Exhausted(s Sink, eventType string) func(context.Context, *teardown.RetryError) {
	if eventType == "" {
		eventType = TypeRetryExhausted
	}
	if s == nil {
		return func(context.Context, *teardown.RetryError) {}
	}
	return func(ctx context.Context, re *teardown.RetryError) {
		if re == nil {
			return
		}
		payload := map[string]any{
			"resource_id": re.ID,
			"attempts":    re.Attempts,
			"cause":       cause(re.Cause),
		}
		if re.Last != nil {
			// jsonb cannot hold NUL: the record of the leak matters more than one byte of its text.
			payload["last_error"] = strings.ToValidUTF8(strings.ReplaceAll(re.Last.Error(), "\x00", ""), "\uFFFD")
			// smithy.APIError, which every AWS SDK error implements, has this
			// method; matching the method keeps this package free of AWS.
			var coded interface{ ErrorCode() string }
			if errors.As(re.Last, &coded) && coded.ErrorCode() != "" {
				payload["error_code"] = coded.ErrorCode()
			}
		}
		_ = s.Emit(context.WithoutCancel(ctx), Event{Type: eventType, Subject: re.ID, Payload: payload})
	}
}

// cause names why retrying stopped. StopWithRetry gives up for exactly four
// reasons; anything it does not name is its context ending with a custom
// cause (context.WithCancelCause), a cancellation.
func cause(err error) string {
	switch {
	case errors.Is(err, teardown.ErrExhausted):
		return CauseExhausted
	case errors.Is(err, teardown.ErrPermanent):
		return CausePermanent
	case errors.Is(err, context.DeadlineExceeded):
		return CauseDeadline
	default:
		return CauseCanceled
	}
}
