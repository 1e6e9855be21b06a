package rollout_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/relman/relman/rollout"
)

func TestBatches(t *testing.T) {
	hosts := []string{"a", "b", "c", "d"}
	for name, tc := range map[string]struct {
		p    rollout.Policy
		want [][]string
	}{
		"all at once":              {rollout.Policy{}, [][]string{{"a", "b", "c", "d"}}},
		"rolling default batch":    {rollout.Policy{Strategy: rollout.StrategyRolling}, [][]string{{"a"}, {"b"}, {"c"}, {"d"}}},
		"a count":                  {rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "3"}, [][]string{{"a", "b", "c"}, {"d"}}},
		"a share":                  {rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "25%"}, [][]string{{"a"}, {"b"}, {"c"}, {"d"}}},
		"a share rounds up":        {rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "30%"}, [][]string{{"a", "b"}, {"c", "d"}}},
		"a tiny share is one host": {rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "1%"}, [][]string{{"a"}, {"b"}, {"c"}, {"d"}}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.p.Batches(hosts))
		})
	}
	assert.Nil(t, rollout.Policy{}.Batches(nil))
}

func TestMaxFailureCount(t *testing.T) {
	assert.Equal(t, 1, rollout.Policy{MaxFailures: "10%"}.MaxFailureCount(19), "a share rounds down")
	assert.Equal(t, 0, rollout.Policy{}.MaxFailureCount(19))
	assert.Equal(t, 2, rollout.Policy{MaxFailures: "2"}.MaxFailureCount(19))
}

func TestLegacyAndDefault(t *testing.T) {
	assert.True(t, rollout.Policy{}.Legacy())
	assert.True(t, rollout.Policy{Strategy: "all-at-once", MaxFailures: "0", Unreachable: "fail"}.Legacy())
	assert.False(t, rollout.Policy{Unreachable: "skip"}.Legacy())
	assert.False(t, rollout.Policy{AutoRollback: true}.Legacy())
	p := rollout.Policy{Strategy: rollout.StrategyRolling}
	p.Default()
	assert.Equal(t, rollout.Policy{Strategy: "rolling", Batch: "1", MaxFailures: "0", Unreachable: "fail"}, p)
	assert.True(t, func() bool { q := rollout.Policy{}; q.Default(); return q.Legacy() }(), "the default is the legacy behavior")
}

func TestProblems(t *testing.T) {
	for name, tc := range map[string]struct {
		p      rollout.Policy
		fields []string
	}{
		"fine":           {rollout.Policy{Strategy: "rolling", Batch: "25%", MaxFailures: "1", Pause: time.Second}, nil},
		"strategy":       {rollout.Policy{Strategy: "sideways"}, []string{"strategy"}},
		"zero batch":     {rollout.Policy{Batch: "0"}, []string{"batch"}},
		"share over 100": {rollout.Policy{MaxFailures: "120%"}, []string{"max_failures"}},
		"not a count":    {rollout.Policy{Batch: "two"}, []string{"batch"}},
		"every problem":  {rollout.Policy{Strategy: "x", Batch: "-1", MaxFailures: "y", Pause: -time.Second, Unreachable: "ignore"}, []string{"strategy", "batch", "max_failures", "pause", "unreachable"}},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, p := range tc.p.Problems() {
				got = append(got, p.Field)
			}
			assert.Equal(t, tc.fields, got)
			assert.Equal(t, len(tc.fields) > 0, tc.p.Validate() != nil)
		})
	}
}

func TestOverride(t *testing.T) {
	env := rollout.Policy{Strategy: "rolling", Batch: "2", MaxFailures: "1"}
	assert.Equal(t, env, env.Override(nil))
	got := env.Override(&rollout.Policy{Batch: "50%", Pause: time.Minute, AutoRollback: true})
	assert.Equal(t, rollout.Policy{Strategy: "rolling", Batch: "50%", MaxFailures: "1", Pause: time.Minute, AutoRollback: true}, got)
}

func TestParseCount(t *testing.T) {
	for in, want := range map[string]struct {
		n   int
		pct bool
		ok  bool
	}{
		"2": {2, false, true}, " 25% ": {25, true, true}, "100%": {100, true, true},
		"101%": {0, false, false}, "-1": {0, false, false}, "x": {0, false, false}, "": {0, false, false},
	} {
		n, pct, err := rollout.ParseCount(in)
		assert.Equal(t, want.ok, err == nil, in)
		if want.ok {
			assert.Equal(t, want.n, n, in)
			assert.Equal(t, want.pct, pct, in)
		}
	}
}
