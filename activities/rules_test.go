package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/config"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

func safetyManager() *activities.Manager {
	cfg := testManagerConfig()
	cfg.Environments["test"] = config.Environment{
		Rollout:  rollout.Policy{Strategy: "rolling", Batch: "2", Pause: 30 * time.Second, MaxFailures: "0"},
		Approval: "required", FourEyes: true, ApprovalTimeout: time.Hour,
		Webhooks: []string{"http://hooks.invalid/a"},
	}
	cfg.Default()
	return &activities.Manager{Config: cfg, Registry: &fakeRegistry{leases: liveLeases(), filter: true}, Now: func() time.Time { return planNow }}
}

func TestPlanRules(t *testing.T) {
	m := safetyManager()
	p, err := m.Plan(context.Background(), workflows.PlanInput{Request: install("web", "test")})
	require.NoError(t, err)
	assert.Equal(t, rollout.Policy{Strategy: "rolling", Batch: "2", Pause: 30 * time.Second, MaxFailures: "0", Unreachable: "fail"}, p.Rollout)
	assert.Equal(t, rollout.LockWait, p.Lock, "lock defaults to wait")
	assert.Equal(t, workflows.Approval{Required: true, FourEyes: true, Timeout: time.Hour}, p.Approval)
	assert.Equal(t, []workflows.WebhookRef{{Env: "test", Index: 0, Name: "http://hooks.invalid/…"}}, p.Hooks, "the plan names the webhook, never its URL")
	assert.Empty(t, p.Webhooks)
	assert.Equal(t, [][]string{{"web-1", "web-2"}, {"web-3"}}, p.Rollout.Batches([]string{"web-1", "web-2", "web-3"}))

	// The request's rollout wins where it says something.
	req := install("web", "test")
	req.Rollout = &rollout.Policy{Strategy: "all-at-once", MaxFailures: "10%"}
	p, err = m.Plan(context.Background(), workflows.PlanInput{Request: req})
	require.NoError(t, err)
	assert.Equal(t, "all-at-once", p.Rollout.Strategy)
	assert.Equal(t, "10%", p.Rollout.MaxFailures)
	assert.Equal(t, 30*time.Second, p.Rollout.Pause)

	// An environment with only protected set: today's rollout, the lock
	// with its default timeout, and approval with four eyes.
	p, err = m.Plan(context.Background(), workflows.PlanInput{Request: install("web", "prod")})
	require.NoError(t, err)
	assert.True(t, p.Rollout.Legacy())
	assert.Equal(t, time.Hour, p.LockTimeout)
	assert.Equal(t, workflows.Approval{Required: true, FourEyes: true, Timeout: 24 * time.Hour}, p.Approval)
	assert.Empty(t, p.Webhooks)
}

func TestPlanRulesRejections(t *testing.T) {
	m := safetyManager()
	req := install("web", "test")
	req.Rollout = &rollout.Policy{Strategy: "sideways"}
	_, err := m.Plan(context.Background(), workflows.PlanInput{Request: req})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.Equal(t, workflows.ErrRejected, app.Type())
	assert.Contains(t, app.Message(), "sideways")
	// A rejection carries the environment's webhooks.
	var rej workflows.PlanRejection
	require.NoError(t, app.Details(&rej))
	assert.Equal(t, []workflows.WebhookRef{{Env: "test", Index: 0, Name: "http://hooks.invalid/…"}}, rej.Hooks)

	_, err = m.Plan(context.Background(), workflows.PlanInput{Request: install("nope", "test")})
	require.ErrorAs(t, err, &app)
	assert.Contains(t, app.Message(), "unknown project")
	require.NoError(t, app.Details(&rej))
}

func TestNotifyPostsJSON(t *testing.T) {
	got := make(chan workflows.Notification, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		var n workflows.Notification
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&n))
		got <- n
	}))
	defer srv.Close()
	c := &activities.Coordinator{}
	n := workflows.Notification{Transaction: "tx-1", Project: "web", Env: "test", Status: workflows.StatusInstallCompleted, Hosts: workflows.HostsSummary{Total: 2, Installed: 2}}
	require.NoError(t, c.Notify(context.Background(), workflows.NotifyInput{URL: srv.URL, Notification: n}))
	assert.Equal(t, n, <-got)

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer down.Close()
	err := c.Notify(context.Background(), workflows.NotifyInput{URL: down.URL, Notification: n})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "502")
	var app *temporal.ApplicationError
	assert.False(t, errors.As(err, &app) && app.NonRetryable(), "a failing webhook is retried")
}

