package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/surface/xmlrpc"
	"github.com/relman/relman/workers"
	"github.com/relman/relman/workflows"
)

// forget makes Temporal forget a closed transaction as its retention would:
// the frontend's DeleteWorkflowExecution, then a wait until neither the
// execution nor its visibility record answers. The dev server's shortest
// retention is an hour, and a deletion is what retention does at its end.
func forget(t *testing.T, txid string) {
	t.Helper()
	recorded(t, txid)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, env.Forget(ctx, txid, ""))
}

// recorded waits for the transaction's recorder to have written its
// record, and returns where.
func recorded(t *testing.T, txid string) workflows.RecordResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res workflows.RecordResult
	require.NoError(t, env.Client.GetWorkflow(ctx, recorderID(t, txid), "").Get(ctx, &res))
	require.Equal(t, artifact.RecordKey(devserver.Namespace, txid), res.Key)
	return res
}

// recorderID is the workflow id of a transaction's recorder.
func recorderID(t *testing.T, txid string) string {
	t.Helper()
	desc, err := env.Client.DescribeWorkflowExecution(context.Background(), txid, "")
	require.NoError(t, err)
	return desc.GetWorkflowExecutionInfo().GetExecution().GetRunId() + workflows.RecordIDSuffix
}

// readAll is what every read path answers for one transaction.
type readAll struct {
	detail   workflows.Detail
	timeline []transaction.Step
	listed   transaction.Listed
	xmlrpc   struct {
		Status  any
		History []map[string]any
	}
}

func readEverywhere(t *testing.T, txid, requester string) (r readAll, notes string) {
	t.Helper()
	out, errOut, code := relman(t, "status", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &r.detail))
	notes += errOut
	out, errOut, code = relman(t, "status", txid)
	require.Equal(t, cli.ExitOK, code, errOut)
	require.Equal(t, string(r.detail.Status)+"\n", out, "the text status is the status word alone")
	out, errOut, code = relman(t, "history", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &r.timeline))
	notes += errOut
	out, errOut, code = relman(t, "list", "--requester", requester, "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var rows []transaction.Listed
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	for _, row := range rows {
		if row.Transaction == txid {
			r.listed = row
		}
	}
	require.Equal(t, txid, r.listed.Transaction, "list --requester %s does not list %s: %s", requester, txid, out)
	notes += errOut
	waitGateway(t)
	var code8 int
	r.xmlrpc.Status, code8, _ = xmlrpcCall(t, env.gatewayURL, `relman.query_transaction('`+txid+`')`)
	require.Zero(t, code8)
	h, code8, msg := xmlrpcCall(t, env.gatewayURL, `relman.query_history('`+txid+`')`)
	require.Zero(t, code8, msg)
	b, err := json.Marshal(h)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &r.xmlrpc.History))
	return r, notes
}

