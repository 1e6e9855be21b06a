package activities

import (
	"testing"
	"time"
)

func TestHeartbeatInterval(t *testing.T) {
	for timeout, want := range map[time.Duration]time.Duration{
		0:                      heartbeatEvery, // no timeout set
		time.Minute:            heartbeatEvery,
		10 * time.Second:       heartbeatEvery,
		9 * time.Second:        heartbeatEvery,
		3 * time.Second:        time.Second, // a third of the timeout, not the whole of it
		6 * time.Second:        2 * time.Second,
		200 * time.Millisecond: minHeartbeatEvery,
	} {
		if got := heartbeatInterval(timeout); got != want {
			t.Errorf("heartbeatInterval(%s) = %s, want %s", timeout, got, want)
		}
	}
}
