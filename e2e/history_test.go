package e2e

import (
	"context"
	"encoding/base64"
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
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/relman/relman/internal/registry"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workers"
	"github.com/relman/relman/workflows"
)

func TestInstallFailedNamesHost(t *testing.T) {
	d, err := final(t, start(t, workflows.Request{Project: "hooked", Action: workflows.ActionInstall, Env: "test"}))
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.Equal(t, string(workflows.StatusInstallFailed), app.Type())
	assert.Equal(t, workflows.StatusInstallFailed, d.Status)
	assert.Contains(t, d.Reason, "host-a/hook")
	assert.Contains(t, d.Reason, "hook refused on host-a")
	assert.NotContains(t, d.Reason, "host-b")
	require.Len(t, d.Installs, 2)
	for _, in := range d.Installs {
		switch in.Host {
		case "host-a":
			assert.Equal(t, workflows.InstallFailedS, in.State)
			assert.EqualValues(t, 3, in.Attempts, "a failing command is retried")
			assert.Contains(t, in.Error, "exited with status 4")
		case "host-b":
			assert.Equal(t, workflows.InstallInstalled, in.State)
		}
	}
}

// TestRecordedHistoriesReplay records the histories of one transaction per
// ending and of the registry, and replays them with the current workflow
// code. With RELMAN_UPDATE_HISTORIES=1 it also saves them under
// workflows/testdata/histories, where workflows' replay test keeps checking
// that changes to the workflows do not break transactions already running.
func TestRecordedHistoriesReplay(t *testing.T) {
	runs := map[string]workflows.Request{
		"release-install-completed": {Project: "shop", Action: workflows.ActionInstall, Env: "test"},
		"release-build-completed":   {Project: "shop", Action: workflows.ActionBuild},
		"release-build-failed":      {Project: "broken", Action: workflows.ActionInstall, Env: "test"},
		"release-rejected":          {Project: "orphan", Action: workflows.ActionInstall, Env: "test"},
		"release-install-failed":    {Project: "hooked", Action: workflows.ActionInstall, Env: "test"},
	}
	ids := map[string]string{}
	for name, req := range runs {
		ids[name] = start(t, req)
	}
	for _, id := range ids {
		_, _ = final(t, id)
	}
	// A cancelled one: cancel while its build step sleeps.
	pidfile := filepath.Join(env.Root, "slow.pid")
	_ = os.Remove(pidfile)
	cancelled := start(t, workflows.Request{Project: "slow", Action: workflows.ActionInstall, Env: "test"})
	require.Eventually(t, func() bool {
		_, err := os.Stat(pidfile)
		return err == nil
	}, time.Minute, 100*time.Millisecond)
	require.NoError(t, env.Client.CancelWorkflow(context.Background(), cancelled, ""))
	_, _ = final(t, cancelled)
	d, err := transaction.Get(context.Background(), env.Client, cancelled)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusCancelled, d.Status)
	require.Equal(t, workflows.OutsideCancelReason, d.Reason, "a Temporal cancel is recorded as from outside relman")
	ids["release-cancelled"] = cancelled
	// The shard that holds host-a (the single Registry of earlier versions
	// keeps its saved histories; nothing registers there any more).
	ids["registry-shard"] = workflows.RegistryShardID(workflows.DefaultRegistryID, workflows.RegistryShardOf("host-a"))

	dir := t.TempDir()
	if os.Getenv("RELMAN_UPDATE_HISTORIES") != "" {
		dir = filepath.Join("..", "workflows", "testdata", "histories")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	replayer := worker.NewWorkflowReplayer()
	workers.RegisterWorkflows(replayer)
	for name, id := range ids {
		h := history(t, id)
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
		require.NoError(t, err)
		b = scrub(t, b)
		p := filepath.Join(dir, name+".json")
		require.NoError(t, os.WriteFile(p, b, 0o644))
		require.NoError(t, replayer.ReplayWorkflowHistoryFromJSONFile(nil, p), "replay %s", name)
	}
}

func history(t *testing.T, id string) *historypb.History {
	t.Helper()
	it := env.Client.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, e)
	}
	return h
}

// scrub replaces this machine's temp dir and host name inside the history
// (payloads are base64) with neutral ones, so saved histories hold no path
// or name of the machine that recorded them. Replays do not depend on them.
func scrub(t *testing.T, b []byte) []byte {
	t.Helper()
	out := scrubBytes(b)
	require.NotNil(t, out, "history JSON does not parse")
	return out
}

func scrubBytes(b []byte) []byte {
	host, _ := os.Hostname()
	repl := strings.NewReplacer(env.Root, "/srv/relman-e2e", "@"+host+":", "@recorder:", "@"+host+"@", "@recorder@")
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	var walk func(any) any
	walk = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "data" {
					if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
						x[k] = base64.StdEncoding.EncodeToString([]byte(repl.Replace(string(raw))))
						continue
					}
				}
				x[k] = walk(e)
			}
			return x
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
			return x
		case string:
			return repl.Replace(x)
		}
		return x
	}
	out, _ := json.MarshalIndent(walk(v), "", "  ")
	return out
}

