package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/rollout"
	"github.com/relman/relman/workflows"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden compares got with testdata/golden/name, or rewrites it with
// -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, got, 0o644))
	}
	want, err := os.ReadFile(p)
	require.NoError(t, err, "no golden file; run go test ./surface/cli -run %s -update", t.Name())
	assert.Equal(t, string(want), string(got), "differs from %s; if the change is meant, run go test ./surface/cli -update", p)
}

// The golden files are in UTC whatever the machine's zone.
func inUTC(t *testing.T) {
	old := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = old })
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestGoldenPlan(t *testing.T) {
	for name, res := range map[string]*workflows.PlanOnlyResult{
		"plan-rolling.txt": {
			Request: workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "prod"},
			Plan: workflows.Plan{
				Targets:  []string{"web", "api"},
				Hosts:    map[string][]string{"web": {"web-1", "web-2", "web-3"}, "api": {"web-1", "web-2"}},
				Rollout:  rollout.Policy{Strategy: rollout.StrategyRolling, Batch: "2", Pause: 30 * time.Second, MaxFailures: "1", Unreachable: rollout.UnreachableSkip, AutoRollback: true},
				Lock:     rollout.LockWait,
				Approval: workflows.Approval{Required: true, FourEyes: true, Timeout: 4 * time.Hour},
				Webhooks: []string{"https://chat.example.com/hooks/relman"},
			},
			Batches: [][]string{{"web-1", "web-2"}, {"web-3"}},
		},
		"plan-build.txt": {
			Request: workflows.Request{Project: "shop", Action: workflows.ActionBuild},
			Plan:    workflows.Plan{Targets: []string{"web", "api"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			printPlan(&b, res, []string{"builder-1", "builder-2"}, "relman-manager")
			golden(t, name, b.Bytes())
		})
	}
}

func TestGoldenStatus(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeStatus(&b, &workflows.Detail{Transaction: "tx-1", Status: workflows.StatusInstallFailed}))
	golden(t, "status.txt", b.Bytes())
	b.Reset()
	printSummary(&b, &workflows.Detail{
		Transaction: "0190c5a4-7d1e-7b3c-9a52-3f1f0e6f2a10", Status: workflows.StatusInstallFailed,
		Reason: "install failed on 1 of 2 host installs: host-b/web: host host-b unreachable",
		Commit: "4f2a9c1d0b7e", Builder: "builder-1",
		Artifacts: map[string]workflows.ArtifactRef{"web": {SHA256: "ab12", Size: 2048}},
		Installs: []workflows.InstallRecord{
			{Host: "host-a", Target: "web", State: workflows.InstallInstalled, Path: "/srv/www", Attempts: 1, Started: t0, Ended: t0.Add(1500 * time.Millisecond)},
			{Host: "host-b", Target: "web", State: workflows.InstallFailedS, Error: "host host-b unreachable", Attempts: 0, Started: t0, Ended: t0.Add(5 * time.Minute)},
		},
	})
	golden(t, "status-summary.txt", b.Bytes())
}

func TestGoldenHistory(t *testing.T) {
	inUTC(t)
	var b bytes.Buffer
	require.NoError(t, writeHistory(&b, []transaction.Step{
		{Time: t0, Event: "STARTED", Detail: "install of shop from trunk requested by alice"},
		{Time: t0.Add(120 * time.Millisecond), Event: "activity", Activity: "Build", Queue: "relman-build-shop", Worker: "builder-1@b:1", Attempt: 1, Took: 2345 * time.Millisecond},
		{Time: t0.Add(2500 * time.Millisecond), Event: "BUILD_COMPLETED", Detail: "built shop at 4f2a9c1d0b7e on builder-1"},
		{Time: t0.Add(2600 * time.Millisecond), Event: "activity failed", Activity: "Install", Queue: "relman-host-host-b", Worker: "host-b@h:2", Attempt: 3, Took: time.Second, Detail: "exit status 4"},
	}))
	golden(t, "history.txt", b.Bytes())
}

func TestGoldenWhere(t *testing.T) {
	inUTC(t)
	var b bytes.Buffer
	require.NoError(t, writeWhere(&b, &workflows.WhereResult{
		Project: "site", Env: "test",
		Hosts: map[string]map[string]workflows.LiveInstall{
			"host-a": {"app": {Target: "app", Transaction: "tx-3", InstalledAt: t0}, "db": {Target: "db"}},
			"host-c": {"app": {Target: "app", Error: "state unreadable"}},
		},
		Errors: map[string]string{"host-b": "host host-b unreachable: it did not pick up the request in time"},
	}))
	golden(t, "where.txt", b.Bytes())
}
