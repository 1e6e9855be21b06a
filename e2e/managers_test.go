package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workflows"
)

// TestSeveralManagers: the shared stack's manager and a second manager
// (queue relman-seg, gateway off, on the same listen_port as the first)
// both release a project named shop with builders of their own; each
// release is built by its own manager's builder only, and one installer
// host registered with both managers installs for both.
func TestSeveralManagers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(env.Root, "seg")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	port := strings.TrimSuffix(env.gatewayURL[strings.LastIndex(env.gatewayURL, ":")+1:], "/")
	files := map[string]string{
		// The gateway's port is the first manager's: with the gateway off
		// the second manager starts beside it.
		"manager.yaml": `version: 1
manager_queue: relman-seg
registry_id: relman-seg-registry
listen_port: ` + port + `
gateway: {off: true}
auth: {anonymous: true}
environments: {multi: {}}
projects: {shop: {targets: [web, tool]}}
timeouts: {build: 2m, install: 1m, host: 30s}
`,
		"builder.yaml": `version: 1
name: builder-seg
manager_queue: relman-seg
registry_id: relman-seg-registry
artifacts: file://../artifacts
work_dir: ./builder
lease: 10s
projects:
  shop:
    source: {git: ../repos/shop}
    steps: [{name: build, run: [sh, -c, 'rm -rf out && mkdir -p out/web && echo "<h1>built by builder-seg</h1>" > out/web/index.html && printf "#!/bin/sh\necho seg\n" > out/tool.sh']}]
    outputs: {web: {path: out/web}, tool: {path: out/tool.sh}}
`,
		"host-both.yaml": `version: 1
host: host-both
managers:
  - {manager_queue: relman-manager, registry_id: relman-registry}
  - {manager_queue: relman-seg, registry_id: relman-seg-registry}
artifacts: file://../artifacts
work_dir: ./host-both/work
lease: 10s
# Each manager signs its own orders: trust both.
trust: {manager_key_files: [../orders.key.pub, orders.key.pub]}
environments:
  multi:
    web: {behavior: unarchive, path: ./host-both/www}
    tool: {behavior: copy, path: ./host-both/bin/tool.sh, mode: "0755"}
`,
	}
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	mgr, err := env.StartRole("seg-manager", "manager", filepath.Join(dir, "manager.yaml"))
	require.NoError(t, err)
	builder, err := env.StartRole("seg-builder", "builder", filepath.Join(dir, "builder.yaml"))
	require.NoError(t, err)
	host, err := env.StartRole("host-both", "installer", filepath.Join(dir, "host-both.yaml"))
	require.NoError(t, err)
	t.Cleanup(func() {
		for _, p := range []interface{ Stop(time.Duration) error }{host, builder, mgr} {
			_ = p.Stop(20 * time.Second)
		}
	})
	seg := registry.Registry{Client: env.Client, ID: "relman-seg-registry", ManagerQueue: "relman-seg"}
	require.NoError(t, env.WaitRegistered(ctx, "host-both"), "host-both registers with the first manager")
	require.Eventually(t, func() bool {
		ls, err := seg.List(ctx, time.Now())
		ids := map[string]bool{}
		for _, l := range ls {
			ids[l.ID] = true
		}
		return err == nil && ids["builder-seg"] && ids["host-both"] && len(ls) == 2
	}, time.Minute, 200*time.Millisecond, "builder-seg and host-both register with the second manager, and nobody else does")

	managers := []struct {
		queue, builder, index string
	}{
		{workflows.DefaultManagerQueue, "builder-e2e", "shop v"},
		{"relman-seg", "builder-seg", "built by builder-seg"},
	}
	started := map[string][]string{} // manager queue -> its transactions
	// Twice each, alternating: with one shared build queue either builder
	// would take about half of the builds.
	for round := range 2 {
		for _, m := range managers {
			t.Run(fmt.Sprintf("%s-%d", m.queue, round), func(t *testing.T) {
				txid, err := transaction.Start(ctx, env.Client, m.queue, "", workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "multi", Requester: "e2e-tester"})
				require.NoError(t, err)
				started[m.queue] = append(started[m.queue], txid)
				d, err := env.Final(ctx, txid)
				require.NoError(t, err, "%+v", d)
				assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
				assert.Equal(t, m.builder, d.Builder)
				require.Len(t, d.Installs, 2)
				for _, in := range d.Installs {
					assert.Equal(t, "host-both", in.Host)
				}
				assert.Contains(t, readFile(t, filepath.Join(dir, "host-both", "www", "index.html")), m.index)

				steps, err := transaction.Timeline(ctx, env.Client, txid)
				require.NoError(t, err)
				builds, installs := 0, 0
				for _, s := range steps {
					switch s.Activity {
					case workflows.BuildActivity:
						builds++
						assert.Equal(t, workflows.BuildQueue(m.queue, "shop"), s.Queue)
						if s.Worker != "" {
							assert.Contains(t, s.Worker, m.builder, "only this manager's builder builds")
						}
					case workflows.InstallActivity:
						installs++
						assert.Equal(t, workflows.HostQueue(m.queue, "host-both"), s.Queue)
					}
				}
				assert.NotZero(t, builds)
				assert.NotZero(t, installs)
			})
		}
	}

	// relman list lists the transactions of --manager-queue only, and
	// every manager's with --all-managers.
	listed := func(args ...string) map[string]string {
		t.Helper()
		out, errOut, code := relman(t, append([]string{"list", "--project", "shop", "--env", "multi", "--limit", "100", "-o", "json"}, args...)...)
		require.Equal(t, 0, code, errOut)
		var rows []transaction.Listed
		require.NoError(t, json.Unmarshal([]byte(out), &rows))
		ids := map[string]string{}
		for _, r := range rows {
			ids[r.Transaction] = r.Manager
		}
		return ids
	}
	require.Len(t, started["relman-seg"], 2)
	require.Len(t, started[workflows.DefaultManagerQueue], 2)
	require.Eventually(t, func() bool {
		all := listed("--all-managers")
		for _, ids := range started {
			for _, id := range ids {
				if _, ok := all[id]; !ok {
					return false
				}
			}
		}
		return true
	}, 30*time.Second, 300*time.Millisecond, "visibility lists all four transactions")
	for queue, ids := range started {
		var scoped map[string]string
		if queue == workflows.DefaultManagerQueue {
			scoped = listed()
		} else {
			scoped = listed("--manager-queue", queue)
		}
		for _, id := range ids {
			assert.Equal(t, queue, scoped[id], "%s is listed for its manager %s", id, queue)
		}
		for other, oids := range started {
			if other == queue {
				continue
			}
			for _, id := range oids {
				assert.NotContains(t, scoped, id, "%s of manager %s is not listed for %s", id, other, queue)
			}
		}
		for id, m := range scoped {
			assert.Equal(t, queue, m, "%s listed for %s", id, queue)
		}
	}

	// The second manager has no gateway: its log names none, and the port
	// both configs name is the first manager's (it alone has project
	// legacy).
	b, err := os.ReadFile(mgr.Log)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "xml-rpc gateway listening")
	assert.True(t, mgr.Running(), "the second manager keeps running beside the first's gateway")
	var call bytes.Buffer
	require.NoError(t, xmlrpc.EncodeCall(&call, "list_projects"))
	resp, err := http.Post(env.gatewayURL, "text/xml", &call)
	require.NoError(t, err)
	projects, err := xmlrpc.DecodeResponse(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, projects, "legacy")

	// A third manager given the first's registry id refuses to start, naming
	// both managers.
	other := filepath.Join(dir, "other.yaml")
	require.NoError(t, os.WriteFile(other, []byte(`version: 1
manager_queue: relman-other
registry_id: relman-registry
gateway: {off: true}
auth: {anonymous: true}
environments: {multi: {}}
projects: {shop: {targets: [web]}}
`), 0o644))
	p, err := env.StartRole("other-manager", "manager", other)
	require.NoError(t, err)
	err = p.Wait(time.Minute)
	require.False(t, p.Running(), "a manager on another manager's registry must not start")
	require.Error(t, err)
	b, err = os.ReadFile(p.Log)
	require.NoError(t, err)
	assert.Contains(t, string(b), "registry relman-registry is the registry of the manager on queue relman-manager, not of manager relman-other")

	// So does an installer that pairs the first manager's registry with
	// another queue, and it leaves no registration behind.
	wrong := filepath.Join(dir, "host-wrong.yaml")
	require.NoError(t, os.WriteFile(wrong, []byte(`version: 1
host: host-wrong
managers:
  - {manager_queue: relman-other, registry_id: relman-registry}
artifacts: file://../artifacts
work_dir: ./host-wrong/work
lease: 10s
trust: {manager_key_files: [../orders.key.pub]}
environments:
  multi: {web: {behavior: unarchive, path: ./host-wrong/www}}
`), 0o644))
	p, err = env.StartRole("host-wrong", "installer", wrong)
	require.NoError(t, err)
	err = p.Wait(time.Minute)
	require.False(t, p.Running(), "an installer on another manager's registry must stop")
	require.Error(t, err)
	b, err = os.ReadFile(p.Log)
	require.NoError(t, err)
	assert.Contains(t, string(b), "registry relman-registry is the registry of the manager on queue relman-manager, not of manager relman-other")
	require.NoError(t, env.WaitGone(ctx, "host-wrong"))
}
