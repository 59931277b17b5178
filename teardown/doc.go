// Package teardown stops cloud instances and keeps trying until the stop
// has really happened, or says exactly why it gave up.
//
// A [Stopper] makes one call to the cloud. Its error says what to do next:
//
//   - nil: the instance is stopped.
//   - an error wrapping [ErrGone]: the instance no longer exists, which is
//     just as good, so callers treat it as success.
//   - an error marked with [Permanent]: retrying cannot help (no permission,
//     termination protection, a malformed id).
//   - an error wrapping [ErrPending]: the stop was accepted and is not
//     finished (the instance is terminating; what it owns is freed only
//     once it has): nothing changes within a backoff, so the loops return
//     at once, without calling OnExhausted, and the caller keeps its
//     record to stop the instance again later.
//   - any other error: a later attempt may succeed (throttling, a 5xx, a
//     timeout).
//
// [StopWithRetry] turns that one call into a bounded retry loop: at most
// [WithMaxAttempts] calls, separated by capped exponential backoff
// (base·2^(n-1), never more than the cap, computed without overflow) with
// jitter so that many callers failing together do not retry together.
//
//	err := teardown.StopWithRetry(ctx, ec2, "i-0abc",
//		teardown.WithMaxAttempts(5),
//		teardown.WithBackoff(500*time.Millisecond, 10*time.Second),
//		teardown.WithOnExhausted(events.Exhausted(sink, events.TypeRetryExhausted)),
//	)
//
// The loop respects the caller's context: it checks it before the first
// call, never retries once it has ended, and never starts a sleep that would
// end at or after its deadline, returning at once instead. A call cut off by
// [WithAttemptTimeout] while the caller's context is live is retried, so one
// hung request cannot use up the caller's whole deadline.
//
// When it gives up, StopWithRetry returns a *[RetryError] that keeps both
// why it stopped (Cause: [ErrExhausted], [ErrPermanent], or the context's
// error) and the stopper's last error (Last). Both are reachable with
// errors.Is and errors.As, so a cancelled loop still tells you that the last
// call was throttled. [WithOnExhausted] sees every such error exactly once,
// which is where a durable record of the leak belongs.
//
// [StopAll] stops many instances with bounded concurrency. Given a
// [BatchStopper] (EC2's TerminateInstances takes up to 1,000 ids), it sends
// batches and re-sends, round by round, only the ids that failed retryably.
//
// Bad arguments are errors, never panics: an invalid option value returns an
// error wrapping [ErrConfig], and an empty id an error marked Permanent,
// without calling the stopper.
package teardown
