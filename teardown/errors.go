package teardown

import (
	"errors"
	"strconv"
)

// ErrGone reports that the instance no longer exists. A [Stopper] returns it
// (or an error wrapping it) and every caller treats it as success.
var ErrGone = errors.New("teardown: instance is gone")

// ErrNotFound reports that the cloud answered that the instance does not
// exist and did not list it either, but that this is not yet confirmed:
// right after launch EC2 can answer NotFound for an instance that is
// running, and it becomes visible only once its record has propagated. It
// is retryable, not success: a caller that holds the instance keeps it
// until the answer has held for a settle window (the sweeper's
// WithNotFoundSettle), and only then treats it as gone.
var ErrNotFound = errors.New("teardown: instance not found (not yet confirmed gone)")

// ErrExhausted is the [RetryError.Cause] when every allowed attempt failed.
var ErrExhausted = errors.New("teardown: attempts exhausted")

// ErrPermanent is the [RetryError.Cause] when the stopper returned an error
// marked with [Permanent] (or one the retry classifier refused to retry).
var ErrPermanent = errors.New("teardown: permanent error")

// ErrConfig is wrapped by every error that reports a bad option value.
var ErrConfig = errors.New("teardown: invalid configuration")

// errMarked is what every error made by [Permanent] reports itself to be, so
// that IsPermanent is a plain errors.Is walk: errors.As would allocate its
// target on every failed attempt.
var errMarked = errors.New("teardown: marked permanent")

type permanentError struct{ err error }

func (e *permanentError) Error() string        { return e.err.Error() }
func (e *permanentError) Unwrap() error        { return e.err }
func (e *permanentError) Is(target error) bool { return target == errMarked }

// Permanent reports true: it lets a package that must not import teardown
// (the store, recording the failure) tell a permanent error by its method
// set, with errors.As and interface{ Permanent() bool }.
func (e *permanentError) Permanent() bool { return true }

// Permanent marks err as not worth retrying. It returns nil when err is nil.
// The result unwraps to err, so errors.Is and errors.As still see through it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// [Permanent].
func IsPermanent(err error) bool {
	return errors.Is(err, errMarked)
}

// ErrPending is wrapped by a stopper's error when the stop was accepted
// but is not finished: the instance is on its way out, and something it
// owns is not done yet (awsec2's dependents, freed only once EC2 has
// finished the termination). Nothing changes within a backoff, so
// [StopWithRetry] and [StopAll] do not retry it: they return at once a
// *[RetryError] whose Cause is ErrPending, without calling OnExhausted,
// since nothing was given up. The caller keeps its record of the instance
// and tries again later (the sweeper's re-drive does).
var ErrPending = errors.New("teardown: stop accepted, not finished")

// IsPending reports whether err says the stop was accepted and is not
// finished: it wraps [ErrPending] and is not marked [Permanent] (a
// dependent that can never be finished makes the stop a failure).
func IsPending(err error) bool {
	return errors.Is(err, ErrPending) && !IsPermanent(err)
}

// RetryError is returned by [StopWithRetry] when it gives up.
//
// It never loses the stopper's last error: Unwrap exposes both Cause and
// Last, so errors.Is(err, context.DeadlineExceeded) and
// errors.As(err, &apiErr) both work on the same value.
type RetryError struct {
	// ID is the instance id that could not be stopped.
	ID string
	// Attempts is the number of calls actually made, not the configured maximum.
	Attempts int
	// Cause says why retrying stopped: ErrExhausted, ErrPermanent,
	// ErrPending, or the context's error (context.Canceled,
	// context.DeadlineExceeded or the cause given to
	// context.WithCancelCause).
	Cause error
	// Last is the stopper's last error; nil only when no call was made.
	Last error
}

// Error describes the failure with both the cause and the last error.
func (e *RetryError) Error() string {
	s := "teardown: stop " + strconv.Quote(e.ID) + " gave up after " + strconv.Itoa(e.Attempts) + " attempt"
	if e.Attempts != 1 {
		s += "s"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	if e.Last != nil {
		s += ": last error: " + e.Last.Error()
	}
	return s
}

// Unwrap returns Cause and Last (those that are non-nil).
func (e *RetryError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	return errs
}
