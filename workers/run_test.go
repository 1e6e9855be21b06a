package workers_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/workers"
)

func installerConfig(t *testing.T, address, behavior string) *config.Installer {
	t.Helper()
	dir := t.TempDir()
	c := &config.Installer{
		Service:   config.Service{Version: 1, Temporal: config.Temporal{Address: address}, StatusAddress: "127.0.0.1:0"},
		Host:      "status-host",
		Artifacts: "file://" + filepath.Join(dir, "artifacts"),
		WorkDir:   filepath.Join(dir, "work"),
		Trust:     config.InstallerTrust{ManagerKeyFiles: []string{filepath.Join(dir, "orders.key.pub")}},
		Environments: map[string]map[string]config.InstallBehavior{
			"test": {"web": {Behavior: behavior, Path: filepath.Join(dir, "www")}},
		},
	}
	c.Default()
	return c
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// An installer whose config names a behavior it does not have refuses to
// start, naming the target, before it touches Temporal.
func TestRunRefusesUnknownBehavior(t *testing.T) {
	err := workers.Run(context.Background(), installerConfig(t, "127.0.0.1:1", "teleport"), workers.Options{Stderr: io.Discard})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `environments.test.web.behavior: "teleport" is unknown`)
}

// A manager whose config serves the gateway refuses to start, before it
// touches Temporal, when the binary brought no gateway: workers/ does not
// import the surfaces, so a custom binary must pass one in (or turn the
// gateway off), never silently serve none.
func TestRunRefusesManagerWithoutGateway(t *testing.T) {
	m := &config.Manager{
		Service:       config.Service{Version: 1, Temporal: config.Temporal{Address: "127.0.0.1:1"}},
		Auth:          config.Auth{Anonymous: true},
		OrdersKeyFile: filepath.Join(t.TempDir(), "orders.key"),
		Environments:  map[string]config.Environment{"test": {}},
		Projects:      map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
	}
	m.Default()
	err := workers.Run(context.Background(), m, workers.Options{Stderr: io.Discard})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pass workers.Options.Gateway (surface/xmlrpc.Serve), or set gateway.off: true")
}

// /livez answers while the role waits for Temporal and /readyz says why it
// is not ready; once Temporal serves and the host registered, /readyz is
// 200; the end of the context stops the role.
func TestStatusEndpoints(t *testing.T) {
	bin, err := devserver.Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	port, err := devserver.FreePort()
	require.NoError(t, err)
	cfg := installerConfig(t, "127.0.0.1:"+strconv.Itoa(port), "unarchive")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan workers.Serving, 1)
	statusURL := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- workers.Run(ctx, cfg, workers.Options{Stderr: io.Discard, Ready: func(s workers.Serving) { ready <- s }, StatusURL: func(u string) { statusURL <- u }})
	}()
	url := <-statusURL
	require.Eventually(t, func() bool {
		code, body := get(t, url+"/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "unreachable")
	}, 30*time.Second, 100*time.Millisecond, "readyz before Temporal serves")
	code, _ := get(t, url+"/livez")
	assert.Equal(t, http.StatusOK, code)

	s, err := devserver.Start(ctx, devserver.Options{Bin: bin, Port: port, LogLevel: "error"})
	require.NoError(t, err)
	defer s.Stop(20 * time.Second)
	// The registry that takes the host's registration runs on a manager.
	m := &config.Manager{
		Service:       config.Service{Version: 1, Temporal: config.Temporal{Address: s.Address}},
		Gateway:       config.Gateway{Off: true},
		Auth:          config.Auth{Anonymous: true},
		OrdersKeyFile: filepath.Join(t.TempDir(), "orders.key"),
		Environments:  map[string]config.Environment{"test": {}},
		Projects:      map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
	}
	m.Default()
	go func() { _ = workers.Run(ctx, m, workers.Options{Stderr: io.Discard}) }()
	select {
	case sv := <-ready:
		assert.Equal(t, "installer", sv.Role)
		assert.Equal(t, "status-host", sv.ID)
		assert.Equal(t, url, sv.StatusURL)
	case <-time.After(2 * time.Minute):
		t.Fatal("the installer never became ready")
	}
	code, body := get(t, url+"/readyz")
	assert.Equal(t, http.StatusOK, code, body)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the installer did not stop")
	}
}

// Start runs a role in this process the way relman dev, the fleet harness
// and the benchmarks do: a role that cannot start reports why through Err,
// and Stop stops one still waiting for Temporal, with no error.
func TestStartAndStop(t *testing.T) {
	bad := workers.Start(context.Background(), installerConfig(t, "127.0.0.1:1", "teleport"), workers.Options{Stderr: io.Discard})
	select {
	case <-bad.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a role that cannot start did not stop")
	}
	require.Error(t, bad.Err())
	assert.Contains(t, bad.Err().Error(), `"teleport" is unknown`)
	assert.Equal(t, "installer status-host", bad.Name)

	waiting := workers.Start(context.Background(), installerConfig(t, "127.0.0.1:1", "copy"), workers.Options{Stderr: io.Discard})
	select {
	case <-waiting.Done():
		t.Fatalf("the role stopped on its own: %v", waiting.Err())
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, waiting.Stop(30*time.Second))
	select {
	case <-waiting.Done():
	default:
		t.Fatal("Stop returned before the role stopped")
	}
}
