package workflows_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

const testTX = "tx-0001"

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// Artifacts the build stand-in produces, one per named target.
var (
	webArtifact = workflows.ArtifactRef{Key: "sha256/aaaa", SHA256: "aaaa", Size: 10, Format: "tar.gz"}
	apiArtifact = workflows.ArtifactRef{Key: "sha256/bbbb", SHA256: "bbbb", Size: 20, Format: "file", Name: "api.jar"}
)

// farmPlan has two targets on host-a and host-b, and a third host only for web.
func farmPlan() workflows.Plan {
	return workflows.Plan{
		Targets: []string{"web", "api"},
		Hosts: map[string][]string{
			"web": {"host-a", "host-b", "host-c"},
			"api": {"host-a", "host-b"},
		},
	}
}

func installRequest() workflows.ReleaseInput {
	return workflows.ReleaseInput{Request: workflows.Request{
		Project:   "template",
		Action:    workflows.ActionInstall,
		Env:       "test",
		Source:    workflows.Selector{Branch: "main"},
		Requester: "alice",
	}}
}

type buildCall struct {
	In   workflows.BuildInput
	Info activity.Info
}

type installCall struct {
	Host string // derived from the task queue the activity ran on
	In   workflows.InstallInput
	Info activity.Info
}

// stand holds the stand-in activities and records what they were called with.
type stand struct {
	mu       sync.Mutex
	plan     workflows.Plan
	planErr  error
	build    func(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error)
	install  func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error)
	plans    []workflows.PlanInput
	builds   []buildCall
	installs []installCall
	records  []workflows.RecordInput // record_test.go
	// recorders are the recorder ids started; recorderErr fails starting one.
	recorders   []string
	recorderErr error
}

func newStand(plan workflows.Plan) *stand {
	return &stand{plan: plan}
}

func (s *stand) Plan(_ context.Context, in workflows.PlanInput) (workflows.Plan, error) {
	s.mu.Lock()
	s.plans = append(s.plans, in)
	s.mu.Unlock()
	return s.plan, s.planErr
}

func (s *stand) Build(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
	s.mu.Lock()
	s.builds = append(s.builds, buildCall{In: in, Info: activity.GetInfo(ctx)})
	fn := s.build
	s.mu.Unlock()
	if fn != nil {
		return fn(ctx, in)
	}
	return goodBuild(in), nil
}

func goodBuild(in workflows.BuildInput) workflows.BuildResult {
	all := map[string]workflows.ArtifactRef{"web": webArtifact, "api": apiArtifact}
	arts := map[string]workflows.ArtifactRef{}
	for _, t := range in.Targets {
		arts[t] = all[t]
	}
	return workflows.BuildResult{
		Builder:   "builder-1",
		Commit:    "0123456789abcdef0123456789abcdef01234567",
		Artifacts: arts,
		Steps:     []workflows.StepResult{{Name: "make", ExitCode: 0, Duration: time.Second}},
	}
}

func (s *stand) Install(ctx context.Context, in workflows.InstallInput) (workflows.InstallResult, error) {
	info := activity.GetInfo(ctx)
	// The host is what follows relman-host- in a queue named for any
	// manager (HostQueue).
	_, host, _ := strings.Cut(info.TaskQueue, "relman-host-")
	s.mu.Lock()
	s.installs = append(s.installs, installCall{Host: host, In: in, Info: info})
	fn := s.install
	s.mu.Unlock()
	if fn != nil {
		return fn(ctx, host, in)
	}
	return okInstall(host, in, info.Attempt), nil
}

func okInstall(host string, in workflows.InstallInput, attempt int32) workflows.InstallResult {
	return workflows.InstallResult{Host: host, Path: "/srv/" + in.Target, Behavior: "copy", Attempt: attempt}
}

func (s *stand) buildCalls() []buildCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]buildCall(nil), s.builds...)
}

func (s *stand) installCalls() []installCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]installCall(nil), s.installs...)
}

