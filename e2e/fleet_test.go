package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/workers"
	"github.com/relman/relman/workflows"
)

// Registrations and renewals that arrive while a shard continues as new
// reach the next run: a shard made to continue as new every 150 events
// takes 24 hosts registering, renewing 40 times each and registering again
// with a new advertisement halfway, and holds every one with its newest
// advertisement.
func TestRegistryShardKeepsEveryRegistrationAcrossContinueAsNew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reg := registry.Registry{Client: env.Client, ID: "can-registry", ManagerQueue: workflows.DefaultManagerQueue}
	const k = 5
	var ids []string
	for i := 0; len(ids) < 24; i++ {
		if id := fmt.Sprintf("can-%03d", i); workflows.RegistryShardOf(id) == k {
			ids = append(ids, id)
		}
	}
	shard := workflows.RegistryShardID(reg.ID, k)
	run, err := env.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: shard, TaskQueue: workflows.DefaultManagerQueue},
		workflows.RegistryShardWorkflowName, workflows.RegistryShardState{MaxHistory: 150})
	require.NoError(t, err)
	first := run.GetRunID()
	t.Cleanup(func() { _ = env.Client.TerminateWorkflow(context.Background(), shard, "", "test done") })

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for _, id := range ids {
		wg.Go(func() {
			fail := func(err error) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, err.Error())
			}
			r := workflows.Registration{Role: workflows.RoleInstaller, ID: id, Targets: map[string][]string{"can": {"v1"}}, Lease: time.Hour}
			if _, err := reg.Register(ctx, r); err != nil {
				fail(err)
				return
			}
			for i := range 40 {
				if i == 20 {
					r.Targets = map[string][]string{"can": {"v2"}}
					if _, err := reg.Register(ctx, r); err != nil {
						fail(err)
					}
					continue
				}
				if err := reg.Renew(ctx, r); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	assert.Empty(t, failures, "registrations or renewals failed")

	runs := runsOf(t, shard, first)
	assert.GreaterOrEqual(t, len(runs), 3, "the shard continued as new %d times", len(runs)-1)
	require.Eventually(t, func() bool {
		ls, err := reg.List(ctx, time.Now())
		if err != nil || len(ls) != len(ids) {
			return false
		}
		for _, l := range ls {
			if l.Targets["can"][0] != "v2" {
				return false
			}
		}
		return true
	}, time.Minute, 200*time.Millisecond, "every host is registered with its newest advertisement")

	h := runHistory(t, shard, first)
	assert.Equal(t, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, h.Events[len(h.Events)-1].GetEventType())
	saveHistory(t, "registry-shard-continued-as-new", h)
}

// runsOf follows a workflow's continue-as-new chain from its first run and
// returns the run ids, the running one last.
func runsOf(t *testing.T, id, first string) []string {
	t.Helper()
	runs := []string{first}
	for {
		h := runHistory(t, id, runs[len(runs)-1])
		last := h.Events[len(h.Events)-1]
		if last.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW {
			return runs
		}
		runs = append(runs, last.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId())
	}
}

// runHistory reads one run's events.
func runHistory(t *testing.T, id, run string) *historypb.History {
	t.Helper()
	h, err := env.History(context.Background(), id, run)
	require.NoError(t, err)
	return h
}

// saveHistory replays h with the current workflow code and, with
// RELMAN_UPDATE_HISTORIES=1, saves it gzipped (scrubbed) among the saved
// histories that workflows' replay test keeps replaying.
func saveHistory(t *testing.T, name string, h *historypb.History) {
	t.Helper()
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	b = scrub(t, b)
	replayer := worker.NewWorkflowReplayer()
	workers.RegisterWorkflows(replayer)
	saved, err := client.HistoryFromJSON(bytes.NewReader(b), client.HistoryJSONOptions{})
	require.NoError(t, err)
	id := saved.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowId()
	require.NoError(t, replayer.ReplayWorkflowHistoryWithOptions(nil, saved, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: id},
	}), "replay %s", name)
	if os.Getenv("RELMAN_UPDATE_HISTORIES") == "" {
		return
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(filepath.Join("..", "workflows", "testdata", "histories", name+".json.gz"), gz.Bytes(), 0o644))
}

// historyLimits checks what Temporal limits per workflow: events (10,240
// warns) and every payload (relman keeps them under 256 KB; 2 MB fails).
func historyLimits(t *testing.T, name string, h *historypb.History) {
	t.Helper()
	assert.Less(t, len(h.Events), 10240, "%s: history events", name)
	assert.Less(t, testenv.LargestPayload(h), 256<<10, "%s: largest payload", name)
}

