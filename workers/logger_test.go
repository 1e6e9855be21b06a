package workers_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workers"
)

// terminal is a stderr that says it is a terminal.
type terminal struct{ bytes.Buffer }

func (*terminal) IsTerminal() bool { return true }

// With a logging path, the log goes to the file; warnings and errors also
// go to stderr when it is a terminal, and nothing does when it is not.
func TestLoggerWarnsOnTerminal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tty      bool
		level    string
		onStderr []string
		notThere []string
	}{
		{name: "terminal", tty: true, level: "info", onStderr: []string{"level=WARN msg=\"Temporal is unreachable\"", "level=ERROR msg=broken", "role=installer"}, notThere: []string{"started"}},
		{name: "terminal, level error", tty: true, level: "error", onStderr: []string{"level=ERROR msg=broken"}, notThere: []string{"unreachable", "started"}},
		{name: "not a terminal", level: "info", notThere: []string{"unreachable", "broken", "started"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log", "role.log")
			var stderr interface {
				Write([]byte) (int, error)
				String() string
			} = &bytes.Buffer{}
			if tc.tty {
				stderr = &terminal{}
			}
			log, closeLog, err := workers.NewLogger(config.Logging{Path: path, Level: tc.level}, stderr)
			require.NoError(t, err)
			log = log.With("role", "installer")
			log.Info("started")
			log.Warn("Temporal is unreachable", "retry", "1s")
			log.Error("broken")
			closeLog()
			file, err := os.ReadFile(path)
			require.NoError(t, err)
			if tc.level == "info" {
				assert.Contains(t, string(file), "msg=started")
				assert.Contains(t, string(file), "Temporal is unreachable")
			}
			assert.Contains(t, string(file), "msg=broken")
			for _, s := range tc.onStderr {
				assert.Contains(t, stderr.String(), s)
			}
			for _, s := range tc.notThere {
				assert.NotContains(t, stderr.String(), s)
			}
		})
	}
}

// A role started on a real terminal (script(1) gives it a pty) with a
// logging path says on the terminal that Temporal is unreachable.
func TestRoleWarnsOnRealTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to give a role a terminal")
	}
	dir := t.TempDir()
	relman := filepath.Join(dir, "relman")
	build := exec.Command("go", "build", "-o", relman, "github.com/relman/relman/cmd/relman")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	cfg := filepath.Join(dir, "installer.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`version: 1
host: tty-host
temporal:
  address: 127.0.0.1:1
logging:
  path: log/installer.log
  level: info
artifacts: file://artifacts
work_dir: work
trust: {manager_key_files: [orders.key.pub]}
environments:
  test:
    web:
      behavior: unarchive
      path: www
`), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-q", "-e", "-c", relman+" installer --config "+cfg, os.DevNull)
	cmd.Dir = dir
	var tty bytes.Buffer
	cmd.Stdout = &tty
	_ = cmd.Run()
	assert.Contains(t, tty.String(), "is unreachable; retrying")
	logged, err := os.ReadFile(filepath.Join(dir, "log", "installer.log"))
	require.NoError(t, err)
	assert.Contains(t, string(logged), "is unreachable; retrying")
	assert.NotContains(t, tty.String(), "installer started", "info stays in the file")
	assert.False(t, strings.Contains(tty.String(), "level=INFO"), "info stays in the file: %s", tty.String())
}
