package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/relman/relman/config"
)

const (
	stderrTailLines = 20
	// stderrKeepBytes bounds memory for a tool that writes a lot to stderr; only the
	// tail matters for the error.
	stderrKeepBytes = 64 << 10
	// waitDelay bounds how long we wait for pipes after the tool exits, in case a
	// helper it spawned (ssh, a credential helper) keeps them open.
	waitDelay = config.DefaultToolWaitDelay
)

// cmdError carries the tool's own explanation: exit statuses alone are useless to
// whoever reads a failed build.
type cmdError struct {
	op     string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	if e.stderr == "" {
		return e.op + ": " + e.err.Error()
	}
	return e.op + ": " + e.err.Error() + ": " + e.stderr
}

func (e *cmdError) Unwrap() error { return e.err }

// exitCode returns the tool's exit code, or -1 if it did not run to an exit.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

type invocation struct {
	op    string // what the error says, e.g. "git fetch"; never includes arguments
	name  string
	args  []string
	env   []string
	stdin string
}

// run executes a tool and returns its stdout. Arguments are never put in errors or
// logs because they may carry urls with credentials.
func run(ctx context.Context, in invocation) ([]byte, error) {
	cmd := exec.CommandContext(ctx, in.name, in.args...)
	cmd.Env = in.env
	cmd.WaitDelay = waitDelay
	if in.stdin != "" {
		cmd.Stdin = strings.NewReader(in.stdin)
	}
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: stderrKeepBytes}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return stdout.Bytes(), &cmdError{op: in.op, err: err, stderr: redact(stderr.tail(stderrTailLines))}
	}
	return stdout.Bytes(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tailBuffer) tail(lines int) string {
	s := strings.TrimRight(string(t.buf), "\n")
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.TrimSpace(strings.Join(all, "\n"))
}

var _ io.Writer = (*tailBuffer)(nil)

// userinfoPassword matches the password part of scheme://user:password@host.
var userinfoPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*):[^/@\s]*@`)

// redact hides url passwords, since tool messages often echo the url they failed on.
func redact(s string) string {
	return userinfoPassword.ReplaceAllString(s, "$1:xxxxx@")
}

func redactURL(u string) string { return redact(u) }

// baseEnv is the current environment minus variables that would redirect or reconfigure
// the tools (GIT_DIR from a hook, a user's SVN config); the ones that configure ssh
// transport for the operator are kept.
func baseEnv(drop func(key string) bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if drop(k) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// prepareDest returns dest as an absolute path, creating it if needed. It must be
// empty: a leftover file would silently become part of the build.
func prepareDest(dest string) (string, error) {
	if dest == "" {
		return "", errors.New("dest: empty path")
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return "", fmt.Errorf("dest: %w", err)
	}
	entries, err := os.ReadDir(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return "", fmt.Errorf("dest: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("dest: %w", err)
	case len(entries) > 0:
		return "", fmt.Errorf("dest %s: not empty", abs)
	}
	return abs, nil
}

// clearDir empties a dest that prepareDest found empty, so a failed checkout does not
// leave a partial tree that a retry would reject.
func clearDir(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
