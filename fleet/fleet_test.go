// Package fleet runs relman at fleet scale on one machine: 1,000 installer
// hosts (real installers, simulated in this process by testenv.StartFleet)
// register and renew for ten minutes while releases of 3 named targets go
// to all of them, all at once and rolling, with failures, unreachable
// hosts, an auto-rollback, a cancel and a manager killed and restarted.
// The manager and 3 builders are their own processes; the Temporal dev
// server runs with its defaults.
//
// It takes about a quarter of an hour, so it runs only when asked:
// `make fleet` (RELMAN_FLEET=1; RELMAN_FLEET_HOSTS and RELMAN_FLEET_MINUTES
// change its size and length).
package fleet

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

var env struct {
	*testenv.Env
	manager *testenv.Proc
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("RELMAN_FLEET") == "" {
		fmt.Println("fleet: skipped; `make fleet` runs it (RELMAN_FLEET=1)")
		return
	}
	os.Exit(testenv.Main(m, testenv.MainOptions{Name: "fleet", SkipShort: true, Setup: setup}))
}

func setup(ctx context.Context, e *testenv.Env) error {
	env.Env = e
	if _, err := testenv.InitRepo(e.Path("repos", "farm"), map[string]string{"index.html": "<h1>farm</h1>\n", "conf/app.conf": "v=1\n"}); err != nil {
		return err
	}
	cfgs := map[string]string{
		"manager.yaml": `version: 1
logging: {path: logs/manager.log, level: info}
auth: {anonymous: true}
gateway: {off: true}
environments:
  fleet: {}
  rolling: {rollout: {strategy: rolling, batch: 25%, max_failures: 1%}}
  skipping: {rollout: {unreachable: skip}}
  autoroll: {rollout: {strategy: rolling, batch: 10%, max_failures: 0, auto_rollback: true}}
  slow: {}
projects:
  farm: {targets: [web, docs, conf]}
# A host picks its installs up one after the other (one poller), and this
# machine's dev server dispatches a few hundred a second: the last of 3,000
# installs waits about half a minute for its host. 2m leaves room; the
# default is 5m.
timeouts: {build: 5m, install: 5m, host: 2m}
`,
	}
	// A few builders register and poll the project's queue beside the
	// hosts, sharing the store, each with its own work dir.
	for _, b := range builders {
		cfgs[b+".yaml"] = fmt.Sprintf("version: 1\nname: %s\nlogging: {path: logs/%s.log, level: info}\nartifacts: file://./artifacts\nwork_dir: ./%s\n", b, b, b) + builderProjects
	}
	for name, body := range cfgs {
		if err := os.WriteFile(e.Path(name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	var err error
	if env.manager, err = e.StartRole("manager", "manager", e.Path("manager.yaml")); err != nil {
		return err
	}
	for _, b := range builders {
		if _, err := e.StartRole(b, "builder", e.Path(b+".yaml")); err != nil {
			return err
		}
	}
	return e.WaitRegistered(ctx, builders...)
}

// builders are the fleet's builders, each its own process.
var builders = []string{"builder-fleet-1", "builder-fleet-2", "builder-fleet-3"}

// builderProjects is the projects part of every builder's config.
const builderProjects = `projects:
  farm:
    source: {git: ./repos/farm}
    steps: [{name: build, run: [sh, -c, 'rm -rf out && mkdir -p out/web out/docs out/conf && cp index.html out/web/ && echo "$RELMAN_COMMIT" > out/docs/COMMIT && cp conf/* out/conf/']}]
    outputs: {web: {path: out/web}, docs: {path: out/docs}, conf: {path: out/conf}}
`

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// hostConfig is simulated host i: the farm's three named targets in every
// environment, with a few hosts set up to fail.
func hostConfig(root, artifacts string, hosts int) func(i int) (*config.Installer, error) {
	targets := []string{"conf", "docs", "web"}
	return func(i int) (*config.Installer, error) {
		cfg, err := testenv.FleetHost(env.Address, root, fmt.Sprintf("fleet-%04d", i), artifacts, map[string][]string{
			"fleet": targets, "rolling": targets, "skipping": targets, "autoroll": targets, "slow": targets,
		}, env.Trust())
		if err != nil {
			return nil, err
		}
		zero := 0
		health := func(envName string, cmd ...string) {
			b := cfg.Environments[envName]["conf"]
			b.Health = &config.HealthCheck{Command: cmd, Retries: &zero}
			cfg.Environments[envName]["conf"] = b
		}
		if i%200 == 7 {
			// Five hosts whose conf never passes its health check.
			health("rolling", "false")
		}
		if i == hosts/10 {
			// The first host of the second tenth refuses a conf that
			// ships a file named BAD.
			health("autoroll", "sh", "-c", "! test -f BAD")
		}
		// In slow, conf takes minutes: time to cancel.
		cfg.Environments["slow"]["conf"] = config.InstallBehavior{Behavior: config.BehaviorCommand, Command: []string{"sleep", "200"}, Timeout: 4 * time.Minute}
		return cfg, cfg.Validate()
	}
}

// procCPU is a process's user+system CPU time.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

func TestFleet(t *testing.T) {
	hosts := envInt("RELMAN_FLEET_HOSTS", 1000)
	window := time.Duration(envInt("RELMAN_FLEET_MINUTES", 10)) * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), window+30*time.Minute)
	defer cancel()
	env.DumpOnFailure(t)
	root := env.Path("fleet")
	artifacts := "file://" + env.Path("artifacts")

	t0 := time.Now()
	fl, err := testenv.StartFleet(ctx, testenv.FleetOptions{Address: env.Address, Hosts: hosts, Spread: 30 * time.Second, Config: hostConfig(root, artifacts, hosts)})
	require.NoError(t, err)
	defer fl.Stop()
	ids := fl.IDs()
	lastStarted := time.Now()
	// Visible within one lease of the last host's start.
	wctx, wcancel := context.WithTimeout(ctx, config.DefaultLease)
	require.NoError(t, env.WaitRegistered(wctx, ids...), "every host registered within one lease")
	wcancel()
	t.Logf("%d hosts started over %s; all registered %s after the last start", hosts, lastStarted.Sub(t0).Round(time.Second), time.Since(lastStarted).Round(time.Second))
	renewFrom := time.Now()
	// The manager's CPU over the window, across its restart.
	cpu0 := procCPU(env.manager.Pid())
	var managerCPU time.Duration

	t.Run("registrations", func(t *testing.T) {
		out, errOut, code := env.CLI(ctx, "registrations", "-o", "json")
		require.Equal(t, 0, code, errOut)
		var ls []workflows.Lease
		require.NoError(t, json.Unmarshal([]byte(out), &ls))
		var got, gotBuilders []string
		for _, l := range ls {
			switch l.Role {
			case workflows.RoleInstaller:
				got = append(got, l.ID)
			case workflows.RoleBuilder:
				gotBuilders = append(gotBuilders, l.ID)
			}
		}
		assert.ElementsMatch(t, ids, got)
		assert.ElementsMatch(t, builders, gotBuilders, "every builder is registered beside the hosts")
	})

	t.Run("limit named at plan time", func(t *testing.T) {
		if hosts <= workflows.MaxRolloutBatches {
			t.Skipf("%d hosts make no more than %d batches", hosts, workflows.MaxRolloutBatches)
		}
		out, _, code := env.CLI(ctx, "release", "farm", "--env", "rolling", "--batch", "1", "--wait")
		assert.Equal(t, 3, code)
		assert.Contains(t, out, "REJECTED")
		assert.Contains(t, out, fmt.Sprintf("a rolling release goes through at most 500 batches (MaxRolloutBatches) and %d hosts in batches of 1 make %d", hosts, hosts))
	})

	t.Run("all at once", func(t *testing.T) {
		d := release(t, ctx, "fleet", true)
		assert.Equal(t, workflows.HostsSummary{Total: 3 * hosts, Installed: 3 * hosts}, d.InstallPages.Summary)
		checkFiles(t, root, "fleet", ids)
	})

	t.Run("rolling within max_failures", func(t *testing.T) {
		d := release(t, ctx, "rolling", true)
		failed := (hosts - 7 + 199) / 200 // hosts 7, 207, ...
		assert.Contains(t, d.Events[len(d.Events)-1].Detail, fmt.Sprintf("%d host(s) failed within max_failures %d", failed, hosts/100))
		assert.Equal(t, workflows.HostsSummary{Total: 3 * hosts, Installed: 3*hosts - failed, Failed: failed}, d.InstallPages.Summary)
		assert.Len(t, d.Batches, 4)
	})

	t.Run("unreachable skipped", func(t *testing.T) {
		reg := env.Registry()
		var ghosts []string
		for i := range 3 {
			g := fmt.Sprintf("ghost-%d", i)
			ghosts = append(ghosts, g)
			_, err := reg.Register(ctx, workflows.Registration{Role: workflows.RoleInstaller, ID: g,
				Targets: map[string][]string{"skipping": {"conf", "docs", "web"}}, Lease: time.Hour})
			require.NoError(t, err)
		}
		defer func() {
			for _, g := range ghosts {
				_ = reg.Deregister(ctx, workflows.RoleInstaller, g, "")
			}
		}()
		d := release(t, ctx, "skipping", true)
		assert.Equal(t, workflows.HostsSummary{Total: 3*hosts + 9, Installed: 3 * hosts, Skipped: 9}, d.InstallPages.Summary)
		assert.Contains(t, d.Events[len(d.Events)-1].Detail, "skipped unreachable: ghost-0/web, ghost-0/docs, ghost-0/conf, ghost-1/web")
	})

	t.Run("auto rollback", func(t *testing.T) {
		good := release(t, ctx, "autoroll", true)
		_, err := testenv.Commit(env.Path("repos", "farm"), map[string]string{"conf/BAD": "bad\n"})
		require.NoError(t, err)
		defer func() {
			_, err := testenv.Commit(env.Path("repos", "farm"), map[string]string{"conf/BAD": ""})
			assert.NoError(t, err)
		}()
		d := release(t, ctx, "autoroll", false)
		assert.Equal(t, workflows.StatusInstallFailed, d.Status)
		per := hosts / 10
		done := 2*per*3 - 1
		assert.Contains(t, d.Reason, fmt.Sprintf("rollout stopped after batch 2 of 10: 1 host(s) failed (fleet-%04d)", per))
		assert.Contains(t, d.Reason, fmt.Sprintf("rolled back %d of %d host install(s)", done, done))
		assert.Equal(t, workflows.HostsSummary{Total: 3 * hosts, Installed: done, Failed: 1, Skipped: 3 * (hosts - 2*per), RolledBack: done}, d.InstallPages.Summary)
		for _, h := range []string{"fleet-0000", fmt.Sprintf("fleet-%04d", 2*per-1)} {
			link, err := os.Readlink(filepath.Join(root, "hosts", h, "autoroll", "conf", "current"))
			require.NoError(t, err)
			assert.Contains(t, link, good.Transaction, "%s is back on the release before", h)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		txid, err := env.Release(ctx, "", workflows.Request{Project: "farm", Action: workflows.ActionInstall, Env: "slow", Requester: "fleet"})
		require.NoError(t, err)
		// Cancel once every host has installed web and docs and runs its
		// minute-long conf.
		require.Eventually(t, func() bool {
			v, err := env.Client.QueryWorkflow(ctx, txid, "", workflows.DetailQuery)
			var d workflows.Detail
			if err != nil || v.Get(&d) != nil || d.InstallPages == nil {
				return false
			}
			return d.InstallPages.Summary.Installed >= 2*hosts
		}, 3*time.Minute, time.Second)
		out, errOut, code := env.CLI(ctx, "cancel", txid)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "CANCELLED")
		d, err := transaction.Get(ctx, env.Client, txid)
		require.NoError(t, err)
		assert.Equal(t, workflows.StatusCancelled, d.Status)
		states := map[workflows.InstallState]int{}
		for _, in := range d.Installs {
			states[in.State]++
		}
		assert.Equal(t, map[workflows.InstallState]int{workflows.InstallInstalled: 2 * hosts, workflows.InstallCancelled: hosts}, states)
		h, err := env.History(ctx, txid, "")
		require.NoError(t, err)
		for _, id := range testenv.ChildIDs(h) {
			desc, err := env.Client.DescribeWorkflowExecution(ctx, id, "")
			require.NoError(t, err)
			assert.NotEqual(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus(), "child %s still runs", id)
		}
	})

	t.Run("manager killed and restarted while hosts renew", func(t *testing.T) {
		before := fl.Stats()
		managerCPU += procCPU(env.manager.Pid()) - cpu0
		cpu0 = 0
		env.manager.Kill()
		// Renewals are signals the server takes while no manager runs.
		time.Sleep(30 * time.Second)
		during := fl.Stats()
		assert.Greater(t, during.Renewals, before.Renewals, "no renewal while the manager was down")
		p, err := env.manager.Restart()
		require.NoError(t, err)
		env.manager = p
		rctx, rcancel := context.WithTimeout(ctx, time.Minute)
		defer rcancel()
		require.NoError(t, env.WaitRegistered(rctx, ids...), "a host was lost over the manager's restart")
		assert.Equal(t, before.Failures, fl.Stats().Failures)
		release(t, ctx, "fleet", true)
	})

	// The rest of the window: the hosts keep renewing.
	if rest := time.Until(renewFrom.Add(window)); rest > 0 {
		t.Logf("renewing for %s more", rest.Round(time.Second))
		select {
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}

	t.Run("renewals", func(t *testing.T) {
		took := time.Since(renewFrom)
		st := fl.Stats()
		assert.Zero(t, st.Failures, "failed registrations and renewals: %v", st.Errors)
		assert.Equal(t, hosts, st.Registrations)
		// Every host renews every lease/3 (20 s).
		want := int(float64(hosts) * took.Seconds() / 20)
		assert.GreaterOrEqual(t, st.Renewals, want*9/10, "renewals in %s", took)
		lat := slices.Clone(st.RenewalLatencies)
		slices.Sort(lat)
		p99 := lat[len(lat)*99/100]
		cpu := managerCPU + procCPU(env.manager.Pid()) - cpu0
		require.NoError(t, env.WaitRegistered(ctx, ids...))
		t.Logf("renewals: %d in %s (%.1f/s), p50 %s, p99 %s, max %s, failures %d; manager CPU %s over the window (releases included)",
			st.Renewals, took.Round(time.Second), float64(st.Renewals)/took.Seconds(), lat[len(lat)/2], p99, lat[len(lat)-1], st.Failures, cpu.Round(time.Second))
		for k := range workflows.RegistryShards {
			id := workflows.RegistryShardID(env.RegistryID, k)
			desc, err := env.Client.DescribeWorkflowExecution(ctx, id, "")
			require.NoError(t, err)
			n := desc.GetWorkflowExecutionInfo().GetHistoryLength()
			runs, _ := env.ListByID(ctx, id)
			assert.Less(t, n, int64(10240), "shard %s history", id)
			t.Logf("shard %s: %d runs, current run %d events", id, runs, n)
		}
	})
}

// release releases farm into envName, waits for the end, checks every
// workflow of it against Temporal's limits, and returns the whole detail.
func release(t *testing.T, ctx context.Context, envName string, ok bool) *workflows.Detail {
	t.Helper()
	t0 := time.Now()
	txid, err := env.Release(ctx, "", workflows.Request{Project: "farm", Action: workflows.ActionInstall, Env: envName, Requester: "fleet"})
	require.NoError(t, err)
	_, err = env.Final(ctx, txid)
	if ok {
		require.NoError(t, err)
	} else {
		require.Error(t, err)
	}
	took := time.Since(t0)
	d, err := transaction.Get(ctx, env.Client, txid)
	require.NoError(t, err)
	require.NotNil(t, d.InstallPages, "a fleet's release pages its installs")
	assert.Len(t, d.Installs, d.InstallPages.Total)
	parent, err := env.History(ctx, txid, "")
	require.NoError(t, err)
	limits(t, txid, parent)
	kids := testenv.ChildIDs(parent)
	most := 0
	for _, id := range kids {
		h, err := env.History(ctx, id, "")
		require.NoError(t, err)
		limits(t, id, h)
		most = max(most, len(h.Events))
	}
	t.Logf("%s: %s in %s; %d installs; release history %d events, %d children (largest %d events), largest payload %d bytes",
		envName, d.Status, took.Round(100*time.Millisecond), d.InstallPages.Total, len(parent.Events), len(kids), most, testenv.LargestPayload(parent))
	return d
}

// limits checks one workflow's history against Temporal's limits: 10,240
// events (where it warns) and a payload of 256 KB (relman's own bound; 2 MB
// fails).
func limits(t *testing.T, name string, h *historypb.History) {
	t.Helper()
	assert.Less(t, len(h.Events), 10240, "%s: history events", name)
	assert.Less(t, testenv.LargestPayload(h), 256<<10, "%s: largest payload", name)
}

// checkFiles checks that every host has the farm's web page live in env.
func checkFiles(t *testing.T, root, envName string, ids []string) {
	t.Helper()
	for _, h := range ids {
		b, err := os.ReadFile(filepath.Join(root, "hosts", h, envName, "web", "current", "index.html"))
		if assert.NoError(t, err, h) {
			assert.Equal(t, "<h1>farm</h1>\n", string(b), h)
		}
	}
}