// TestTransactionOutlivesRetention is the Guarantees row "a transaction
// older than the namespace retention": a release whose execution Temporal
// has deleted still answers on every read path with what it answered
// before (status, requester, commit, artifacts, hosts, timeline), and
// relman install --from it still installs its build.
func TestTransactionOutlivesRetention(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := context.Background()
	requester := "retention-tester"
	txid, err := env.Release(ctx, "", workflows.Request{Project: "kept", Action: workflows.ActionInstall, Env: "test", Requester: requester})
	require.NoError(t, err)
	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status)

	before, notes := readEverywhere(t, txid, requester)
	assert.NotContains(t, notes, "closed-transaction record", "Temporal still answers itself")
	assert.Empty(t, before.listed.From)
	require.NotEmpty(t, before.detail.Commit)
	require.Len(t, before.detail.Installs, 2)
	assert.Equal(t, "ended", before.timeline[len(before.timeline)-1].Event,
		"the final status and the close come together: the history has ended")
	// What a namespace that archives serves once the execution is gone:
	// the history, through the same API. Its close event holds the detail.
	desc, err := env.Client.DescribeWorkflowExecution(ctx, txid, "")
	require.NoError(t, err)
	fromHistory, err := transaction.FromHistory(ctx, env.Client, txid, desc.GetWorkflowExecutionInfo().GetExecution().GetRunId())
	require.NoError(t, err)
	assert.Equal(t, before.detail, *fromHistory)
	assert.Empty(t, transaction.ArchivedRun(ctx, env.Client, txid), "the dev server does not archive")

	forget(t, txid)
	_, _, code := relman(t, "status", "no-such-tx-"+txid[:8])
	assert.Equal(t, cli.ExitError, code, "an unknown id stays unknown")

	after, notes := readEverywhere(t, txid, requester)
	assert.Contains(t, notes, txid+" is no longer in Temporal", "the CLI says where the answer came from")
	assert.Contains(t, notes, "closed-transaction record")

	// The same transaction, field by field, then whole.
	assert.Equal(t, before.detail.Status, after.detail.Status)
	assert.Equal(t, requester, after.detail.Request.Requester)
	assert.Equal(t, before.detail.Commit, after.detail.Commit)
	assert.Equal(t, before.detail.Artifacts, after.detail.Artifacts)
	assert.Equal(t, before.detail.Installs, after.detail.Installs, "the same hosts, states and times")
	assert.Equal(t, before.detail, after.detail)

	assert.Equal(t, before.timeline, after.timeline, "the whole timeline, to its close")
	want := before.timeline

	assert.Equal(t, transaction.FromRecord, after.listed.From)
	before.listed.From = transaction.FromRecord
	assert.Equal(t, before.listed.Transaction, after.listed.Transaction)
	assert.Equal(t, before.listed.Status, after.listed.Status)
	assert.Equal(t, before.listed.Project, after.listed.Project)
	assert.Equal(t, before.listed.Env, after.listed.Env)
	assert.Equal(t, before.listed.Requester, after.listed.Requester)
	assert.True(t, before.listed.Started.Equal(after.listed.Started), "started %s, listed from the record %s", before.listed.Started, after.listed.Started)

	assert.Equal(t, "INSTALL_COMPLETED", after.xmlrpc.Status)
	assert.Equal(t, before.xmlrpc.Status, after.xmlrpc.Status)
	require.Len(t, after.xmlrpc.History, len(want))
	for i := range want {
		assert.Equal(t, want[i].Event, after.xmlrpc.History[i]["event"], "step %d", i)
		assert.Equal(t, want[i].Activity, strOr(after.xmlrpc.History[i]["activity"]), "step %d", i)
		assert.Equal(t, want[i].Worker, strOr(after.xmlrpc.History[i]["worker"]), "step %d", i)
	}

	// install --from the forgotten transaction installs its build.
	for _, h := range env.hosts {
		require.NoError(t, os.RemoveAll(filepath.Join(h, "kept")))
	}
	out, errOut, code := relman(t, "install", "--from", txid, "--env", "test", "--wait")
	require.Equal(t, cli.ExitOK, code, "%s%s", out, errOut)
	assert.Contains(t, out, "INSTALL_COMPLETED")
	for _, h := range env.hosts {
		assert.Equal(t, before.detail.Commit+"\n", readFile(t, filepath.Join(h, "kept", "COMMIT")), "host %s has the forgotten build", h)
	}
	var installed workflows.Detail
	out, _, _ = relman(t, "status", strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction "), "-o", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &installed))
	assert.Equal(t, before.detail.Artifacts, installed.Artifacts, "installed without rebuilding")
	assert.Equal(t, txid, installed.Request.From)
}

func strOr(v any) string {
	s, _ := v.(string)
	return s
}

// TestInstallFromForgottenBuildGone: install --from a transaction Temporal
// forgot whose artifacts the store no longer holds is rejected before any
// host is asked, naming what is missing and how to build it again.
func TestInstallFromForgottenBuildGone(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := context.Background()
	c := commit(t, "kept-gone", map[string]string{"KEPT": "gone\n"})
	txid, err := env.Release(ctx, "", workflows.Request{Project: "kept", Action: workflows.ActionBuild, Source: workflows.Selector{Revision: c}, Requester: "retention-tester"})
	require.NoError(t, err)
	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusBuildCompleted, d.Status)
	forget(t, txid)
	for _, a := range d.Artifacts {
		require.NoError(t, os.Remove(env.Path("artifacts", filepath.FromSlash(a.Key))))
	}
	out, errOut, code := relman(t, "install", "--from", txid, "--env", "test", "--wait")
	assert.Equal(t, cli.ExitReleaseFailed, code, "%s%s", out, errOut)
	assert.Contains(t, out+errOut, "REJECTED")
	assert.Contains(t, out+errOut, "the build of transaction "+txid+" is no longer in the artifact store")
	assert.Contains(t, out+errOut, "kept (sha256 "+d.Artifacts["kept"].SHA256+") missing")
	assert.Contains(t, out+errOut, "relman release kept --revision "+c)
}

