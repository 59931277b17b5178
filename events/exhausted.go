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

// WithResource returns ctx carrying the row (resource) id that owns
// instanceID, for [Exhausted]: the event it writes when StopWithRetry or
// StopAll gives up on that instance is then about the row, as the ledger's
// subject should be, rather than the instance. Call it once per instance
// before stopping, in the handler that knows both ids:
//
//	ctx = events.WithResource(ctx, instanceID, workspaceID)
//	err := teardown.StopWithRetry(ctx, ec2, instanceID, retry...)
//
// For StopAll, call it for each instance of the batch. The latest call for
// an instance wins.
func WithResource(ctx context.Context, instanceID, resourceID string) context.Context {
	return context.WithValue(ctx, resourceKey{}, &resourceLink{instance: instanceID, resource: resourceID, next: resourceOf(ctx)})
}

// resourceKey is the context key of WithResource's links.
type resourceKey struct{}

// resourceLink is one WithResource call; next is the one before it. A
// list, not a map, so each call costs O(1) and shares what came before.
type resourceLink struct {
	instance, resource string
	next               *resourceLink
}

func resourceOf(ctx context.Context) *resourceLink {
	l, _ := ctx.Value(resourceKey{}).(*resourceLink)
	return l
}

// resourceFor returns the row id WithResource gave instanceID, or "".
func resourceFor(ctx context.Context, instanceID string) string {
	for l := resourceOf(ctx); l != nil; l = l.next {
		if l.instance == instanceID {
			return l.resource
		}
	}
	return ""
}

// Exhausted adapts s for [teardown.WithOnExhausted]: each time
// StopWithRetry gives up, it emits one event, synchronously, before
// StopWithRetry returns. An empty eventType means [TypeRetryExhausted].
//
// The event's Subject is the row id [WithResource] put in the context for
// the RetryError's ID (the instance), or, without one, the instance id
// itself. Its payload is
//
//	instance_id  the RetryError's ID, always
//	resource_id  the row id, when WithResource gave one (absent otherwise)
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
			"instance_id": re.ID,
			"attempts":    re.Attempts,
			"cause":       cause(re.Cause),
		}
		subject := re.ID
		if rid := resourceFor(ctx, re.ID); rid != "" {
			payload["resource_id"] = rid
			subject = rid
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
		_ = s.Emit(context.WithoutCancel(ctx), Event{Type: eventType, Subject: subject, Payload: payload})
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
