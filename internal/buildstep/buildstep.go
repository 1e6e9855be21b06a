// Package buildstep runs a project's configured build commands.
//
// Build commands come from configuration and run on shared build hosts, so each one
// gets a clean environment (the builder's own secrets must not leak into a build), no
// shell (argv is exactly what was configured), and its own process group so a timeout
// or cancellation stops everything it spawned, not just the top process.
package buildstep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relman/relman/config"
)

// Step is one configured command.
type Step struct {
	Name string
	// Argv is the command and its arguments; Argv[0] is found on the step's PATH, or
	// relative to Dir if it contains a slash.
	Argv []string
	Dir  string
	// Timeout bounds the step; zero means only ctx bounds it.
	Timeout time.Duration
	// Env is added to the runner's clean environment and wins over it.
	Env map[string]string
}

// Result describes a step that ran, successfully or not.
type Result struct {
	Name string
	// ExitCode is the process's exit status, or 128+N if signal N killed it (as a
	// shell would report it).
	ExitCode int
	Duration time.Duration
}

// Runner runs steps. The zero value is usable: output is then only kept for errors.
type Runner struct {
	// LogPath is the file every step's output is appended to.
	LogPath string
	// TailLines is how many trailing output lines a StepError carries; default 30.
	TailLines int
	// BaseEnv ("KEY=value") is the whole environment a step starts from. If empty, a
	// step gets only PATH (the usual system dirs, then the builder's PATH) and HOME
	// (Home, or a directory beside Dir).
	BaseEnv []string
	// Home is the steps' HOME when BaseEnv is empty; default a .home beside Dir.
	Home string
}

// DefaultTailLines is used when Runner.TailLines is zero.
const DefaultTailLines = 30

// gracePeriod is how long a step's processes get between SIGTERM and SIGKILL.
const gracePeriod = config.DefaultStepKillGrace

// drainTimeout bounds the wait for the output pipe after the process group is gone;
// only a process that escaped the group (setsid) could still hold it open.
const drainTimeout = config.DefaultStepDrainTimeout

const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// StepError reports a step that did not exit with status 0.
type StepError struct {
	Step     string
	ExitCode int
	TimedOut bool
	Canceled bool
	// Timeout is the limit that was exceeded when TimedOut is set.
	Timeout time.Duration
	// Tail is the last lines of the step's output, for the person reading the error.
	Tail string

	cause error
}

func (e *StepError) Error() string {
	var msg string
	switch {
	case e.TimedOut:
		msg = fmt.Sprintf("step %q timed out after %s", e.Step, e.Timeout)
	case e.Canceled:
		msg = fmt.Sprintf("step %q canceled", e.Step)
	default:
		msg = fmt.Sprintf("step %q exited with status %d", e.Step, e.ExitCode)
	}
	if e.Tail != "" {
		msg += ": " + e.Tail
	}
	return msg
}

// Unwrap lets callers test a stopped step with errors.Is(err, context.Canceled) or
// context.DeadlineExceeded, like any other context-bound call.
func (e *StepError) Unwrap() error { return e.cause }

// Run runs the step and returns once its process has exited and its process group is
// gone. A non-zero exit, timeout or cancellation is a *StepError; anything that kept
// the step from starting is a plain error.
func (r *Runner) Run(ctx context.Context, step Step) (Result, error) {
	res := Result{Name: step.Name, ExitCode: -1}
	if len(step.Argv) == 0 || step.Argv[0] == "" {
		return res, fmt.Errorf("step %q: empty command", step.Name)
	}
	if step.Dir == "" {
		return res, fmt.Errorf("step %q: no working directory", step.Name)
	}
	dir, err := filepath.Abs(step.Dir)
	if err != nil {
		return res, fmt.Errorf("step %q: dir: %w", step.Name, err)
	}
	env, err := r.environ(dir, step.Env)
	if err != nil {
		return res, fmt.Errorf("step %q: %w", step.Name, err)
	}
	path, err := lookPath(step.Argv[0], dir, getenv(env, "PATH"))
	if err != nil {
		return res, fmt.Errorf("step %q: %w", step.Name, err)
	}

	logw := io.Discard
	if r.LogPath != "" {
		f, err := os.OpenFile(r.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return res, fmt.Errorf("step %q: log: %w", step.Name, err)
		}
		defer f.Close()
		logw = f
	}
	lines := r.TailLines
	if lines <= 0 {
		lines = DefaultTailLines
	}
	tail := newLineTail(lines)
	out := &teeWriter{log: logw, tail: tail}
	fmt.Fprintf(out.log, "==> step %q: %s (in %s) at %s\n", step.Name, quoteArgv(step.Argv), dir, time.Now().UTC().Format(time.RFC3339))

	// One pipe for stdout and stderr keeps their interleaving as the step wrote it.
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, fmt.Errorf("step %q: pipe: %w", step.Name, err)
	}
	defer pr.Close()
	cmd := &exec.Cmd{
		Path:        path,
		Args:        step.Argv,
		Dir:         dir,
		Env:         env,
		Stdout:      pw,
		Stderr:      pw,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		fmt.Fprintf(out.log, "==> step %q could not start: %v\n", step.Name, err)
		return res, fmt.Errorf("step %q: start: %w", step.Name, err)
	}
	pw.Close()
	pgid := cmd.Process.Pid

	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, pr)
		close(copied)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var timeout <-chan time.Time
	if step.Timeout > 0 {
		t := time.NewTimer(step.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var waitErr error
	var timedOut, canceled bool
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		canceled = true
		waitErr = terminate(pgid, waited)
	case <-timeout:
		timedOut = true
		waitErr = terminate(pgid, waited)
	}
	// The leader is gone; whatever it left running in its group goes too, so no build
	// leaves processes (or our output pipe) behind.
	cleanupGroup(pgid)
	select {
	case <-copied:
	case <-time.After(drainTimeout):
		pr.Close()
		<-copied
	}

	res.Duration = time.Since(start)
	res.ExitCode = exitCode(cmd.ProcessState)
	switch {
	case timedOut:
		fmt.Fprintf(out.log, "==> step %q timed out after %s\n", step.Name, step.Timeout)
	case canceled:
		fmt.Fprintf(out.log, "==> step %q canceled after %s\n", step.Name, res.Duration.Round(time.Millisecond))
	default:
		fmt.Fprintf(out.log, "==> step %q exited with status %d after %s\n", step.Name, res.ExitCode, res.Duration.Round(time.Millisecond))
	}

	if timedOut || canceled || waitErr != nil {
		se := &StepError{Step: step.Name, ExitCode: res.ExitCode, TimedOut: timedOut, Canceled: canceled, Tail: tail.String()}
		switch {
		case timedOut:
			se.Timeout, se.cause = step.Timeout, context.DeadlineExceeded
		case canceled:
			se.cause = context.Cause(ctx)
		default:
			var ee *exec.ExitError
			if !errors.As(waitErr, &ee) {
				return res, fmt.Errorf("step %q: wait: %w", step.Name, waitErr)
			}
		}
		return res, se
	}
	if out.logErr != nil {
		return res, fmt.Errorf("step %q: log: %w", step.Name, out.logErr)
	}
	return res, nil
}

