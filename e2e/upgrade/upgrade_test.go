//go:build upgrade

package upgrade

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/workflows"
)

// want is a release the test started and the end state it must reach.
type want struct {
	what, txid string
	status     workflows.Status
}

// row is one line of the printed table.
type row struct {
	scenario         string
	started, right   int
	failedTasks      int
	liveGap, restart time.Duration
	notes            []string
}

// TestUpgrade runs the previous release with releases in every state,
// upgrades it in the guide's order (manager first with a surge, then the
// builder, then the installers one at a time), then rolls relman back
// (installers first, then the builder, then the manager) with releases in
// flight, and forward again. It prints a table; the upgrade must be clean,
// what the roll-back breaks is reported.
func TestUpgrade(t *testing.T) {
	env.DumpOnFailure(t)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := newStack(t)
	var rows []row
	defer func() { printTable(rows, time.Since(began)) }()

	// The previous release, as it runs today.
	s.start("manager", previous)
	s.start("builder", previous)
	for _, h := range hosts {
		s.start(h, previous)
	}
	if err := env.WaitRegistered(ctx, append([]string{builderName}, hosts...)...); err != nil {
		t.Fatal(err)
	}
	s.regs = startRegMonitor(ctx, append([]string{builderName}, hosts...))
	defer s.regs.stop()

	r := s.upgrade(ctx)
	rows = append(rows, r)
	if t.Failed() {
		return
	}
	rows = append(rows, s.rollback(ctx)...)
}

// upgrade is scenario 1.
func (s *stack) upgrade(ctx context.Context) row {
	t := s.t
	since := time.Now()
	s.regs.take()
	// Two releases of site done before the upgrade: the rollback after it
	// goes back to the first.
	site1 := s.release(ctx, previous, "site", "--env", "test")
	if d, err := env.Final(ctx, site1); err != nil || d.Status != workflows.StatusInstallCompleted {
		t.Fatalf("site v1 on the previous release: %v %v", d.Status, err)
	}
	if _, err := testenv.Commit(s.repo, map[string]string{"app/index.html": "v2\n"}); err != nil {
		t.Fatal(err)
	}
	site2 := s.release(ctx, previous, "site", "--env", "test")
	if d, err := env.Final(ctx, site2); err != nil || d.Status != workflows.StatusInstallCompleted {
		t.Fatalf("site v2 on the previous release: %v %v", d.Status, err)
	}

	// In flight: a slow build, an approval, an install holding a lock and
	// a release waiting for it.
	step(t, "site v1 %s and v2 %s installed", site1, site2)
	building := s.release(ctx, previous, "slow", "--env", "test")
	s.waitBuilds(ctx, 1)
	step(t, "building %s", building)
	approval := s.release(ctx, previous, "box", "--env", "gated")
	s.waitStatus(ctx, previous, approval, string(workflows.StatusAwaitingApproval))
	step(t, "awaiting approval %s", approval)
	holding := s.release(ctx, previous, "box", "--env", "serial")
	for _, h := range hosts {
		s.waitFile(ctx, filepath.Join(s.gates, "serial-"+h+"-"+holding))
	}
	step(t, "installing, holding the lock %s", holding)
	waiting := s.release(ctx, previous, "box", "--env", "serial")
	s.waitStatus(ctx, previous, waiting, string(workflows.StatusWaiting))
	step(t, "in flight on the previous release: building %s, approval %s, installing (lock) %s, waiting (lock) %s", building, approval, holding, waiting)

	// The guide's order. The namespace first (this release's upgrade note).
	if _, err := cli(ctx, env.Relman, "namespace", "prepare"); err != nil {
		t.Fatal(err)
	}
	step(t, "namespace prepared")
	s.replaceManager(ctx, env.Relman)
	step(t, "manager upgraded")
	s.replace(ctx, "builder", env.Relman)
	step(t, "builder upgraded; the slow build was handed back")
	s.open("build.open")
	// The installs the previous manager ordered carry no signed order: a
	// new installer refuses them. The guide: let them end on the previous
	// installers first (here: open their gate) before replacing those.
	out, err := cli(ctx, env.Relman, "list", "--all-managers", "--status", string(workflows.StatusBuildCompleted))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, holding) {
		t.Errorf("`relman list --all-managers --status BUILD_COMPLETED` does not show the release installing (%s):\n%s", holding, out)
	}
	s.open("install.open-" + holding)
	if d, err := env.Final(ctx, holding); err != nil || d.Status != workflows.StatusInstallCompleted {
		t.Fatalf("the install the previous manager ordered: %v %v", d.Status, err)
	}
	// The waiting release now holds the lock and installs on orders the new
	// manager signed, through the installers' upgrade.
	for _, h := range hosts {
		s.waitFile(ctx, filepath.Join(s.gates, "serial-"+h+"-"+waiting))
	}
	step(t, "%s installing on signed orders", waiting)
	for _, h := range hosts {
		s.replace(ctx, h, env.Relman)
		step(t, "%s upgraded", h)
	}
	s.open("install.open")
	if _, err := cli(ctx, env.Relman, "approve", approval, "--comment", "after the upgrade"); err != nil {
		t.Error(err)
	}
	out, err = cli(ctx, env.Relman, "rollback", "site", "--env", "test", "--to", site1)
	if err != nil {
		t.Error(err)
	}
	rb := lastField(out)

	wants := []want{
		{"site v1 (before)", site1, workflows.StatusInstallCompleted},
		{"site v2 (before)", site2, workflows.StatusInstallCompleted},
		{"slow build across manager+builder", building, workflows.StatusInstallCompleted},
		{"approval across upgrade", approval, workflows.StatusInstallCompleted},
		{"installing (lock held) across manager+builder", holding, workflows.StatusInstallCompleted},
		{"waiting for lock, then installing across installers", waiting, workflows.StatusInstallCompleted},
		{"rollback after upgrade (to v1)", rb, workflows.StatusRollbackCompleted},
	}
	r := s.judge(ctx, "upgrade: manager, builder, installers", since, wants, 4*time.Minute)
	for _, h := range hosts {
		b, err := os.ReadFile(env.Path(h, "app", "current", "index.html"))
		if err != nil || string(b) != "v1\n" {
			t.Errorf("%s after the rollback serves %q (%v), want v1", h, b, err)
		}
	}
	for _, n := range r.notes {
		t.Log(n)
	}
	if r.right != r.started {
		t.Errorf("%d of %d releases reached their end state", r.right, r.started)
	}
	if r.failedTasks != 0 {
		t.Errorf("%d workflow tasks failed", r.failedTasks)
	}
	if r.liveGap > 10*time.Second {
		t.Errorf("a live host was missing from `relman registrations` for %s", r.liveGap)
	}
	return r
}