// TestNotifyKeepsWebhookSecrets: a release carries a reference to the
// webhook; Notify finds the URL in the manager's config, and neither its
// error (which reaches the history) nor its log names the URL's secret
// parts.
func TestNotifyKeepsWebhookSecrets(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.RequestURI()
		if strings.Contains(r.URL.Path, "down") {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	secret := "/hooks/T0001/B0002/s3cr3tT0k3n?key=hunter2"
	cfg := &config.Manager{Environments: map[string]config.Environment{"test": {Webhooks: []string{
		srv.URL + secret, srv.URL + "/down/s3cr3tT0k3n", "http://user:hunter2@127.0.0.1:1/s3cr3tT0k3n",
	}}}}
	var logs strings.Builder
	c := &activities.Coordinator{Config: cfg, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	n := workflows.Notification{Transaction: "tx-1", Project: "web", Env: "test", Status: workflows.StatusInstallCompleted}
	require.NoError(t, c.Notify(context.Background(), workflows.NotifyInput{Webhook: &workflows.WebhookRef{Env: "test", Index: 0}, Notification: n}))
	assert.Equal(t, secret, <-got, "the webhook got its whole URL")
	for i, want := range map[int]string{1: "502", 2: "refused"} {
		err := c.Notify(context.Background(), workflows.NotifyInput{Webhook: &workflows.WebhookRef{Env: "test", Index: i}, Notification: n})
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
		assert.NotContains(t, err.Error(), "s3cr3tT0k3n")
		assert.NotContains(t, err.Error(), "hunter2")
	}
	err := c.Notify(context.Background(), workflows.NotifyInput{Webhook: &workflows.WebhookRef{Env: "test", Index: 7}, Notification: n})
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.True(t, app.NonRetryable())
	assert.Contains(t, app.Message(), "webhook 7 of environment test is no longer in the manager's config")
	assert.Contains(t, logs.String(), "webhook notified")
	assert.NotContains(t, logs.String(), "s3cr3tT0k3n")
	assert.NotContains(t, logs.String(), "hunter2")
}

// Past what one release holds, the plan is rejected naming the limit, and
// where, rollback and the like (Hosts) are too.
func TestPlanFleetLimits(t *testing.T) {
	fleet := func(n int) []workflows.Lease {
		ls := []workflows.Lease{builderLease("builder-1", planNow.Add(time.Minute), "web")}
		for i := range n {
			ls = append(ls, installerLease(fmt.Sprintf("h%05d", i), map[string][]string{"test": {"site", "api"}}))
		}
		return ls
	}
	tests := map[string]struct {
		hosts   int
		rollout *rollout.Policy
		want    string
	}{
		"1,000 hosts rolling 1%":  {hosts: 1000, rollout: &rollout.Policy{Strategy: "rolling", Batch: "1%"}},
		"1,000 hosts batch 1":     {hosts: 1000, rollout: &rollout.Policy{Strategy: "rolling", Batch: "1"}, want: "at most 500 batches (MaxRolloutBatches)"},
		"5,001 hosts x 2 targets": {hosts: 5001, want: "10002 (host, named target) installs and one release holds at most 10000 (MaxReleaseInstalls)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := testManagerConfig()
			cfg.Default()
			m := &activities.Manager{Config: cfg, Registry: &fakeRegistry{leases: fleet(tc.hosts), filter: true}, Now: func() time.Time { return planNow }}
			req := install("web", "test")
			req.Rollout = tc.rollout
			_, err := m.Plan(context.Background(), workflows.PlanInput{Request: req})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			assert.Equal(t, workflows.ErrRejected, app.Type())
			assert.True(t, app.NonRetryable())
			assert.Contains(t, app.Message(), tc.want)
			if tc.rollout == nil {
				_, err := m.Hosts(context.Background(), workflows.HostsInput{Project: "web", Env: "test"})
				require.ErrorAs(t, err, &app)
				assert.Contains(t, app.Message(), tc.want)
			}
		})
	}
}
