package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/internal/transaction"
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
	pidfile := filepath.Join(env.root, "slow.pid")
	_ = os.Remove(pidfile)
	cancelled := start(t, workflows.Request{Project: "slow", Action: workflows.ActionInstall, Env: "test"})
	require.Eventually(t, func() bool {
		_, err := os.Stat(pidfile)
		return err == nil
	}, time.Minute, 100*time.Millisecond)
	require.NoError(t, env.client.CancelWorkflow(context.Background(), cancelled, ""))
	_, _ = final(t, cancelled)
	d, err := transaction.Get(context.Background(), env.client, cancelled)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusCancelled, d.Status)
	ids["release-cancelled"] = cancelled
	ids["registry"] = workflows.DefaultRegistryID

	dir := t.TempDir()
	if os.Getenv("RELMAN_UPDATE_HISTORIES") != "" {
		dir = filepath.Join("..", "workflows", "testdata", "histories")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(workflows.Release, workflow.RegisterOptions{Name: workflows.ReleaseWorkflowName})
	replayer.RegisterWorkflowWithOptions(workflows.Registry, workflow.RegisterOptions{Name: workflows.RegistryWorkflowName})
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
	it := env.client.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
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
	host, _ := os.Hostname()
	repl := strings.NewReplacer(env.root, "/srv/relman-e2e", "@"+host+":", "@recorder:", "@"+host+"@", "@recorder@")
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
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
	out, err := json.MarshalIndent(walk(v), "", "  ")
	require.NoError(t, err)
	return out
}