// step logs a step with the time of day, to read beside the role logs and
// the registration events.
func step(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("%s "+format, append([]any{time.Now().Format("15:04:05.0")}, args...)...)
}

func lastField(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// judge waits for every release to end and checks its status, counts the
// failed workflow tasks since since, and takes the registration gaps.
func (s *stack) judge(ctx context.Context, scenario string, since time.Time, wants []want, wait time.Duration) row {
	r := row{scenario: scenario, started: len(wants)}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for _, w := range wants {
		if w.txid == "" {
			r.notes = append(r.notes, fmt.Sprintf("%s: not started", w.what))
			continue
		}
		d, err := env.Final(wctx, w.txid)
		switch {
		case d != nil && d.Status == w.status:
			r.right++
		case d != nil && d.Status != "":
			r.notes = append(r.notes, fmt.Sprintf("%s (%s): %s, want %s: %s (%v)", w.what, w.txid, d.Status, w.status, d.Reason, err))
		default:
			st, serr := status(ctx, env.Relman, w.txid)
			r.notes = append(r.notes, fmt.Sprintf("%s (%s): not ended within %s (status now %q %v): %v", w.what, w.txid, wait, st, serr, err))
		}
	}
	failed, err := failedTasks(ctx, since)
	if err != nil {
		s.t.Errorf("reading histories: %v", err)
	}
	r.failedTasks = len(failed)
	for _, f := range failed {
		r.notes = append(r.notes, "workflow task failed: "+f)
	}
	live, who, restart, polls, bad, lastErr, events := s.regs.take()
	r.liveGap, r.restart = live, restart
	if live > 0 {
		r.notes = append(r.notes, fmt.Sprintf("registrations: %s missing for %s while it ran", who, live.Round(100*time.Millisecond)))
	}
	for _, e := range events {
		r.notes = append(r.notes, "registrations: "+e)
	}
	if bad > 0 {
		r.notes = append(r.notes, fmt.Sprintf("registrations: %d of %d reads failed or were partial; last: %s", bad, polls, lastErr))
	}
	return r
}

func printTable(rows []row, took time.Duration) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRELEASES STARTED\tRIGHT END STATE\tFAILED WORKFLOW TASKS\tLONGEST REGISTRATION GAP (LIVE HOST)\tLONGEST RESTART GAP")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", r.scenario, r.started, r.right, r.failedTasks, r.liveGap.Round(100*time.Millisecond), r.restart.Round(100*time.Millisecond))
	}
	tw.Flush()
	fmt.Printf("\nupgrade test (previous release %s), %s:\n%s", previousName(), took.Round(time.Second), b.String())
	for _, r := range rows {
		for _, n := range r.notes {
			fmt.Printf("  %s: %s\n", r.scenario, n)
		}
	}
}