func newReleaseEnv(t *testing.T, s *stand) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testTX, TaskQueue: workflows.DefaultManagerQueue})
	env.SetTestTimeout(30 * time.Second)
	env.RegisterWorkflowWithOptions(workflows.Release, workflow.RegisterOptions{Name: workflows.ReleaseWorkflowName})
	env.RegisterActivityWithOptions(s.Plan, activity.RegisterOptions{Name: workflows.PlanActivity})
	env.RegisterActivityWithOptions(s.Build, activity.RegisterOptions{Name: workflows.BuildActivity})
	env.RegisterActivityWithOptions(s.Install, activity.RegisterOptions{Name: workflows.InstallActivity})
	env.RegisterWorkflowWithOptions(workflows.RecordTransaction, workflow.RegisterOptions{Name: workflows.RecordTransactionWorkflowName})
	env.RegisterActivityWithOptions(s.Record, activity.RegisterOptions{Name: workflows.RecordActivity})
	env.RegisterActivityWithOptions(s.StartRecorder, activity.RegisterOptions{Name: workflows.StartRecorderActivity})
	return env
}

func queryStatus(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.Status {
	t.Helper()
	v, err := env.QueryWorkflow(workflows.StatusQuery)
	require.NoError(t, err)
	var s workflows.Status
	require.NoError(t, v.Get(&s))
	return s
}

func queryDetail(t *testing.T, env *testsuite.TestWorkflowEnvironment) workflows.Detail {
	t.Helper()
	v, err := env.QueryWorkflow(workflows.DetailQuery)
	require.NoError(t, err)
	var d workflows.Detail
	require.NoError(t, v.Get(&d))
	return d
}

// statusEvents lists the status words of the detail's events, in order.
func statusEvents(d workflows.Detail) []workflows.Status {
	var out []workflows.Status
	for _, e := range d.Events {
		if e.Status != "" {
			out = append(out, e.Status)
		}
	}
	return out
}

// failure returns the application error the workflow failed with and the
// detail it carries.
func failure(t *testing.T, env *testsuite.TestWorkflowEnvironment) (*temporal.ApplicationError, workflows.Detail) {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "workflow error %v is not an application error", err)
	var d workflows.Detail
	require.True(t, app.HasDetails(), "failure carries no detail")
	require.NoError(t, app.Details(&d))
	return app, d
}

func findInstall(t *testing.T, d workflows.Detail, host, target string) workflows.InstallRecord {
	t.Helper()
	for _, r := range d.Installs {
		if r.Host == host && r.Target == target {
			return r
		}
	}
	t.Fatalf("no install record for %s/%s in %+v", host, target, d.Installs)
	return workflows.InstallRecord{}
}