// A release to 170 simulated hosts x 3 named targets (510 installs) goes
// through HostFanOut children of at most 200 installs, pages its detail,
// and still reads whole through the CLI; a rolling release with
// auto_rollback that stops rolls the hosts it did back, through children
// as well. The hosts are real installers (testenv.StartFleet) in this
// process.
func TestFanOutThroughChildrenToSimulatedHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env.DumpOnFailure(t)
	const n = 170
	root := env.Path("farm")
	artifacts := "file://" + env.Path("artifacts")
	targets := []string{"conf", "docs", "web"}
	fl, err := testenv.StartFleet(ctx, testenv.FleetOptions{
		Address: env.Address,
		Hosts:   n,
		Spread:  2 * time.Second,
		Config: func(i int) (*config.Installer, error) {
			cfg, err := testenv.FleetHost(env.Address, root, fmt.Sprintf("farm-%03d", i), artifacts,
				map[string][]string{"fleet": targets, "fleetroll": targets}, env.Trust())
			if err != nil || i != 3 {
				return cfg, err
			}
			// farm-003 refuses a conf that ships a file named BAD.
			b := cfg.Environments["fleetroll"]["conf"]
			zero := 0
			b.Health = &config.HealthCheck{Command: []string{"sh", "-c", "! test -f BAD"}, Retries: &zero}
			cfg.Environments["fleetroll"]["conf"] = b
			return cfg, cfg.Validate()
		},
	})
	require.NoError(t, err)
	defer fl.Stop()
	require.NoError(t, env.WaitRegistered(ctx, fl.IDs()...))

	txid := start(t, workflows.Request{Project: "farm", Action: workflows.ActionInstall, Env: "fleet"})
	d, err := final(t, txid)
	require.NoError(t, err)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.Equal(t, fmt.Sprintf("installed on %d host(s)", n), d.Events[len(d.Events)-1].Detail)
	assert.Empty(t, d.Installs, "the result carries the count, not 510 installs")
	require.NotNil(t, d.InstallPages)
	assert.Equal(t, workflows.HostsSummary{Total: 3 * n, Installed: 3 * n}, d.InstallPages.Summary)

	// The CLI reads every install, a page at a time.
	out, errOut, code := env.CLI(ctx, "status", txid, "-o", "json")
	require.Equal(t, 0, code, errOut)
	var whole workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out), &whole))
	require.Len(t, whole.Installs, 3*n)
	for _, in := range whole.Installs {
		assert.Equal(t, workflows.InstallInstalled, in.State, "%s/%s", in.Host, in.Target)
		assert.True(t, strings.HasPrefix(in.Path, filepath.Join(root, "hosts", in.Host, "fleet", in.Target)), in.Path)
	}
	for i := range n {
		b, err := os.ReadFile(filepath.Join(root, "hosts", fmt.Sprintf("farm-%03d", i), "fleet", "web", "current", "index.html"))
		require.NoError(t, err)
		assert.Equal(t, "<h1>farm</h1>\n", string(b))
	}

	parent := runHistory(t, txid, "")
	historyLimits(t, "release", parent)
	kids := testenv.ChildIDs(parent)
	assert.ElementsMatch(t, []string{txid + "-install-1", txid + "-install-2", txid + "-install-3"}, kids)
	for _, id := range kids {
		historyLimits(t, id, runHistory(t, id, ""))
	}
	// relman history shows the children, whose own histories hold the
	// installs.
	out, errOut, code = env.CLI(ctx, "history", txid)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "child started")
	assert.Contains(t, out, "child completed")
	assert.Contains(t, out, txid+"-install-2")
	saveHistory(t, "release-fanout-children", parent)
	saveHistory(t, "hostfanout-installs", runHistory(t, txid+"-install-3", ""))

	// --follow on a terminal-less output prints the count as it moves.
	out, errOut, code = env.CLI(ctx, "release", "farm", "--env", "fleet", "--follow")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, fmt.Sprintf("%d of %d done: %d installed, 0 failed, 0 skipped", 3*n, 3*n, 3*n))
	assert.Contains(t, out, "INSTALL_COMPLETED")

	// A rolling release, 50% a batch, that stops on farm-003 in batch 1
	// and rolls back what it installed there: 84 hosts x 3 targets and
	// farm-003's two healthy ones, through two rollback children.
	good := start(t, workflows.Request{Project: "farm", Action: workflows.ActionInstall, Env: "fleetroll"})
	d, err = final(t, good)
	require.NoError(t, err, "the first rolling release is healthy everywhere")
	_, err = testenv.Commit(env.Path("repos", "farm"), map[string]string{"conf/BAD": "bad\n"})
	require.NoError(t, err)
	bad := start(t, workflows.Request{Project: "farm", Action: workflows.ActionInstall, Env: "fleetroll"})
	d, err = final(t, bad)
	require.Error(t, err)
	assert.Equal(t, workflows.StatusInstallFailed, d.Status)
	assert.Contains(t, d.Reason, "rollout stopped after batch 1 of 2: 1 host(s) failed (farm-003)")
	assert.Contains(t, d.Reason, "85 host(s) left untouched: farm-085, farm-086")
	assert.Contains(t, d.Reason, "... and 65 more")
	assert.Contains(t, d.Reason, "rolled back 254 of 254 host install(s)")
	require.NotNil(t, d.InstallPages)
	assert.Equal(t, workflows.HostsSummary{Total: 3 * n, Installed: 254, Failed: 1, Skipped: 255, RolledBack: 254}, d.InstallPages.Summary)
	kids = testenv.ChildIDs(runHistory(t, bad, ""))
	assert.Contains(t, kids, bad+"-rollback-2")
	// The hosts of batch 1 are back on the first release.
	for _, h := range []string{"farm-000", "farm-084"} {
		link, err := os.Readlink(filepath.Join(root, "hosts", h, "fleetroll", "conf", "current"))
		require.NoError(t, err)
		assert.Contains(t, link, good, h)
	}
	_, err = testenv.Commit(env.Path("repos", "farm"), map[string]string{"conf/BAD": ""})
	require.NoError(t, err)

	st := fl.Stats()
	assert.Zero(t, st.Failures, "registration failures: %v", st.Errors)
}