// TestTamperedRecordNotShown: a record changed in the store after the
// manager wrote it is reported as not verifying on every read path, never
// shown as the transaction.
func TestTamperedRecordNotShown(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := context.Background()
	requester := "tamper-tester"
	txid, err := env.Release(ctx, "", workflows.Request{Project: "kept", Action: workflows.ActionBuild, Requester: requester})
	require.NoError(t, err)
	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusBuildCompleted, d.Status)
	forget(t, txid)

	indexPath := env.Path("artifacts", filepath.FromSlash(artifact.RecordKey(devserver.Namespace, txid)))
	orig, err := os.ReadFile(indexPath)
	require.NoError(t, err)
	var idx struct {
		Body struct {
			Record artifact.Ref `json:"record"`
		} `json:"body"`
	}
	require.NoError(t, json.Unmarshal(orig, &idx))
	recordPath := env.Path("artifacts", filepath.FromSlash(idx.Body.Record.Key))
	recOrig, err := os.ReadFile(recordPath)
	require.NoError(t, err)

	assertRefused := func(t *testing.T, why string) {
		t.Helper()
		for _, args := range [][]string{{"status", txid}, {"status", txid, "-o", "json"}, {"history", txid}, {"install", "--from", txid, "--env", "test"}} {
			out, errOut, code := relman(t, args...)
			assert.Equal(t, cli.ExitError, code, "%v: %s%s", args, out, errOut)
			assert.Empty(t, out, "%v shows nothing", args)
			assert.Contains(t, errOut, "the closed-transaction record of "+txid+" does not verify", "%v", args)
			assert.Contains(t, errOut, why, "%v", args)
		}
		for _, call := range []string{`relman.query_transaction('` + txid + `')`, `relman.query_history('` + txid + `')`} {
			res, code, msg := xmlrpcCall(t, env.gatewayURL, call)
			assert.Nil(t, res)
			assert.Equal(t, xmlrpc.CodeRecordUnverified, code, "%s: %s", call, msg)
			assert.Contains(t, msg, "does not verify", call)
		}
	}

	t.Run("index changed", func(t *testing.T) {
		forged := bytes.Replace(orig, []byte(`"status":"BUILD_COMPLETED"`), []byte(`"status":"INSTALL_COMPLETED"`), 1)
		require.NotEqual(t, orig, forged)
		require.NoError(t, os.WriteFile(indexPath, forged, 0o644))
		defer os.WriteFile(indexPath, orig, 0o644)
		assertRefused(t, "its index was changed after the manager signed it")
		out, errOut, code := relman(t, "list", "--requester", requester, "-o", "json")
		require.Equal(t, cli.ExitOK, code, errOut)
		assert.NotContains(t, out, txid)
		assert.Contains(t, errOut, "do not verify and are not listed: ")
		assert.Contains(t, errOut, txid)
	})
	t.Run("record changed", func(t *testing.T) {
		forged := bytes.Replace(recOrig, []byte(`"status":"BUILD_COMPLETED"`), []byte(`"status":"INSTALL_COMPLETED"`), 1)
		require.NotEqual(t, recOrig, forged)
		require.NoError(t, os.WriteFile(recordPath, forged, 0o644))
		defer os.WriteFile(recordPath, recOrig, 0o644)
		assertRefused(t, "its content was changed after the manager wrote it")
	})
	// Put back as the manager wrote them, they verify again.
	out, errOut, code := relman(t, "status", txid)
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, "BUILD_COMPLETED\n", out)
}

// TestManagerWarnsOfShortRetention: a manager whose namespace keeps closed
// transactions for less than its min_retention says so once at start, with
// the command that changes it; one whose namespace keeps enough says what
// it keeps.
func TestManagerWarnsOfShortRetention(t *testing.T) {
	for name, tc := range map[string]struct {
		min  time.Duration
		want []string
		not  string
	}{
		"shorter than the minimum": {
			min: 42 * 24 * time.Hour,
			want: []string{
				"namespace default keeps closed transactions 30d, less than min_retention 42d",
				"then only this manager's closed-transaction records answer for them",
				"temporal operator namespace update --namespace default --retention 42d",
			},
		},
		"long enough": {
			min:  30 * 24 * time.Hour,
			want: []string{`msg="namespace retention" role=manager namespace=default retention=30d`},
			not:  "less than min_retention",
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := &config.Manager{
				Service:      env.Service(),
				Environments: map[string]config.Environment{"test": {}},
				Projects:     map[string]config.ProjectDef{"p": {Targets: []string{"a"}}},
				Auth:         config.Auth{Anonymous: true},
				Gateway:      config.Gateway{Off: true},
				Artifacts:    "file://" + filepath.Join(dir, "store"),
				MinRetention: tc.min,
			}
			cfg.ManagerQueue, cfg.RegistryID = "relman-retention-"+strings.ReplaceAll(name, " ", "-"), "relman-retention-registry"
			cfg.RecordsKeyFile = filepath.Join(dir, "records.key")
			cfg.Default()
			var logs bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			ready := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- workers.Run(ctx, cfg, workers.Options{
					Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)),
					Ready:  func(workers.Serving) { close(ready) },
				})
			}()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("manager stopped: %v\n%s", err, logs.String())
			}
			cancel()
			require.NoError(t, <-done)
			for _, w := range tc.want {
				assert.Contains(t, logs.String(), w)
			}
			if tc.not != "" {
				assert.NotContains(t, logs.String(), tc.not)
			}
			assert.Equal(t, 1, strings.Count(logs.String(), "namespace retention")+strings.Count(logs.String(), "less than min_retention"), "said once:\n%s", logs.String())
			assert.Contains(t, logs.String(), "closed-transaction records")
		})
	}
}

// syncWriter lets a role's log and the test share a buffer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