func TestReleaseInstallSuccess(t *testing.T) {
	s := newStand(farmPlan())
	env := newReleaseEnv(t, s)

	// Every status change is also a search attribute upsert: record the
	// RelmanStatus values in order.
	var saMu sync.Mutex
	var saStatuses []string
	saProjects := map[string]bool{}
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		saMu.Lock()
		defer saMu.Unlock()
		if v, ok := sa.GetKeyword(temporal.NewSearchAttributeKeyKeyword(workflows.SAStatus)); ok {
			saStatuses = append(saStatuses, v)
		}
		if v, ok := sa.GetKeyword(temporal.NewSearchAttributeKeyKeyword(workflows.SAProject)); ok {
			saProjects["project="+v] = true
		}
		if v, ok := sa.GetKeyword(temporal.NewSearchAttributeKeyKeyword(workflows.SAEnv)); ok {
			saProjects["env="+v] = true
		}
		if v, ok := sa.GetKeyword(temporal.NewSearchAttributeKeyKeyword(workflows.SARequester)); ok {
			saProjects["requester="+v] = true
		}
	}).Return(nil)

	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	var res workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&res))

	// Status sequence, from the detail's event log and the upserts.
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusBuildCompleted, workflows.StatusInstallCompleted}, statusEvents(res))
	saMu.Lock()
	assert.Equal(t, []string{"STARTED", "BUILD_COMPLETED", "INSTALL_COMPLETED"}, saStatuses)
	assert.Equal(t, map[string]bool{"project=template": true, "env=test": true, "requester=alice": true}, saProjects)
	saMu.Unlock()
	assert.Equal(t, workflows.StatusInstallCompleted, queryStatus(t, env))

	// Result detail.
	assert.Equal(t, testTX, res.Transaction)
	assert.Equal(t, installRequest().Request, res.Request)
	assert.Equal(t, workflows.StatusInstallCompleted, res.Status)
	assert.Empty(t, res.Reason)
	assert.Equal(t, "builder-1", res.Builder)
	assert.Equal(t, "0123456789abcdef0123456789abcdef01234567", res.Commit)
	assert.Equal(t, map[string]workflows.ArtifactRef{"web": webArtifact, "api": apiArtifact}, res.Artifacts)
	assert.Len(t, res.Steps, 1)
	assert.False(t, res.Started.IsZero())
	assert.False(t, res.Ended.IsZero())
	assert.False(t, res.Ended.Before(res.Started))

	// The query returns the same picture as the result.
	q := queryDetail(t, env)
	assert.Equal(t, res.Status, q.Status)
	assert.Equal(t, res.Installs, q.Installs)
	assert.Equal(t, res.Commit, q.Commit)

	// Plan and build were each called once with the request.
	require.Len(t, s.plans, 1)
	assert.Equal(t, installRequest().Request, s.plans[0].Request)
	builds := s.buildCalls()
	require.Len(t, builds, 1)
	assert.Equal(t, workflows.BuildInput{Transaction: testTX, Project: "template", Source: workflows.Selector{Branch: "main"}, Targets: []string{"web", "api"}}, builds[0].In)
	assert.Equal(t, workflows.BuildQueue(workflows.DefaultManagerQueue, "template"), builds[0].Info.TaskQueue)

	// Fan-out: exactly one install per (host, target), each on the host's
	// queue with its target's artifact.
	type key struct{ queue, target, artifact string }
	var got []key
	for _, c := range s.installCalls() {
		got = append(got, key{c.Info.TaskQueue, c.In.Target, c.In.Artifact.Key})
		assert.Equal(t, testTX, c.In.Transaction)
		assert.Equal(t, "template", c.In.Project)
		assert.Equal(t, "test", c.In.Env)
		assert.Equal(t, int32(1), c.Info.Attempt)
	}
	want := []key{
		{workflows.HostQueue(workflows.DefaultManagerQueue, "host-a"), "api", apiArtifact.Key},
		{workflows.HostQueue(workflows.DefaultManagerQueue, "host-a"), "web", webArtifact.Key},
		{workflows.HostQueue(workflows.DefaultManagerQueue, "host-b"), "api", apiArtifact.Key},
		{workflows.HostQueue(workflows.DefaultManagerQueue, "host-b"), "web", webArtifact.Key},
		{workflows.HostQueue(workflows.DefaultManagerQueue, "host-c"), "web", webArtifact.Key},
	}
	sort.Slice(got, func(i, j int) bool {
		if got[i].queue != got[j].queue {
			return got[i].queue < got[j].queue
		}
		return got[i].target < got[j].target
	})
	assert.Equal(t, want, got)
	for _, c := range s.installCalls() {
		switch c.In.Target {
		case "web":
			assert.Equal(t, webArtifact, c.In.Artifact)
		case "api":
			assert.Equal(t, apiArtifact, c.In.Artifact)
		}
	}

	// Install records: one per (host, target), installed, with attempts and times.
	require.Len(t, res.Installs, 5)
	for _, r := range res.Installs {
		assert.Equal(t, workflows.InstallInstalled, r.State, "%s/%s", r.Host, r.Target)
		assert.Equal(t, int32(1), r.Attempts, "%s/%s", r.Host, r.Target)
		assert.Equal(t, "/srv/"+r.Target, r.Path)
		assert.Empty(t, r.Error)
		assert.False(t, r.Started.IsZero(), "%s/%s started", r.Host, r.Target)
		assert.False(t, r.Ended.IsZero(), "%s/%s ended", r.Host, r.Target)
		assert.False(t, r.Ended.Before(r.Started))
	}
	findInstall(t, res, "host-c", "web")
	env.AssertExpectations(t)
}

