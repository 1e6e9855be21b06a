package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/retry"
)

var (
	errAgain = errors.New("again")
	errFinal = errors.New("final")
)

func quick() retry.Policy { return retry.Policy{First: time.Millisecond, Max: 4 * time.Millisecond} }

func TestDoRetriesUntilSuccess(t *testing.T) {
	n := 0
	var waits []time.Duration
	got, err := retry.Do(context.Background(), quick(), nil, func() (int, error) {
		n++
		if n < 5 {
			return 0, errAgain
		}
		return 42, nil
	}, func(err error, d time.Duration) {
		assert.ErrorIs(t, err, errAgain)
		waits = append(waits, d)
	})
	require.NoError(t, err)
	assert.Equal(t, 42, got)
	assert.Equal(t, 5, n)
	require.Len(t, waits, 4)
	for _, d := range waits {
		assert.LessOrEqual(t, d, time.Duration(float64(4*time.Millisecond)*1.2), "a wait past Max and its jitter")
	}
}

func TestDoStopsAtAFinalError(t *testing.T) {
	n := 0
	_, err := retry.Do(context.Background(), quick(), func(err error) bool { return errors.Is(err, errAgain) }, func() (int, error) {
		n++
		if n < 3 {
			return 0, errAgain
		}
		return 0, errFinal
	}, nil)
	assert.ErrorIs(t, err, errFinal)
	assert.Equal(t, 3, n)
}

func TestDoReturnsTheLastErrorWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	n := 0
	_, err := retry.Do(ctx, quick(), nil, func() (int, error) { n++; return 0, errAgain }, nil)
	assert.ErrorIs(t, err, errAgain, "the caller learns why the last try failed, not only that time ran out")
	assert.Greater(t, n, 1)
}