// saveAllHistories writes the history of every workflow execution the run
// left in the namespace to dir, as <type>-<status>-<id>-<run>.json, scrubbed
// like the saved ones, to pick new saved histories from
// (RELMAN_SAVE_ALL_HISTORIES=dir go test ./e2e).
func saveAllHistories(dir string) error {
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var token []byte
	for {
		resp, err := env.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000, NextPageToken: token})
		if err != nil {
			return err
		}
		for _, ex := range resp.GetExecutions() {
			id, run := ex.GetExecution().GetWorkflowId(), ex.GetExecution().GetRunId()
			it := env.Client.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			h := &historypb.History{}
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					return err
				}
				h.Events = append(h.Events, e)
			}
			b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
			if err != nil {
				return err
			}
			// A recorder's id holds a '/' (<run id>/record).
			name := fmt.Sprintf("%s-%s-%s-%s.json", ex.GetType().GetName(), strings.ToLower(ex.GetStatus().String()), strings.ReplaceAll(id, "/", "_"), run[:8])
			if err := os.WriteFile(filepath.Join(dir, name), scrubBytes(b), 0o644); err != nil {
				return err
			}
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return nil
		}
	}
}

// TestRecordContinueAsNew drives a Lock and a Registry workflow until they
// continue as new, checks that what they hold survives, and saves the first
// run's history (the continue-as-new path) with RELMAN_UPDATE_HISTORIES=1.
// It takes a few thousand signals and updates, so it only runs when asked.
func TestRecordContinueAsNew(t *testing.T) {
	if os.Getenv("RELMAN_UPDATE_HISTORIES") == "" {
		t.Skip("records histories; set RELMAN_UPDATE_HISTORIES=1")
	}
	ctx := context.Background()
	c := env.Client
	startLock := func(id, tx string) string {
		run, err := c.SignalWithStartWorkflow(ctx, id, workflows.LockRequestSignal,
			workflows.LockRequest{Lock: id, Env: "rec", Target: "t", Transaction: tx},
			client.StartWorkflowOptions{ID: id, TaskQueue: workflows.DefaultManagerQueue},
			workflows.LockWorkflowName, workflows.LockState{Env: "rec", Target: "t"})
		require.NoError(t, err)
		return run.GetRunID()
	}
	// Two running workflows stand in for the releases that ask: the lock
	// only needs somewhere to signal its answers.
	startLock("rec-holder-1", "")
	startLock("rec-holder-2", "")
	lock := "lock-rec-t"
	first := startLock(lock, "rec-holder-1")
	require.NoError(t, c.SignalWorkflow(ctx, lock, "", workflows.LockRequestSignal, workflows.LockRequest{Lock: lock, Transaction: "rec-holder-2"}))
	continued := func(id, run string) bool {
		d, err := c.DescribeWorkflowExecution(ctx, id, run)
		require.NoError(t, err)
		return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
	}
	// Bursts with quiet in between: the lock continues as new once its
	// history is long and no signal is waiting.
	quiet := func() {
		last := int64(-1)
		for {
			d, err := c.DescribeWorkflowExecution(ctx, lock, first)
			require.NoError(t, err)
			n := d.GetWorkflowExecutionInfo().GetHistoryLength()
			if n == last || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				return
			}
			last = n
			time.Sleep(300 * time.Millisecond)
		}
	}
	for i := 0; !continued(lock, first); i++ {
		require.Less(t, i, 400, "the lock never continued as new")
		for range 25 {
			require.NoError(t, c.SignalWorkflow(ctx, lock, "", workflows.LockRequestSignal, workflows.LockRequest{Lock: lock, Transaction: "rec-holder-1"}))
		}
		quiet()
	}
	var st workflows.LockState
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, lock, "", workflows.LockQuery)
		return err == nil && v.Get(&st) == nil
	}, time.Minute, 200*time.Millisecond)
	assert.Equal(t, "rec-holder-1", st.Holder, "the holder survives continue-as-new")
	assert.Equal(t, []string{"rec-holder-2"}, st.Queue, "the queue survives continue-as-new")

	reg := registry.Registry{Client: c, ID: "rec-registry", ManagerQueue: workflows.DefaultManagerQueue}
	hosts := []string{"rec-a", "rec-b", "rec-c", "rec-d", "rec-e"}
	_, err := reg.Register(ctx, workflows.Registration{Role: workflows.RoleInstaller, ID: "rec-a", Targets: map[string][]string{"rec": {"t"}}, Lease: time.Hour})
	require.NoError(t, err)
	regFirst := c.GetWorkflow(ctx, reg.ID, "").GetRunID()
	for i := 0; !continued(reg.ID, regFirst); i++ {
		require.Less(t, i, 400, "the registry never continued as new")
		var wg sync.WaitGroup
		for _, h := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := reg.Register(ctx, workflows.Registration{Role: workflows.RoleInstaller, ID: h, Targets: map[string][]string{"rec": {"t"}}, Lease: time.Hour})
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
	}
	require.Eventually(t, func() bool {
		ls, err := reg.List(ctx, time.Now())
		return err == nil && len(ls) == len(hosts)
	}, time.Minute, 200*time.Millisecond, "the registrations survive continue-as-new")

	dir := t.TempDir()
	if os.Getenv("RELMAN_UPDATE_HISTORIES") != "" {
		dir = filepath.Join("..", "workflows", "testdata", "histories")
	}
	for name, ex := range map[string][2]string{"lock-continued-as-new": {lock, first}, "registry-continued-as-new": {reg.ID, regFirst}} {
		it := c.GetWorkflowHistory(ctx, ex[0], ex[1], false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		h := &historypb.History{}
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			h.Events = append(h.Events, e)
		}
		b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), scrub(t, b), 0o644))
	}
	for _, id := range []string{lock, "rec-holder-1", "rec-holder-2", reg.ID} {
		_ = c.TerminateWorkflow(ctx, id, "", "recorded")
	}
}
