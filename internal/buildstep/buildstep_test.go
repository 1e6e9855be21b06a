package buildstep

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newRunner(t *testing.T) (*Runner, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "build.log")
	return &Runner{LogPath: logPath}, logPath
}

func workDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRunSuccessLogs(t *testing.T) {
	r, logPath := newRunner(t)
	dir := workDir(t)
	res, err := r.Run(context.Background(), Step{Name: "build", Argv: []string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; pwd"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "build" || res.ExitCode != 0 || res.Duration <= 0 {
		t.Errorf("result = %+v", res)
	}
	if _, err := r.Run(context.Background(), Step{Name: "second", Argv: []string{"echo", "again"}, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	log := readLog(t, logPath)
	for _, want := range []string{`==> step "build": sh -c`, "to-stdout\n", "to-stderr\n", dir + "\n", `step "build" exited with status 0`, `==> step "second": echo again`, "again\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Index(log, `step "build"`) > strings.Index(log, `step "second"`) {
		t.Errorf("log is not appended in order:\n%s", log)
	}
}

func TestRunFailureTail(t *testing.T) {
	r, logPath := newRunner(t)
	script := `i=1; while [ $i -le 100 ]; do echo "line $i"; i=$((i+1)); done; exit 2`
	res, err := r.Run(context.Background(), Step{Name: "build", Argv: []string{"sh", "-c", script}, Dir: workDir(t)})
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want *StepError", err, err)
	}
	if se.ExitCode != 2 || res.ExitCode != 2 || se.Step != "build" || se.TimedOut || se.Canceled {
		t.Errorf("StepError = %+v, result = %+v", se, res)
	}
	lines := strings.Split(se.Tail, "\n")
	if len(lines) != DefaultTailLines || lines[len(lines)-1] != "line 100" || lines[0] != "line 71" {
		t.Errorf("tail has %d lines, first %q last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	if strings.Contains(se.Tail, "line 1\n") || strings.HasPrefix(se.Tail, "line 1\n") {
		t.Errorf("tail contains line 1:\n%s", se.Tail)
	}
	if !strings.HasPrefix(err.Error(), `step "build" exited with status 2: `) || !strings.HasSuffix(err.Error(), "line 100") {
		t.Errorf("Error() = %q", err.Error())
	}
	if log := readLog(t, logPath); !strings.Contains(log, "line 1\n") || !strings.Contains(log, "line 100\n") {
		t.Error("the log file must keep all output")
	}
}

func TestRunTailLinesAndPartialLine(t *testing.T) {
	r := &Runner{TailLines: 2}
	_, err := r.Run(context.Background(), Step{Name: "x", Argv: []string{"sh", "-c", `printf 'a\nb\nc\nno newline'; exit 1`}, Dir: workDir(t)})
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatal(err)
	}
	if se.Tail != "c\nno newline" {
		t.Errorf("Tail = %q", se.Tail)
	}
}

func TestRunCleanEnv(t *testing.T) {
	t.Setenv("RELMAN_SECRET_TEST", "x")
	r, logPath := newRunner(t)
	dir := workDir(t)
	_, err := r.Run(context.Background(), Step{Name: "env", Argv: []string{"env"}, Dir: dir, Env: map[string]string{"RELMAN_STEP_VAR": "from-step"}})
	if err != nil {
		t.Fatal(err)
	}
	log := readLog(t, logPath)
	if strings.Contains(log, "RELMAN_SECRET_TEST") {
		t.Errorf("the builder's environment leaked into the step:\n%s", log)
	}
	if !strings.Contains(log, "RELMAN_STEP_VAR=from-step\n") {
		t.Errorf("step.Env missing:\n%s", log)
	}
	home := filepath.Join(filepath.Dir(dir), ".home")
	if !strings.Contains(log, "HOME="+home+"\n") || !strings.Contains(log, "PATH=/usr/local/bin:/usr/bin:/bin") {
		t.Errorf("default HOME/PATH missing:\n%s", log)
	}

	// An explicit BaseEnv is the whole environment; step.Env still overrides it.
	r2 := &Runner{LogPath: filepath.Join(t.TempDir(), "log"), BaseEnv: []string{"PATH=/usr/bin:/bin", "ONLY=base", "OVER=base"}}
	if _, err := r2.Run(context.Background(), Step{Name: "env", Argv: []string{"env"}, Dir: dir, Env: map[string]string{"OVER": "step"}}); err != nil {
		t.Fatal(err)
	}
	log = readLog(t, r2.LogPath)
	body := log[strings.Index(log, "\n")+1 : strings.LastIndex(strings.TrimSuffix(log, "\n"), "\n")]
	got := strings.Fields(body)
	want := []string{"PATH=/usr/bin:/bin", "ONLY=base", "OVER=step"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("env = %v, want %v", got, want)
	}
}

// grandchildStep runs a shell that leaves a grandchild behind and reports its pid, for the
// timeout and cancel tests.
func grandchildStep(t *testing.T, dir string) (Step, string) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	return Step{Name: "hang", Dir: dir, Argv: []string{"sh", "-c", `sleep 60 & echo $! > "$PIDFILE"; sleep 60`}, Env: map[string]string{"PIDFILE": pidFile}}, pidFile
}

func readPid(t *testing.T, pidFile string) int {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// assertGone checks the process no longer runs. A zombie counts as gone: it has exited
// and only waits for its new parent (an init outside our control) to reap it.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return
	}
	if state, _, ok := procStat(pid); ok && (state == 'Z' || state == 'X') {
		return
	} else if !ok {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("grandchild %d still running after Run returned", pid)
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	r, logPath := newRunner(t)
	step, pidFile := grandchildStep(t, workDir(t))
	step.Timeout = 500 * time.Millisecond
	start := time.Now()
	res, err := r.Run(context.Background(), step)
	elapsed := time.Since(start)
	var se *StepError
	if !errors.As(err, &se) || !se.TimedOut || se.Canceled {
		t.Fatalf("err = %#v, want a timed-out StepError", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("a timeout should match context.DeadlineExceeded")
	}
	if !strings.HasPrefix(err.Error(), `step "hang" timed out after 500ms`) {
		t.Errorf("Error() = %q", err.Error())
	}
	if res.ExitCode != 128+int(syscall.SIGTERM) {
		t.Errorf("ExitCode = %d, want %d (SIGTERM)", res.ExitCode, 128+int(syscall.SIGTERM))
	}
	if elapsed > 4*time.Second {
		t.Errorf("Run took %s; SIGTERM should have ended it at once", elapsed)
	}
	assertGone(t, readPid(t, pidFile))
	if !strings.Contains(readLog(t, logPath), `step "hang" timed out`) {
		t.Error("log lacks the timeout line")
	}
}

func TestRunCancelKillsGroup(t *testing.T) {
	r, _ := newRunner(t)
	step, pidFile := grandchildStep(t, workDir(t))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err := r.Run(ctx, step)
	var se *StepError
	if !errors.As(err, &se) || !se.Canceled || se.TimedOut {
		t.Fatalf("err = %#v, want a canceled StepError", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Error("cancellation should match context.Canceled")
	}
	assertGone(t, readPid(t, pidFile))
}

// TestRunSigtermIgnored checks the SIGKILL fallback for a step that ignores SIGTERM.
func TestRunSigtermIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the grace period")
	}
	r, _ := newRunner(t)
	dir := workDir(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	step := Step{Name: "stubborn", Dir: dir, Timeout: 200 * time.Millisecond, Env: map[string]string{"PIDFILE": pidFile},
		Argv: []string{"sh", "-c", `trap '' TERM; sh -c 'trap "" TERM; sleep 60' & echo $! > "$PIDFILE"; sleep 60`}}
	start := time.Now()
	_, err := r.Run(context.Background(), step)
	var se *StepError
	if !errors.As(err, &se) || !se.TimedOut {
		t.Fatalf("err = %v", err)
	}
	if elapsed := time.Since(start); elapsed < gracePeriod || elapsed > gracePeriod+5*time.Second {
		t.Errorf("Run took %s, want about the grace period %s", elapsed, gracePeriod)
	}
	assertGone(t, readPid(t, pidFile))
}

func TestRunKillsLeftoversAfterSuccess(t *testing.T) {
	r, _ := newRunner(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	step := Step{Name: "daemon", Dir: workDir(t), Env: map[string]string{"PIDFILE": pidFile},
		Argv: []string{"sh", "-c", `sleep 60 & echo $! > "$PIDFILE"; exit 0`}}
	start := time.Now()
	if _, err := r.Run(context.Background(), step); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 4*time.Second {
		t.Errorf("Run took %s", elapsed)
	}
	assertGone(t, readPid(t, pidFile))
}

func TestRunMissingBinary(t *testing.T) {
	r, _ := newRunner(t)
	_, err := r.Run(context.Background(), Step{Name: "build", Argv: []string{"relman-no-such-tool"}, Dir: workDir(t)})
	if err == nil || !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("err = %v, want exec.ErrNotFound", err)
	}
	var se *StepError
	if errors.As(err, &se) {
		t.Error("a step that never started is not a StepError")
	}
	if !strings.Contains(err.Error(), `step "build"`) || !strings.Contains(err.Error(), "relman-no-such-tool") {
		t.Errorf("error is not clear: %v", err)
	}

	_, err = r.Run(context.Background(), Step{Name: "build", Argv: []string{"./build.sh"}, Dir: workDir(t)})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("relative command: err = %v", err)
	}
}

func TestRunRelativeCommand(t *testing.T) {
	r, logPath := newRunner(t)
	dir := workDir(t)
	if err := os.WriteFile(filepath.Join(dir, "build.sh"), []byte("#!/bin/sh\necho built \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), Step{Name: "build", Argv: []string{"./build.sh", "a b"}, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if log := readLog(t, logPath); !strings.Contains(log, "built a b\n") {
		t.Errorf("log:\n%s", log)
	}
	// A bare name is never looked up in Dir, which holds untrusted source.
	if _, err := r.Run(context.Background(), Step{Name: "build", Argv: []string{"build.sh"}, Dir: dir}); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("bare name resolved in Dir: err = %v", err)
	}
}

func TestRunInvalidStep(t *testing.T) {
	r, _ := newRunner(t)
	for _, s := range []Step{
		{Name: "empty"},
		{Name: "nodir", Argv: []string{"true"}},
		{Name: "badenv", Argv: []string{"true"}, Dir: workDir(t), Env: map[string]string{"A=B": "x"}},
	} {
		if _, err := r.Run(context.Background(), s); err == nil {
			t.Errorf("%s: no error", s.Name)
		}
	}
}

func TestLineTail(t *testing.T) {
	lt := newLineTail(3)
	for _, chunk := range []string{"on", "e\ntwo\nth", "ree\r\nfour\n"} {
		lt.Write([]byte(chunk))
	}
	if got := lt.String(); got != "two\nthree\nfour" {
		t.Errorf("tail = %q", got)
	}
	lt = newLineTail(3)
	lt.Write([]byte(strings.Repeat("x", 10*maxLineBytes)))
	if got := lt.String(); len(got) != maxLineBytes {
		t.Errorf("partial line length = %d, want capped at %d", len(got), maxLineBytes)
	}
}
