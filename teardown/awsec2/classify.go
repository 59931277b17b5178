package awsec2

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// class is what an EC2 error means for the ids of the call that got it.
type class int

const (
	// retryable: a later attempt may succeed. The default for anything
	// not listed, such as connection errors.
	retryable class = iota
	// throttled: retryable, and the account's budget is spent, so the
	// client's own bucket is drained before anything else is sent.
	throttled
	// permanent: no id in the call can succeed by retrying.
	permanent
	// notFound: the ids the message names may be gone, or (right after
	// launch) not yet visible; DescribeInstances decides, and an id it does
	// not list is not found, which is not yet gone.
	notFound
	// wrongState: the ids named are in a state the call cannot act on:
	// gone when already shutting down or terminated, else retryable.
	wrongState
	// refused: permanent for the ids the message names, and only them.
	refused
	// denied: IAM refused the call, naming no id. A policy conditioned on
	// a resource tag refuses a whole call for one instance without it, so
	// the batch is split until the refusal is down to single ids.
	denied
)

// perID reports whether the error may be about particular ids in the call
// rather than the call as a whole. When EC2's message names none of them,
// the batch is split until it does, or until one id is left.
func (k class) perID() bool { return k == notFound || k == wrongState || k == refused || k == denied }

// codes classifies EC2 error codes. Codes starting "InvalidParameter" are
// permanent too. Anything else is retryable: other codes, HTTP 5xx answers
// without EC2's envelope (the SDK reports them as "UnknownError") and
// errors that never reached EC2, such as a refused connection.
var codes = map[string]class{
	"InvalidInstanceID.NotFound":  notFound,   // confirmed by DescribeInstances: eventual consistency
	"IncorrectInstanceState":      wrongState, // e.g. stopping an instance that is still pending
	"OperationNotPermitted":       refused,    // termination protection: one instance, not the batch
	"InvalidInstanceID.Malformed": refused,
	"UnauthorizedOperation":       denied,    // aws:ResourceTag conditions: one untagged instance refuses the batch
	"AuthFailure":                 permanent, // the credentials: no id in any call can succeed

	"RequestLimitExceeded":                   throttled, // EC2's throttling answer
	"Throttling":                             throttled,
	"ThrottlingException":                    throttled,
	"ThrottledException":                     throttled,
	"RequestThrottled":                       throttled,
	"RequestThrottledException":              throttled,
	"TooManyRequestsException":               throttled,
	"ProvisionedThroughputExceededException": throttled,
	"TransactionInProgressException":         throttled,
	"BandwidthLimitExceeded":                 throttled,
	"LimitExceededException":                 throttled,
	"SlowDown":                               throttled,
	"PriorRequestNotComplete":                throttled,
	"EC2ThrottledException":                  throttled,

	"InternalError":      retryable,
	"InternalFailure":    retryable,
	"ServiceUnavailable": retryable,
	"Unavailable":        retryable,
}

// classify returns what err means and the EC2 message that came with it.
func classify(err error) (class, string) {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return retryable, ""
	}
	code := api.ErrorCode()
	if k, ok := codes[code]; ok {
		return k, api.ErrorMessage()
	}
	if strings.HasPrefix(code, "InvalidParameter") {
		return permanent, api.ErrorMessage()
	}
	return retryable, api.ErrorMessage()
}