// terminate asks the whole group to stop, then forces it after the grace period, and
// returns the leader's wait result.
func terminate(pgid int, waited <-chan error) error {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(gracePeriod)
	defer t.Stop()
	select {
	case err := <-waited:
		return err
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return <-waited
	}
}

// cleanupGroup stops anything still running in the group after its leader exited.
// Members orphaned by the leader are not our children, so we can only poll for them.
func cleanupGroup(pgid int) {
	if !groupAlive(pgid) {
		return
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if waitGroupGone(pgid, gracePeriod) {
		return
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	waitGroupGone(pgid, time.Second)
}

func waitGroupGone(pgid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// groupAlive reports whether the group has a member that has not exited. kill(2) also
// counts zombies, which may wait for a non-reaping init forever, so on Linux /proc
// decides whether the members it finds are merely zombies.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	sawProc := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sawProc = true
		state, pg, ok := procStat(pid)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return !sawProc
}

// procStat reads state and process group from /proc/PID/stat; the command name may
// contain spaces and parentheses, so fields are counted from the last ')'.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}

func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// environ builds the step's environment from scratch, never from os.Environ.
func (r *Runner) environ(dir string, extra map[string]string) ([]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	if len(r.BaseEnv) > 0 {
		for _, kv := range r.BaseEnv {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("base env entry %q: want KEY=value", kv)
			}
			set(k, v)
		}
	} else {
		set("PATH", joinPath(defaultPath, os.Getenv("PATH")))
		// HOME beside Dir, not inside it, so tools' caches and dotfiles never end up
		// in the tree a later step packages.
		home := r.Home
		if home == "" {
			home = filepath.Join(filepath.Dir(dir), ".home")
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, fmt.Errorf("home: %w", err)
		}
		set("HOME", home)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(extra[k], 0) {
			return nil, fmt.Errorf("env %q: invalid name or value", k)
		}
		set(k, extra[k])
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env, nil
}

// joinPath appends the builder's PATH after the system dirs without duplicates, so a
// tool installed for the builder (a newer go, say) is found but cannot shadow /usr/bin.
func joinPath(lists ...string) string {
	seen := map[string]bool{}
	var dirs []string
	for _, l := range lists {
		for _, d := range filepath.SplitList(l) {
			if d == "" || !filepath.IsAbs(d) || seen[d] {
				continue
			}
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return strings.Join(dirs, string(os.PathListSeparator))
}

func getenv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath resolves a command on the step's PATH rather than the builder's. Empty and
// relative PATH entries are skipped: they would make the lookup depend on Dir, which
// holds untrusted source.
func lookPath(name, dir, pathList string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", fmt.Errorf("command %q: %w", name, err)
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(pathList) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found on PATH %s: %w", name, pathList, exec.ErrNotFound)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`|&;<>()*?[]{}~#") {
			q[i] = strconv.Quote(a)
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// teeWriter feeds the log and the tail. A failing log (disk full) must not stop the
// copy, or the step would block on a full pipe; the error is reported afterwards.
type teeWriter struct {
	log    io.Writer
	tail   *lineTail
	logErr error
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.tail.Write(p)
	if w.logErr == nil {
		if _, err := w.log.Write(p); err != nil {
			w.logErr = err
		}
	}
	return len(p), nil
}