// TestReleaseStatusWhileRunning observes the status query while the build and
// the installs are still running.
func TestReleaseStatusWhileRunning(t *testing.T) {
	s := newStand(farmPlan())
	buildGate := make(chan struct{})
	installGate := make(chan struct{})
	s.build = func(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
		select {
		case <-buildGate:
			return goodBuild(in), nil
		case <-ctx.Done():
			return workflows.BuildResult{}, ctx.Err()
		}
	}
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		select {
		case <-installGate:
			return okInstall(host, in, activity.GetInfo(ctx).Attempt), nil
		case <-ctx.Done():
			return workflows.InstallResult{}, ctx.Err()
		}
	}
	env := newReleaseEnv(t, s)
	var seen []workflows.Status
	var seenBuilds, seenInstalls []int
	observe := func(release chan struct{}) func() {
		return func() {
			v, err := env.QueryWorkflow(workflows.StatusQuery)
			if err == nil {
				var st workflows.Status
				if v.Get(&st) == nil {
					seen = append(seen, st)
				}
			}
			seenBuilds = append(seenBuilds, len(s.buildCalls()))
			seenInstalls = append(seenInstalls, len(s.installCalls()))
			close(release)
		}
	}
	// While activities run, the test env fires timers in wall time.
	env.RegisterDelayedCallback(observe(buildGate), 100*time.Millisecond)
	env.RegisterDelayedCallback(observe(installGate), 2*time.Second)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	// While the build ran: STARTED, the build started, no install yet.
	// While the installs ran: BUILD_COMPLETED, all five installs started.
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusBuildCompleted}, seen)
	assert.Equal(t, []int{1, 1}, seenBuilds)
	assert.Equal(t, []int{0, 5}, seenInstalls)
	assert.Equal(t, workflows.StatusInstallCompleted, queryStatus(t, env))
	d := queryDetail(t, env)
	for _, r := range d.Installs {
		assert.Equal(t, workflows.InstallInstalled, r.State)
	}
}

func TestReleaseActionBuild(t *testing.T) {
	s := newStand(workflows.Plan{Targets: []string{"web", "api"}})
	env := newReleaseEnv(t, s)
	in := installRequest()
	in.Request.Action = workflows.ActionBuild
	in.Request.Env = ""
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, in)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, workflows.StatusBuildCompleted, res.Status)
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusBuildCompleted}, statusEvents(res))
	assert.Equal(t, workflows.StatusBuildCompleted, queryStatus(t, env))
	assert.Equal(t, map[string]workflows.ArtifactRef{"web": webArtifact, "api": apiArtifact}, res.Artifacts)
	assert.NotEmpty(t, res.Commit)
	assert.Empty(t, res.Installs)
	assert.False(t, res.Ended.IsZero())
	assert.Len(t, s.buildCalls(), 1)
	assert.Empty(t, s.installCalls(), "a build must not install")
}

// A plan made without part of the registry goes on with the hosts it has,
// and the transaction's log says which part did not answer.
func TestReleaseSaysWhichRegistryShardDidNotAnswer(t *testing.T) {
	s := newStand(workflows.Plan{Targets: []string{"web"}, Hosts: map[string][]string{"web": {"host-a"}},
		Unanswered: []string{"relman-registry-shard-3"}})
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, workflows.StatusInstallCompleted, res.Status)
	var said bool
	for _, e := range res.Events {
		said = said || strings.Contains(e.Detail, "registry relman-registry-shard-3 did not answer: the hosts and builders registered there are those of its last answer still leased, or none")
	}
	assert.True(t, said, "events: %+v", res.Events)
}

