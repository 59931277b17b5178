// Package awsec2 stops EC2 instances for teardown, over aws-sdk-go-v2.
//
// A [Client] is a teardown.Stopper, a teardown.BatchStopper, a
// teardown.Inventory and a teardown.Describer. It gets EC2's edges right so that the retry loop in
// package teardown can be the only one:
//
//   - The SDK's own retries are off for every call (aws.NopRetryer), so one
//     teardown attempt is one HTTP request, and the EC2 error code of the
//     last attempt is never lost in an SDK backoff.
//   - Errors are classified: InvalidInstanceID.NotFound is confirmed with
//     DescribeInstances. An instance described as shutting down or
//     terminated is teardown.ErrGone; one not described at all is
//     teardown.ErrNotFound, which is retryable and not gone, because for a
//     while after launch EC2 neither knows nor lists an instance that is
//     running (a caller clears its record only once the answer has held
//     for a settle window). Throttling, 5xx and IncorrectInstanceState are
//     retryable; AuthFailure, OperationNotPermitted (termination
//     protection), InvalidInstanceID.Malformed, InvalidParameter* and an
//     UnauthorizedOperation for a single id are teardown.Permanent. The
//     smithy.APIError is always kept: errors.As(err, &apiErr) works on
//     every result.
//   - One bad id fails a whole TerminateInstances call on EC2 ("none of the
//     instances are terminated"), so [Client.StopBatch] takes such answers
//     apart: the ids EC2 names are settled on their own and the rest are
//     sent again. An answer that names no id is split until only the
//     culprit fails: an IAM policy conditioned on a resource tag
//     (aws:ResourceTag) refuses a whole call with UnauthorizedOperation for
//     one instance without the tag, so the ids not carrying every owner
//     tag are sent apart first, then the batch is halved, at most 2n-1
//     calls for n ids.
//   - Client-side token buckets (golang.org/x/time/rate) hold the client to
//     EC2's own budget for TerminateInstances (5 requests/s, burst 100;
//     1,000 instances, refilling 20/s, which the client paces at 19/s) and
//     DescribeInstances, so a bulk reap neither gets throttled nor starves
//     the host's own launches. A throttling answer drains the buckets.
//   - With [WithDependents], a stop also finishes what the instance owned:
//     a persistent spot request is cancelled before the instance is
//     terminated (so nothing relaunches it), and once its termination is
//     confirmed the volumes and interfaces not deleted with it are deleted
//     when available and its Elastic IPs released, each action under its
//     own bucket (DeleteVolume and friends 100 burst / 5 per s,
//     CancelSpotInstanceRequests 50 / 5). Only dependents with the owner
//     tags are touched, and the stop is not done until they are.
//   - [Client.Owned] lists only live instances carrying every owner tag
//     with its value, and [Client.Describe] looks such instances up by id
//     in any state; both refuse to run without owner tags.
//
// Wiring:
//
//	cfg, err := config.LoadDefaultConfig(ctx)
//	...
//	ec2c, err := awsec2.New(ec2.NewFromConfig(cfg),
//		awsec2.WithOwner(map[string]string{"leakless:deployment": "prod"}))
//	...
//	results := teardown.StopAll(ctx, ec2c, instanceIDs) // batched: ec2c is a BatchStopper
//
// EC2 meters its API per account and region. A [Router] holds one Client
// per location ("region" or "account/region"), each with its own rate
// limiters, and hands out the one for a location with [Router.At]; an id
// is only ever sent where the caller says it lives.
//
// Package ec2fake is a fake EC2 server to test such code against.
package awsec2
