package teardown_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/leakless/leakless/teardown"
)

var errThrottled = errors.New("RequestLimitExceeded")

func ExampleStopWithRetry() {
	// A cloud API that throttles the first two calls.
	calls := 0
	ec2 := teardown.StopperFunc(func(ctx context.Context, id string) error {
		calls++
		if calls <= 2 {
			return errThrottled
		}
		return nil
	})

	err := teardown.StopWithRetry(context.Background(), ec2, "i-0abc",
		teardown.WithMaxAttempts(5),
		teardown.WithBackoff(time.Millisecond, 10*time.Millisecond),
		teardown.WithJitter(teardown.NoJitter),
		teardown.WithOnRetry(func(info teardown.RetryInfo) {
			fmt.Printf("attempt %d: %v; retrying in %v\n", info.Attempt, info.Err, info.Delay)
		}),
	)
	fmt.Println("stopped:", err == nil, "after", calls, "calls")
	// Output:
	// attempt 1: RequestLimitExceeded; retrying in 1ms
	// attempt 2: RequestLimitExceeded; retrying in 2ms
	// stopped: true after 3 calls
}

func ExampleStopWithRetry_givingUp() {
	ec2 := teardown.StopperFunc(func(ctx context.Context, id string) error {
		return errThrottled
	})
	err := teardown.StopWithRetry(context.Background(), ec2, "i-0abc",
		teardown.WithBackoff(0, 0),
		teardown.WithOnExhausted(func(ctx context.Context, re *teardown.RetryError) {
			// Record the leak durably here: ctx may already be done.
			fmt.Println("leak:", re.ID, "after", re.Attempts, "attempts")
		}),
	)

	var re *teardown.RetryError
	if errors.As(err, &re) {
		fmt.Println("cause exhausted:", errors.Is(err, teardown.ErrExhausted))
		fmt.Println("last error kept:", errors.Is(err, errThrottled))
	}
	fmt.Println(err)
	// Output:
	// leak: i-0abc after 3 attempts
	// cause exhausted: true
	// last error kept: true
	// teardown: stop "i-0abc" gave up after 3 attempts: teardown: attempts exhausted: last error: RequestLimitExceeded
}

func ExamplePermanent() {
	ec2 := teardown.StopperFunc(func(ctx context.Context, id string) error {
		if id == "i-protected" {
			return teardown.Permanent(errors.New("OperationNotPermitted"))
		}
		return fmt.Errorf("InvalidInstanceID.NotFound: %w", teardown.ErrGone)
	})
	for _, id := range []string{"i-protected", "i-deleted"} {
		err := teardown.StopWithRetry(context.Background(), ec2, id)
		fmt.Printf("%s: %v\n", id, err)
	}
	// Output:
	// i-protected: teardown: stop "i-protected" gave up after 1 attempt: teardown: permanent error: last error: OperationNotPermitted
	// i-deleted: <nil>
}

// fleet is a BatchStopper, the shape of EC2's TerminateInstances: one call
// stops many instances and reports per id.
type fleet struct{ throttled map[string]bool }

func (f fleet) Stop(ctx context.Context, id string) error {
	return f.StopBatch(ctx, []string{id})[id]
}

func (f fleet) StopBatch(ctx context.Context, ids []string) map[string]error {
	fmt.Println("StopBatch", ids)
	res := make(map[string]error, len(ids))
	for _, id := range ids {
		switch {
		case id == "i-protected":
			res[id] = teardown.Permanent(errors.New("OperationNotPermitted"))
		case f.throttled[id]:
			f.throttled[id] = false // throttled once
			res[id] = errThrottled
		default:
			res[id] = nil
		}
	}
	return res
}

func ExampleStopAll() {
	ec2 := fleet{throttled: map[string]bool{"i-2": true}}
	results := teardown.StopAll(context.Background(), ec2,
		[]string{"i-1", "i-2", "i-3", "i-protected", "i-1"},
		teardown.WithBatchSize(10),
		teardown.WithBackoff(time.Millisecond, time.Millisecond),
	)
	ids := make([]string, 0, len(results))
	for id := range results {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Printf("%s: %v\n", id, results[id])
	}
	// Output:
	// StopBatch [i-1 i-2 i-3 i-protected]
	// StopBatch [i-2]
	// i-1: <nil>
	// i-2: <nil>
	// i-3: <nil>
	// i-protected: teardown: stop "i-protected" gave up after 1 attempt: teardown: permanent error: last error: OperationNotPermitted
}