func TestReleaseRejected(t *testing.T) {
	s := newStand(workflows.Plan{})
	s.planErr = temporal.NewNonRetryableApplicationError("no installer advertises target api in env test", workflows.ErrRejected, nil)
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "REJECTED", app.Type())
	assert.Equal(t, string(workflows.StatusRejected), app.Type())
	assert.True(t, app.NonRetryable())
	assert.Equal(t, workflows.StatusRejected, d.Status)
	assert.Contains(t, d.Reason, "no installer advertises target api in env test")
	// STARTED is recorded once the plan knows who asked; a rejected plan
	// leaves only REJECTED, and the claimed name is not taken as who asked.
	assert.Equal(t, []workflows.Status{workflows.StatusRejected}, statusEvents(d))
	assert.Empty(t, d.Request.Requester, "a plan that did not say who asked leaves the requester unknown")
	assert.False(t, d.Ended.IsZero())
	assert.Equal(t, workflows.StatusRejected, queryStatus(t, env))
	q := queryDetail(t, env)
	assert.Equal(t, workflows.StatusRejected, q.Status)
	assert.Contains(t, q.Reason, "no installer advertises target api in env test")
	assert.Empty(t, s.buildCalls(), "a rejected request must not build")
	assert.Empty(t, s.installCalls())
}

// A Rejected error is not retried even when the activity forgot to mark it
// non-retryable: the plan's retry policy lists the type.
func TestReleaseRejectedTypeNotRetried(t *testing.T) {
	s := newStand(workflows.Plan{})
	s.planErr = temporal.NewApplicationError("project nope is unknown", workflows.ErrRejected)
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "REJECTED", app.Type())
	assert.Equal(t, workflows.StatusRejected, d.Status)
	assert.Len(t, s.plans, 1, "plan retried a Rejected error")
	assert.Empty(t, s.buildCalls())
}

func TestReleaseBuildFailed(t *testing.T) {
	s := newStand(farmPlan())
	tail := "step make exited 2:\ncc: error: undefined reference to `frobnicate'"
	s.build = func(context.Context, workflows.BuildInput) (workflows.BuildResult, error) {
		return workflows.BuildResult{}, temporal.NewNonRetryableApplicationError(tail, workflows.ErrBuildFailed, nil)
	}
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "BUILD_FAILED", app.Type())
	assert.Equal(t, workflows.StatusBuildFailed, d.Status)
	assert.Contains(t, d.Reason, "undefined reference to `frobnicate'")
	assert.Contains(t, app.Message(), "undefined reference to `frobnicate'")
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusBuildFailed}, statusEvents(d))
	assert.Equal(t, workflows.StatusBuildFailed, queryStatus(t, env))
	assert.Len(t, s.buildCalls(), 1, "a BuildFailed error must not be retried")
	assert.Empty(t, s.installCalls())
}

func TestReleaseBuildMissingArtifact(t *testing.T) {
	s := newStand(farmPlan())
	s.build = func(_ context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
		res := goodBuild(in)
		delete(res.Artifacts, "api")
		return res, nil
	}
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "BUILD_FAILED", app.Type())
	assert.Equal(t, workflows.StatusBuildFailed, d.Status)
	assert.Contains(t, d.Reason, `"api"`)
	assert.NotContains(t, d.Reason, `"web"`)
	assert.Equal(t, workflows.StatusBuildFailed, queryStatus(t, env))
	assert.Empty(t, s.installCalls(), "nothing may be installed from an incomplete build")
}

func TestReleaseInstallFailedOnOneHost(t *testing.T) {
	s := newStand(farmPlan())
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		attempt := activity.GetInfo(ctx).Attempt
		if host == "host-b" && in.Target == "web" {
			return workflows.InstallResult{}, temporal.NewNonRetryableApplicationError(
				"sha256 of sha256/aaaa is cccc, want aaaa", workflows.ErrChecksum, nil,
				workflows.InstallFailure{Host: host, Attempt: attempt})
		}
		return okInstall(host, in, attempt), nil
	}
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "INSTALL_FAILED", app.Type())
	assert.Equal(t, workflows.StatusInstallFailed, d.Status)
	assert.Contains(t, d.Reason, "host-b/web")
	assert.Contains(t, d.Reason, "sha256 of sha256/aaaa is cccc, want aaaa")
	assert.NotContains(t, d.Reason, "host-a")
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusBuildCompleted, workflows.StatusInstallFailed}, statusEvents(d))
	assert.Equal(t, workflows.StatusInstallFailed, queryStatus(t, env))

	require.Len(t, d.Installs, 5)
	bad := findInstall(t, d, "host-b", "web")
	assert.Equal(t, workflows.InstallFailedS, bad.State)
	assert.Contains(t, bad.Error, "sha256 of sha256/aaaa is cccc, want aaaa")
	assert.Equal(t, int32(1), bad.Attempts)
	assert.False(t, bad.Ended.IsZero())
	for _, r := range d.Installs {
		if r.Host == "host-b" && r.Target == "web" {
			continue
		}
		assert.Equal(t, workflows.InstallInstalled, r.State, "%s/%s", r.Host, r.Target)
		assert.Empty(t, r.Error)
	}
	// The checksum error is not retried; every install ran once.
	assert.Len(t, s.installCalls(), 5)
	assert.Equal(t, d.Installs, queryDetail(t, env).Installs)
}