func previousName() string {
	if v := os.Getenv("RELMAN_PREVIOUS_RELEASE"); v != "" {
		return v
	}
	return filepath.Base(previous)
}

// rollback is scenario 2: relman rolled back to the previous release
// (installers first, then the builder, then the manager: the reverse of
// the upgrade) with releases in flight that this release started, then
// forward again. What the roll-back breaks is reported, not failed on:
// the guide says rolling back past a version gate is safe only once the
// releases the newer version started have ended. Forward again, every
// release must end right.
func (s *stack) rollback(ctx context.Context) []row {
	t := s.t
	since := time.Now()
	s.regs.take()
	s.shut("build.open")
	s.shut("install.open")
	n := s.buildsStarted()
	building := s.release(ctx, env.Relman, "slow", "--env", "test", "--rebuild")
	s.waitBuilds(ctx, n+1)
	approval := s.release(ctx, env.Relman, "box", "--env", "gated")
	s.waitStatus(ctx, env.Relman, approval, string(workflows.StatusAwaitingApproval))
	installing := s.release(ctx, env.Relman, "box", "--env", "serial")
	for _, h := range hosts {
		s.waitFile(ctx, filepath.Join(s.gates, "serial-"+h+"-"+installing))
	}
	step(t, "in flight on this release: building %s, approval %s, installing %s", building, approval, installing)
	for _, h := range hosts {
		s.replace(ctx, h, previous)
	}
	s.replace(ctx, "builder", previous)
	s.replaceManager(ctx, previous)
	step(t, "rolled back to the previous release")
	s.open("build.open")
	s.open("install.open")
	if _, err := cli(ctx, previous, "approve", approval, "--comment", "after the roll-back"); err != nil {
		step(t, "approve with the previous CLI: %v", err)
	}
	wants := []want{
		{"slow build across roll-back", building, workflows.StatusInstallCompleted},
		{"approval across roll-back", approval, workflows.StatusInstallCompleted},
		{"installing across roll-back", installing, workflows.StatusInstallCompleted},
	}
	back := s.judge(ctx, "roll back: installers, builder, manager", since, wants, time.Minute)
	for _, n := range back.notes {
		t.Log("roll back: " + n)
	}

	// Forward again, in the guide's order, with a release the previous
	// release started waiting for approval.
	since = time.Now()
	again := s.release(ctx, previous, "box", "--env", "gated")
	s.waitStatus(ctx, previous, again, string(workflows.StatusAwaitingApproval))
	s.replaceManager(ctx, env.Relman)
	s.replace(ctx, "builder", env.Relman)
	for _, h := range hosts {
		s.replace(ctx, h, env.Relman)
	}
	step(t, "forward again")
	if _, err := cli(ctx, env.Relman, "approve", again, "--comment", "forward again"); err != nil {
		t.Error(err)
	}
	fwd := s.judge(ctx, "forward again: manager, builder, installers", since, []want{{"approval across forward again", again, workflows.StatusInstallCompleted}}, 2*time.Minute)
	for _, n := range fwd.notes {
		t.Log("forward again: " + n)
	}
	if fwd.right != fwd.started {
		t.Errorf("forward again, %d of %d releases reached their end state", fwd.right, fwd.started)
	}
	return []row{back, fwd}
}
