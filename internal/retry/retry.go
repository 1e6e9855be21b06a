// Package retry is relman's one client-side backoff: try a call again,
// waiting longer each time, while its error says a later try can succeed.
// It stands on github.com/cenkalti/backoff/v5. Workflows need none of it:
// there an activity's retry policy owns the retry.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy is how long to wait: First after the first failure, doubling (with
// a little jitter, so many callers do not come back at once) up to Max.
type Policy struct {
	First, Max time.Duration
}

// jitter spreads each wait by up to a fifth either way.
const jitter = 0.2

// Do runs op until it succeeds, again(err) says its error is final, or ctx
// ends; it returns op's last result and error (so a caller that gives up
// still sees why the last try failed). again nil means every error is worth
// another try. notify, when not nil, hears each error that will be tried
// again and the wait before that try.
func Do[T any](ctx context.Context, p Policy, again func(error) bool, op func() (T, error), notify func(err error, wait time.Duration)) (T, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier, b.RandomizationFactor = p.First, p.Max, 2, jitter
	var last T
	var lastErr error
	res, err := backoff.Retry(ctx, func() (T, error) {
		last, lastErr = op()
		if lastErr != nil && again != nil && !again(lastErr) {
			return last, backoff.Permanent(lastErr)
		}
		return last, lastErr
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, d time.Duration) {
		if notify != nil {
			notify(err, d)
		}
	}))
	if err != nil && lastErr != nil {
		return last, lastErr
	}
	return res, err
}
