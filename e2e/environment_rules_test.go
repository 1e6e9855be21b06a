package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// safetyHookPort is where the gated environment's webhook posts; the test
// listens on it with an httptest server.
var safetyHookPort int

func reserveSafetyHookPort() error {
	p, err := freeTCPPort()
	safetyHookPort = p
	return err
}

// relmanAs runs the CLI as another requester.
func relmanAs(t *testing.T, who string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code = cli.Execute(ctx, append(args, "--address", env.Address), cli.Options{
		Stdout: &out, Stderr: &errb,
		LookupEnv: func(k string) (string, bool) {
			if k == "RELMAN_REQUESTER" {
				return who, true
			}
			return os.LookupEnv(k)
		},
	})
	return out.String(), errb.String(), code
}

func waitStatus(t *testing.T, txid string, want workflows.Status) *workflows.Detail {
	t.Helper()
	var d *workflows.Detail
	require.Eventually(t, func() bool {
		var err error
		d, err = transaction.Get(context.Background(), env.Client, txid)
		return err == nil && d.Status == want
	}, 2*time.Minute, 200*time.Millisecond, "transaction %s never reached %s", txid, want)
	return d
}

// A rolling release (batch 1, max_failures 0) whose first host fails stops
// there: the second host is never touched.
func TestRollingReleaseStopsAtFailingHost(t *testing.T) {
	out, stderr, code := relman(t, "plan", "canary", "--env", "rolled", "-o", "json")
	require.Equal(t, 0, code, stderr)
	var plan workflows.PlanOnlyResult
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	assert.Equal(t, [][]string{{"host-a"}, {"host-b"}}, plan.Batches)
	assert.Equal(t, rollout.StrategyRolling, plan.Plan.Rollout.Strategy)
	text, _, code := relman(t, "plan", "canary", "--env", "rolled")
	require.Equal(t, 0, code)
	assert.Contains(t, text, "batch 1   host-a")
	assert.Contains(t, text, "builder   builder-e2e")

	out, stderr, code = relman(t, "release", "canary", "--env", "rolled", "--strategy", "rolling", "--batch", "1", "--max-failures", "0", "--wait", "-o", "json")
	require.Equal(t, cli.ExitReleaseFailed, code, stderr)
	var d workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	assert.Equal(t, workflows.StatusInstallFailed, d.Status)
	assert.Contains(t, d.Reason, "stopped after batch 1 of 2")
	assert.Contains(t, d.Reason, "host-a")
	assert.Contains(t, d.Reason, "box refused on host-a")
	require.Len(t, d.Installs, 2)
	for _, in := range d.Installs {
		switch in.Host {
		case "host-a":
			assert.Equal(t, workflows.InstallFailedS, in.State)
			assert.Equal(t, 1, in.Batch)
		case "host-b":
			assert.Equal(t, workflows.InstallSkipped, in.State)
			assert.Equal(t, 2, in.Batch)
		}
	}
	_, err := os.Stat(filepath.Join(env.hosts["host-b"], "rolled", "box"))
	assert.True(t, os.IsNotExist(err), "host-b was installed although the rollout stopped before it: %v", err)
}

// Two releases of the same named target into one environment run their
// installs one after the other.
func TestLockSerializesReleases(t *testing.T) {
	a := start(t, workflows.Request{Project: "canary", Action: workflows.ActionInstall, Env: "serial", Requester: "one"})
	b := start(t, workflows.Request{Project: "canary", Action: workflows.ActionInstall, Env: "serial", Requester: "two"})
	da, err := final(t, a)
	require.NoError(t, err)
	db, err := final(t, b)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, da.Status)
	require.Equal(t, workflows.StatusInstallCompleted, db.Status)
	span := func(d *workflows.Detail) (first, last time.Time) {
		for _, in := range d.Installs {
			if first.IsZero() || in.Started.Before(first) {
				first = in.Started
			}
			if in.Ended.After(last) {
				last = in.Ended
			}
		}
		return first, last
	}
	aStart, aEnd := span(da)
	bStart, bEnd := span(db)
	if bStart.Before(aStart) {
		aStart, aEnd, bStart, bEnd = bStart, bEnd, aStart, aEnd
		da, db = db, da
	}
	assert.False(t, bStart.Before(aEnd), "second release installed from %s while the first installed until %s", bStart, aEnd)
	_ = aStart
	_ = bEnd
	// The second one waited, naming the first as the holder.
	waited := false
	for _, e := range db.Events {
		if e.Status == workflows.StatusWaiting {
			waited = true
			assert.Contains(t, e.Detail, da.Transaction)
		}
	}
	assert.True(t, waited, "the second release never reported WAITING: %+v", db.Events)
	// Both asked by update (lock-update): the first was granted at once,
	// the second waited and was granted by signal. Each recorded one
	// version marker (the baseline) and upserted its search attributes
	// once per status, no more.
	for name, d := range map[string]*workflows.Detail{"release-baseline-lock-granted": da, "release-baseline-lock-waited": db} {
		h := history(t, d.Transaction)
		markers, upserts := 0, 0
		for _, ev := range h.GetEvents() {
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_MARKER_RECORDED:
				if ev.GetMarkerRecordedEventAttributes().GetMarkerName() == "Version" {
					markers++
				}
			case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
				upserts++
			}
		}
		assert.Equal(t, 1, markers, "%s: version markers", name)
		statuses := 0
		for _, e := range d.Events {
			if e.Status != "" {
				statuses++
			}
		}
		assert.Equal(t, statuses+1, upserts, "%s: one upsert per status, and the baseline's: %+v", name, d.Events)
		saveHistory(t, name, h)
	}
	saveHistory(t, "lock-baseline", history(t, workflows.LockID("", "serial", "box")))
}