func TestReleaseInstallRetriedThenSucceeds(t *testing.T) {
	s := newStand(farmPlan())
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		attempt := activity.GetInfo(ctx).Attempt
		if host == "host-a" && in.Target == "api" && attempt == 1 {
			return workflows.InstallResult{}, errors.New("connection reset by peer")
		}
		return okInstall(host, in, attempt), nil
	}
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var d workflows.Detail
	require.NoError(t, env.GetWorkflowResult(&d))
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	r := findInstall(t, d, "host-a", "api")
	assert.Equal(t, workflows.InstallInstalled, r.State)
	assert.Equal(t, int32(2), r.Attempts)
	assert.Empty(t, r.Error)
	assert.Equal(t, int32(1), findInstall(t, d, "host-b", "api").Attempts)
	calls := 0
	for _, c := range s.installCalls() {
		if c.Host == "host-a" && c.In.Target == "api" {
			calls++
		}
	}
	assert.Equal(t, 2, calls)
	assert.Len(t, s.installCalls(), 6)
}

// The test env cannot leave a task unpolled, so a host that never picks up
// its install is simulated by a stand-in returning the schedule-to-start
// timeout the server would report.
func TestReleaseInstallHostUnreachable(t *testing.T) {
	p := farmPlan()
	p.HostTimeout = 2 * time.Minute
	s := newStand(p)
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		if host == "host-c" {
			return workflows.InstallResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		return okInstall(host, in, activity.GetInfo(ctx).Attempt), nil
	}
	env := newReleaseEnv(t, s)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	app, d := failure(t, env)
	assert.Equal(t, "INSTALL_FAILED", app.Type())
	r := findInstall(t, d, "host-c", "web")
	assert.Equal(t, workflows.InstallFailedS, r.State)
	// The plan's host timeout is the one reported.
	assert.Equal(t, "host host-c unreachable: it did not pick up the install within 2m0s", r.Error)
	assert.Contains(t, d.Reason, "host-c/web: host host-c unreachable")
	assert.Equal(t, workflows.InstallInstalled, findInstall(t, d, "host-a", "web").State)
}

