package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/internal/temporalclient"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestDevDemoAndRestart runs the non-interactive demo (what `make demo`
// does, minus waiting for Ctrl-C), then starts the stack again on the same
// directory and checks the first transaction is still there.
func TestDevDemoAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own dev server")
	}
	dir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Relman, "dev", "--dir", dir, "--port", strconv.Itoa(port), "--ui-port", strconv.Itoa(freePort(t)), "--demo", "--once")
	cmd.Env = append(os.Environ(), "RELMAN_TEMPORAL_BIN="+env.Temporal)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	s := string(out)
	m := regexp.MustCompile(`transaction (\S+)`).FindStringSubmatch(s)
	require.NotNil(t, m, s)
	txid := m[1]
	assert.Contains(t, s, txid+" INSTALL_COMPLETED")
	// Retention is stated, and what answers after it.
	assert.Contains(t, s, "retention  30d in Temporal, then relman's records of closed transactions in file://"+filepath.Join(dir, "artifacts")+"\n")
	assert.Regexp(t, `Web UI\s+http://localhost:\d+/namespaces/default/workflows/`+regexp.QuoteMeta(txid), s)
	for _, h := range []string{"host-a", "host-b"} {
		p := filepath.Join(dir, h, "install_base", "test", "template", "index.html")
		assert.Contains(t, s, p)
		assert.FileExists(t, p)
		b, err := os.ReadFile(filepath.Join(dir, h, "install_base", "test", "template", "BUILD_INFO"))
		require.NoError(t, err)
		assert.Contains(t, string(b), txid)
	}
	assert.Contains(t, s, "stopped")

	// Restart on the same directory: the transaction survived.
	cmd = exec.CommandContext(ctx, env.Relman, "dev", "--dir", dir, "--port", strconv.Itoa(port), "--ui-port", "-1")
	cmd.Env = append(os.Environ(), "RELMAN_TEMPORAL_BIN="+env.Temporal)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	ready := false
	var seen []string
	for lines.Scan() {
		seen = append(seen, lines.Text())
		if strings.Contains(lines.Text(), "press Ctrl-C") {
			ready = true
			break
		}
	}
	require.True(t, ready, "dev stack did not come up:\n%s", strings.Join(seen, "\n"))
	go func() {
		for lines.Scan() {
		}
	}()
	o, e, code := relmanAt(t, addr, "status", txid)
	assert.Equal(t, 0, code, e)
	assert.Equal(t, "INSTALL_COMPLETED\n", o)
	// The same through the manager's API it prints, with no Temporal
	// address that answers, as a user without namespace access reads it.
	api := regexp.MustCompile(`API\s+(http://\S+/)api/v1/<method>`).FindStringSubmatch(strings.Join(seen, "\n"))
	require.NotNil(t, api, strings.Join(seen, "\n"))
	o, e, code = relmanAt(t, "127.0.0.1:"+strconv.Itoa(freePort(t)), "status", txid, "--manager-url", api[1])
	assert.Equal(t, 0, code, e)
	assert.Equal(t, "INSTALL_COMPLETED\n", o)
	c, err := devserver.Dial(addr, "")
	require.NoError(t, err)
	r, err := temporalclient.DescribeRetention(ctx, c, "default")
	c.Close()
	require.NoError(t, err)
	assert.Equal(t, 30*24*time.Hour, r.TTL, "the namespace keeps closed transactions the 30 days relman dev states")
	// The demo's transaction was recorded when it ended, or, when the demo
	// stopped before its recorder wrote, by the restarted manager.
	record := filepath.Join(dir, "artifacts", "transactions", "default", txid+".json")
	assert.Eventually(t, func() bool { _, err := os.Stat(record); return err == nil }, time.Minute, 200*time.Millisecond, "no record %s", record)
	o, _, _ = relmanAt(t, addr, "registrations")
	for _, id := range []string{"builder-1", "host-a", "host-b"} {
		assert.Contains(t, o, id)
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "Ctrl-C must stop the stack cleanly")
	// The Temporal server went with it.
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, fmt.Sprintf("%s still listening after the stack stopped", addr))
}

// TestDevFreePorts: `relman dev --port 0 --gateway-port 0` prints the ports
// it took and writes them into the configs it leaves, so a role started by
// hand from them, or a client reading them, finds the stack.
func TestDevFreePorts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own dev server")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.Relman, "dev", "--dir", dir, "--port", "0", "--ui-port", "-1", "--gateway-port", "0", "--once")
	cmd.Env = append(os.Environ(), "RELMAN_TEMPORAL_BIN="+env.Temporal)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	s := string(out)
	temporal := regexp.MustCompile(`Temporal\s+(127\.0\.0\.1:(\d+))`).FindStringSubmatch(s)
	require.NotNil(t, temporal, s)
	gateway := regexp.MustCompile(`XML-RPC\s+http://127\.0\.0\.1:(\d+)/`).FindStringSubmatch(s)
	require.NotNil(t, gateway, s)
	assert.NotEqual(t, "0", temporal[2])
	assert.NotEqual(t, "0", gateway[1])
	assert.Contains(t, s, fmt.Sprintf("temporal address %s, manager listen_port %s\n", temporal[1], gateway[1]))

	manager := readFile(t, filepath.Join(dir, "manager.yaml"))
	assert.Contains(t, manager, "\n  address: "+temporal[1]+"\n")
	assert.Contains(t, manager, "\nlisten_port: "+gateway[1]+"\n")
	assert.NotContains(t, manager, "localhost:7233")
	assert.Contains(t, manager, "# The XML-RPC gateway's port", "comments stay")
	for _, f := range []string{"builder.yaml", "installer-a.yaml", "installer-b.yaml"} {
		body := readFile(t, filepath.Join(dir, f))
		assert.Contains(t, body, "\n  address: "+temporal[1]+"\n", f)
	}
	check := exec.CommandContext(ctx, env.Relman, "config", "check", filepath.Join(dir, "manager.yaml"), filepath.Join(dir, "builder.yaml"))
	b, err := check.CombinedOutput()
	assert.NoError(t, err, "%s", b)
}
