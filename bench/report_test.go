package main

import (
	"slices"
	"testing"
	"time"
)

// A paired row judges the median of run i against run i, and names the
// goal only when it is goaled.
func TestPairedRow(t *testing.T) {
	relman := []time.Duration{300 * time.Millisecond, 100 * time.Millisecond, 900 * time.Millisecond}
	base := []time.Duration{100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond}
	r := pairedRow(false, "7", "to 3 hosts", relman, base, true, 5.0)
	if r.ratio != 3 || r.relman != "300 ms" || r.floor != "100 ms" || !slices.Equal(r.runs, []float64{3, 1, 9}) {
		t.Errorf("row: %+v, want the median run (ratio 3, 300 ms vs 100 ms) and every run's ratio", r)
	}
	if r.goal != "≤ 5.0" || r.met != "yes" {
		t.Errorf("goal %q met %q, want ≤ 5.0 and yes", r.goal, r.met)
	}
	if r := pairedRow(false, "7f", "", relman, base, true, 1.5); r.goal != "≤ 1.5" || r.met != "no" {
		t.Errorf("goal %q met %q, want ≤ 1.5 and no", r.goal, r.met)
	}
	if r := pairedRow(false, "7", "", relman, base, false, 5.0); r.goal != "-" || r.met != "-" {
		t.Errorf("not goaled: goal %q met %q, want - and -", r.goal, r.met)
	}
}