func TestReleaseCancelledDuringBuild(t *testing.T) {
	s := newStand(farmPlan())
	s.build = func(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
		// A long build: heartbeats until it is cancelled. (The test env
		// resolves the cancelled activity at once; the real SDK delivers the
		// cancellation to ctx with the next heartbeat response.)
		for {
			activity.RecordHeartbeat(ctx, "building")
			select {
			case <-ctx.Done():
				return workflows.BuildResult{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	env := newReleaseEnv(t, s)
	var cancelledActivities []string
	env.SetOnActivityCanceledListener(func(info *activity.Info) {
		cancelledActivities = append(cancelledActivities, info.ActivityType.Name)
	})
	var statusAtCancel workflows.Status
	env.RegisterDelayedCallback(func() {
		statusAtCancel = queryStatus(t, env)
		env.CancelWorkflow()
	}, 200*time.Millisecond)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var ce *temporal.CanceledError
	assert.True(t, errors.As(err, &ce), "workflow error %v is not a CanceledError", err)
	assert.Equal(t, workflows.StatusStarted, statusAtCancel, "the build was not running when cancelled")
	assert.Equal(t, []string{workflows.BuildActivity}, cancelledActivities, "the build activity was not cancelled")
	assert.Equal(t, workflows.StatusCancelled, queryStatus(t, env))
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusCancelled, d.Status)
	assert.Equal(t, workflows.OutsideCancelReason, d.Reason)
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusCancelled}, statusEvents(d))
	assert.False(t, d.Ended.IsZero())
	assert.Len(t, s.buildCalls(), 1)
	assert.Empty(t, s.installCalls())
}

func TestReleaseCancelledDuringInstall(t *testing.T) {
	s := newStand(farmPlan())
	s.install = func(ctx context.Context, host string, in workflows.InstallInput) (workflows.InstallResult, error) {
		if host != "host-c" {
			return okInstall(host, in, activity.GetInfo(ctx).Attempt), nil
		}
		for {
			activity.RecordHeartbeat(ctx, "installing")
			select {
			case <-ctx.Done():
				return workflows.InstallResult{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	env := newReleaseEnv(t, s)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, 300*time.Millisecond)
	env.ExecuteWorkflow(workflows.ReleaseWorkflowName, installRequest())
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	var ce *temporal.CanceledError
	require.True(t, errors.As(err, &ce), "workflow error %v is not a CanceledError", err)
	d := queryDetail(t, env)
	assert.Equal(t, workflows.StatusCancelled, d.Status)
	assert.Equal(t, []workflows.Status{workflows.StatusStarted, workflows.StatusBuildCompleted, workflows.StatusCancelled}, statusEvents(d))
	assert.Equal(t, workflows.InstallCancelled, findInstall(t, d, "host-c", "web").State)
	assert.Equal(t, workflows.InstallInstalled, findInstall(t, d, "host-a", "web").State)
	assert.Equal(t, workflows.InstallInstalled, findInstall(t, d, "host-b", "api").State)
}

func TestReleaseTimeouts(t *testing.T) {
	type timeouts struct{ build, install, heartbeat time.Duration }
	cases := []struct {
		name     string
		in, plan timeouts // the input has no heartbeat timeout
		want     timeouts
	}{
		{"plan's used when the input has none",
			timeouts{}, timeouts{7 * time.Minute, 3 * time.Minute, 45 * time.Second},
			timeouts{7 * time.Minute, 3 * time.Minute, 45 * time.Second}},
		{"input's win over plan's",
			timeouts{9 * time.Minute, 4 * time.Minute, 0}, timeouts{7 * time.Minute, 3 * time.Minute, 0},
			timeouts{9 * time.Minute, 4 * time.Minute, config.DefaultHeartbeatTimeout}},
		{"defaults when neither has one",
			timeouts{}, timeouts{},
			timeouts{config.DefaultBuildTimeout, config.DefaultInstallTimeout, config.DefaultHeartbeatTimeout}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := farmPlan()
			p.BuildTimeout, p.InstallTimeout, p.HeartbeatTimeout = tc.plan.build, tc.plan.install, tc.plan.heartbeat
			s := newStand(p)
			env := newReleaseEnv(t, s)
			in := installRequest()
			in.BuildTimeout, in.InstallTimeout = tc.in.build, tc.in.install
			env.ExecuteWorkflow(workflows.ReleaseWorkflowName, in)
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			builds := s.buildCalls()
			require.Len(t, builds, 1)
			assert.Equal(t, tc.want.build, builds[0].Info.StartToCloseTimeout, "build start-to-close")
			assert.Equal(t, tc.want.heartbeat, builds[0].Info.HeartbeatTimeout, "build heartbeat")
			installs := s.installCalls()
			require.Len(t, installs, 5)
			for _, c := range installs {
				assert.Equal(t, tc.want.install, c.Info.StartToCloseTimeout, "install start-to-close on %s", c.Host)
				assert.Equal(t, tc.want.heartbeat, c.Info.HeartbeatTimeout, "install heartbeat on %s", c.Host)
			}
		})
	}
}