type hookReceiver struct {
	mu  sync.Mutex
	got []workflows.Notification
	srv *httptest.Server
}

func listenHooks(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:"+itoa(safetyHookPort))
	require.NoError(t, err)
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n workflows.Notification
		if r.URL.Path != "/hook" || json.NewDecoder(r.Body).Decode(&n) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, n)
		h.mu.Unlock()
	}))
	h.srv.Listener.Close()
	h.srv.Listener = l
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) find(txid string, status workflows.Status) *workflows.Notification {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.got {
		if h.got[i].Transaction == txid && h.got[i].Status == status {
			n := h.got[i]
			return &n
		}
	}
	return nil
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// In an environment that needs approval, a release waits after its build;
// its requester cannot approve it (four eyes), someone else can; a webhook
// hears of both the wait and the end.
func TestApprovalFlow(t *testing.T) {
	hooks := listenHooks(t)
	out, stderr, code := relman(t, "release", "canary", "--env", "gated")
	require.Equal(t, 0, code, stderr)
	txid := strings.TrimSpace(out)
	d := waitStatus(t, txid, workflows.StatusAwaitingApproval)
	assert.Contains(t, d.Waiting, "approval by someone other than e2e-tester")
	assert.Empty(t, d.Installs, "installed before the approval")

	_, stderr, code = relman(t, "approve", txid)
	assert.Equal(t, cli.ExitError, code)
	assert.Contains(t, stderr, "four eyes")

	out, stderr, code = relmanAs(t, "bob", "approve", txid, "--comment", "ship it")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "approved by bob")
	d, err := final(t, txid)
	require.NoError(t, err)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	require.NotNil(t, d.Approval)
	assert.Equal(t, "bob", d.Approval.By)
	assert.Equal(t, "ship it", d.Approval.Comment)
	assert.FileExists(t, filepath.Join(env.hosts["host-a"], "gated", "box"))

	require.Eventually(t, func() bool { return hooks.find(txid, workflows.StatusInstallCompleted) != nil }, time.Minute, 100*time.Millisecond)
	n := hooks.find(txid, workflows.StatusInstallCompleted)
	assert.Equal(t, "canary", n.Project)
	assert.Equal(t, "gated", n.Env)
	assert.Equal(t, "e2e-tester", n.Requester)
	assert.NotEmpty(t, n.Commit)
	assert.Equal(t, workflows.HostsSummary{Total: 2, Installed: 2}, n.Hosts)
	assert.False(t, n.Time.IsZero())
	assert.NotNil(t, hooks.find(txid, workflows.StatusAwaitingApproval), "entering AWAITING_APPROVAL was not notified")

	// An approval of a release that is not waiting for one is refused.
	_, stderr, code = relmanAs(t, "bob", "approve", txid)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr, "no running transaction")
}

func TestApprovalReject(t *testing.T) {
	hooks := listenHooks(t)
	out, stderr, code := relman(t, "release", "canary", "--env", "gated")
	require.Equal(t, 0, code, stderr)
	txid := strings.TrimSpace(out)
	waitStatus(t, txid, workflows.StatusAwaitingApproval)
	// Rejecting one's own release is allowed.
	_, stderr, code = relman(t, "reject", txid, "--reason", "wrong branch")
	require.Equal(t, 0, code, stderr)
	d, err := final(t, txid)
	require.Error(t, err)
	assert.Equal(t, workflows.StatusRejected, d.Status)
	assert.Equal(t, "rejected by e2e-tester: wrong branch", d.Reason)
	assert.Empty(t, d.Installs)
	require.Eventually(t, func() bool { return hooks.find(txid, workflows.StatusRejected) != nil }, time.Minute, 100*time.Millisecond)
	assert.Equal(t, "rejected by e2e-tester: wrong branch", hooks.find(txid, workflows.StatusRejected).Reason)
}
