package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workflows"
)

// stopBound is how long a stopping role may take before the test calls it
// hung: nothing runs on these roles, so a stop has nothing to wait for. It
// detects a hang; the times measured are logged.
const stopBound = 15 * time.Second

// stopped sends SIGTERM, waits for the exit and logs how long it took.
func stopped(t *testing.T, p *testenv.Proc, what string) {
	t.Helper()
	began := time.Now()
	require.NoError(t, p.Stop(stopBound), "%s must exit 0 on SIGTERM", what)
	t.Logf("%s stopped %s after SIGTERM", what, time.Since(began).Round(time.Millisecond))
}

// logHas waits until a role's log holds s.
func logHas(t *testing.T, p *testenv.Proc, s string) {
	t.Helper()
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(p.Log)
		return strings.Contains(string(b), s)
	}, time.Minute, 100*time.Millisecond, "%s never logged %q", p.Name, s)
}

// TestRolesStartWhenTemporalIsAway: the seed's worker "will not fail to
// start" when its manager is unavailable. An installer and a manager start
// with no Temporal server: they keep running and warn; one stopped then
// stops at once. When the server comes, the others serve (the installer
// registers). When it goes away again, SIGTERM still stops them promptly.
func TestRolesStartWhenTemporalIsAway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	port, err := freeTCPPort()
	require.NoError(t, err)
	address := fmt.Sprintf("127.0.0.1:%d", port)
	dir := filepath.Join(env.Root, "away")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	installer := filepath.Join(dir, "installer.yaml")
	require.NoError(t, os.WriteFile(installer, []byte(`version: 1
host: host-away
artifacts: file://./artifacts
work_dir: ./work
lease: 10s
trust: {manager_key_files: [orders.key.pub]}
environments:
  test: {web: {behavior: unarchive, path: ./www}}
`), 0o644))
	gatewayPort, err := freeTCPPort()
	require.NoError(t, err)
	gateway := fmt.Sprintf("http://127.0.0.1:%d/", gatewayPort)
	manager := filepath.Join(dir, "manager.yaml")
	require.NoError(t, os.WriteFile(manager, []byte(`version: 1
listen_port: `+fmt.Sprint(gatewayPort)+`
auth: {anonymous: true}
environments: {test: {}}
projects: {shop: {targets: [web]}}
`), 0o644))
	role := func(name, kind, cfg string) *testenv.Proc {
		p, err := env.StartProcess(name, nil, env.Relman, kind, "--config", cfg, "--address", address)
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Stop(stopBound) })
		return p
	}
	const warning = "is unreachable; retrying"

	// Away from the start: each role warns and keeps running; SIGTERM
	// stops one while it waits.
	waiting := role("away-waiting", "installer", installer)
	host := role("away-installer", "installer", installer)
	mgr := role("away-manager", "manager", manager)
	for _, p := range []*testenv.Proc{waiting, host, mgr} {
		logHas(t, p, warning)
		logHas(t, p, address)
		assert.True(t, p.Running(), "%s must not exit while Temporal is away", p.Name)
	}
	stopped(t, waiting, "an installer waiting for Temporal")

	// The server comes: the installer registers, the manager serves.
	srv, err := devserver.Start(ctx, devserver.Options{Bin: env.Temporal, Port: port, LogPath: env.Path("logs", "away-temporal.log"), LogLevel: "error"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop(20 * time.Second) })
	env.AddLog(env.Path("logs", "away-temporal.log"))
	c, err := testenv.Dial(address)
	require.NoError(t, err)
	defer c.Close()
	reg := registry.Registry{Client: c, ID: workflows.DefaultRegistryID, ManagerQueue: workflows.DefaultManagerQueue}
	require.Eventually(t, func() bool {
		ls, err := reg.List(ctx, time.Now())
		return err == nil && len(ls) == 1 && ls[0].ID == "host-away"
	}, 2*time.Minute, 200*time.Millisecond, "the installer registers once Temporal is there")
	logHas(t, mgr, "manager started")

	// The server goes away: both still stop promptly, the manager even
	// with an XML-RPC call waiting on the missing server; that call gets a
	// fault saying the manager stops.
	require.NoError(t, srv.Stop(20*time.Second))
	stopped(t, host, "an installer whose Temporal went away")
	answer := make(chan error, 1)
	sent := make(chan struct{})
	go func() {
		var b bytes.Buffer
		if err := xmlrpc.EncodeCall(&b, "query_transaction", "some-transaction"); err != nil {
			answer <- err
			return
		}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) },
		}), http.MethodPost, gateway, &b)
		if err != nil {
			answer <- err
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answer <- err
			return
		}
		defer resp.Body.Close()
		_, err = xmlrpc.DecodeResponse(resp.Body)
		answer <- err
	}()
	// The call is on its way; one that needs no Temporal answering on a
	// second connection means the gateway took the first one in (it
	// accepts connections in order), so the call is in flight.
	<-sent
	var ping bytes.Buffer
	require.NoError(t, xmlrpc.EncodeCall(&ping, "system.listMethods"))
	resp, err := http.Post(gateway, "text/xml", &ping)
	require.NoError(t, err)
	resp.Body.Close()
	stopped(t, mgr, "a manager whose Temporal went away, with an XML-RPC call in flight")
	var f *xmlrpc.Fault
	require.ErrorAs(t, <-answer, &f, "the call gets an answer")
	assert.Equal(t, xmlrpc.CodeInternal, f.Code, f.Message)
	assert.Contains(t, f.Message, "the server is stopping")
	t.Logf("the call in flight got fault %d: %s", f.Code, f.Message)
}
