package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

// relman runs the real CLI in-process against the shared dev server.
func relman(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return relmanAt(t, env.Address, args...)
}

func relmanAt(t *testing.T, address string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code = cli.Execute(ctx, append(args, "--address", address), cli.Options{
		Stdout: &out, Stderr: &errb,
		LookupEnv: func(k string) (string, bool) {
			if k == "RELMAN_REQUESTER" {
				return "e2e-tester", true
			}
			return os.LookupEnv(k)
		},
	})
	return out.String(), errb.String(), code
}

func start(t *testing.T, req workflows.Request) string {
	t.Helper()
	run, err := env.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		TaskQueue: workflows.DefaultManagerQueue,
	}, workflows.ReleaseWorkflowName, workflows.ReleaseInput{Request: req})
	require.NoError(t, err)
	return run.GetID()
}

// final waits for the transaction to end and returns its detail and the
// workflow's error.
func final(t *testing.T, txid string) (*workflows.Detail, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var d workflows.Detail
	err := env.Client.GetWorkflow(ctx, txid, "").Get(ctx, &d)
	if err != nil {
		var app *temporal.ApplicationError
		if errors.As(err, &app) && app.HasDetails() {
			require.NoError(t, app.Details(&d))
		}
	}
	return &d, err
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// statusOrder is the order status words may be seen in for a successful
// install.
var statusOrder = []workflows.Status{workflows.StatusStarted, workflows.StatusBuildCompleted, workflows.StatusInstallCompleted}

func TestInstallOnEveryHost(t *testing.T) {
	head := commit(t, "", map[string]string{"site/index.html": "<h1>shop v2</h1>\n", "VERSION": "2\n"})
	txid := start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test", Requester: "alice"})

	// Poll the status query as a client would, recording each new word.
	var seen []workflows.Status
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		v, err := env.Client.QueryWorkflow(ctx, txid, "", workflows.StatusQuery)
		if err == nil {
			var s workflows.Status
			require.NoError(t, v.Get(&s))
			if s != "" && (len(seen) == 0 || seen[len(seen)-1] != s) {
				seen = append(seen, s)
			}
			if s.Final(workflows.ActionInstall) {
				break
			}
		}
		require.NoError(t, ctx.Err(), "release did not end; seen %v", seen)
		time.Sleep(10 * time.Millisecond)
	}
	d, err := final(t, txid)
	require.NoError(t, err)
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	// Every word seen was in the seed's order, ending INSTALL_COMPLETED.
	last := -1
	for _, s := range seen {
		i := slices.Index(statusOrder, s)
		require.GreaterOrEqual(t, i, 0, "unexpected status %s in %v", s, seen)
		require.Greater(t, i, last, "status went backwards: %v", seen)
		last = i
	}
	assert.Equal(t, workflows.StatusInstallCompleted, seen[len(seen)-1])
	// The transaction's own log holds the full sequence, in order.
	var words []workflows.Status
	for _, e := range d.Events {
		if e.Status != "" {
			words = append(words, e.Status)
		}
	}
	assert.Equal(t, statusOrder, words)

	assert.Equal(t, head, d.Commit)
	require.Contains(t, d.Artifacts, "web")
	require.Contains(t, d.Artifacts, "tool")
	assert.Equal(t, "tar.gz", d.Artifacts["web"].Format)
	assert.Len(t, d.Artifacts["web"].SHA256, 64)
	assert.Positive(t, d.Artifacts["tool"].Size)
	require.Len(t, d.Installs, 4)
	for _, in := range d.Installs {
		assert.Equal(t, workflows.InstallInstalled, in.State, "%s/%s: %s", in.Host, in.Target, in.Error)
		assert.EqualValues(t, 1, in.Attempts)
		assert.False(t, in.Started.IsZero())
		assert.False(t, in.Ended.Before(in.Started))
	}
	// The files are really on both hosts, in their own roots.
	for _, h := range []string{"host-a", "host-b"} {
		root := env.hosts[h]
		assert.Equal(t, "<h1>shop v2</h1>\n", readFile(t, filepath.Join(root, "www", "index.html")))
		assert.Equal(t, head+"\n", readFile(t, filepath.Join(root, "www", "COMMIT")))
		assert.Equal(t, "body{}\n", readFile(t, filepath.Join(root, "www", "css", "site.css")))
		fi, err := os.Stat(filepath.Join(root, "bin", "tool.sh"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
		assert.Contains(t, readFile(t, filepath.Join(root, "bin", "tool.sh")), "echo tool 2")
	}
}

func TestSecondReleaseReplacesFirst(t *testing.T) {
	commit(t, "", map[string]string{"site/old.html": "old\n"})
	d, err := final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test"}))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status)
	for _, h := range []string{"host-a", "host-b"} {
		assert.FileExists(t, filepath.Join(env.hosts[h], "www", "old.html"))
	}

	head := commit(t, "", map[string]string{"site/old.html": "", "site/new.html": "new\n"})
	d, err = final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test"}))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status)
	for _, h := range []string{"host-a", "host-b"} {
		www := filepath.Join(env.hosts[h], "www")
		assert.NoFileExists(t, filepath.Join(www, "old.html"), "the first release's file must be gone on %s", h)
		assert.Equal(t, "new\n", readFile(t, filepath.Join(www, "new.html")))
		assert.Equal(t, head+"\n", readFile(t, filepath.Join(www, "COMMIT")))
		// No staging directories are left beside the install.
		left, _ := filepath.Glob(filepath.Join(env.hosts[h], ".www.relman-*"))
		assert.Empty(t, left)
	}
}

func TestSourceSelectors(t *testing.T) {
	branchHead := commit(t, "feature", map[string]string{"site/index.html": "<h1>feature</h1>\n"})
	if _, err := git(env.repo, "tag", "-f", "v-e2e", branchHead); err != nil {
		t.Fatal(err)
	}
	for name, sel := range map[string]workflows.Selector{
		"branch":   {Branch: "feature"},
		"tag":      {Tag: "v-e2e"},
		"revision": {Revision: branchHead[:10]},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionBuild, Source: sel}))
			require.NoError(t, err)
			assert.Equal(t, workflows.StatusBuildCompleted, d.Status)
			assert.Equal(t, branchHead, d.Commit)
			assert.Empty(t, d.Installs, "a build alone installs nothing")
		})
	}
	t.Run("unknown branch", func(t *testing.T) {
		d, err := final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionBuild, Source: workflows.Selector{Branch: "no-such-branch"}}))
		require.Error(t, err)
		assert.Equal(t, workflows.StatusBuildFailed, d.Status)
		assert.Contains(t, d.Reason, "no-such-branch")
	})
	t.Run("option injection", func(t *testing.T) {
		d, err := final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionBuild, Source: workflows.Selector{Branch: "--upload-pack=touch /tmp/pwned"}}))
		require.Error(t, err)
		assert.Contains(t, []workflows.Status{workflows.StatusRejected, workflows.StatusBuildFailed}, d.Status)
	})
}

func TestFailingBuildStep(t *testing.T) {
	d, err := final(t, start(t, workflows.Request{Project: "broken", Action: workflows.ActionInstall, Env: "test"}))
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.Equal(t, string(workflows.StatusBuildFailed), app.Type())
	assert.Equal(t, workflows.StatusBuildFailed, d.Status)
	// The output's tail is in the detail: the last lines, not the first.
	assert.Contains(t, d.Reason, `step "compile" exited with status 3`)
	assert.Contains(t, d.Reason, "error: missing semicolon")
	assert.Contains(t, d.Reason, "line 39")
	assert.NotContains(t, d.Reason, "FAIL-START")
	assert.Empty(t, d.Installs)
}

func TestRejections(t *testing.T) {
	cases := map[string]struct {
		req  workflows.Request
		want []string
	}{
		"unknown project": {
			req:  workflows.Request{Project: "nosuch", Action: workflows.ActionInstall, Env: "test"},
			want: []string{`unknown project "nosuch"`, `"shop"`},
		},
		"unknown environment": {
			req:  workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "staging"},
			want: []string{`unknown environment "staging"`, `"test"`},
		},
		"target with no installer": {
			req:  workflows.Request{Project: "orphan", Action: workflows.ActionInstall, Env: "test"},
			want: []string{`named target "nobody"`, `"test"`},
		},
		"environment with no hosts": {
			req:  workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "prod"},
			want: []string{"no installer host", `"prod"`},
		},
		"no builder": {
			req:  workflows.Request{Project: "nobuilder", Action: workflows.ActionBuild},
			want: []string{`no builder advertises project "nobuilder"`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := final(t, start(t, tc.req))
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			assert.Equal(t, string(workflows.StatusRejected), app.Type())
			assert.Equal(t, workflows.StatusRejected, d.Status)
			for _, w := range tc.want {
				assert.Contains(t, d.Reason, w)
			}
			assert.Empty(t, d.Commit, "a rejected request builds nothing")
		})
	}
}

func TestCLIReleaseWaitStatusHistoryList(t *testing.T) {
	out, errOut, code := relman(t, "release", "shop", "--env", "test", "--wait")
	require.Equal(t, cli.ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.True(t, strings.HasPrefix(lines[0], "transaction "), out)
	txid := strings.TrimPrefix(lines[0], "transaction ")
	assert.Contains(t, out, txid+" INSTALL_COMPLETED")
	assert.Contains(t, out, "host-a")
	assert.Contains(t, out, "host-b")

	out, _, code = relman(t, "status", txid)
	require.Equal(t, cli.ExitOK, code)
	assert.Equal(t, "INSTALL_COMPLETED\n", out)

	out, _, code = relman(t, "status", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code)
	var d workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out), &d))
	assert.Equal(t, txid, d.Transaction)
	assert.Equal(t, "shop", d.Request.Project)
	assert.Equal(t, "e2e-tester", d.Request.Requester)
	assert.Len(t, d.Installs, 4)
	assert.Len(t, d.Artifacts, 2)

	out, _, code = relman(t, "history", txid)
	require.Equal(t, cli.ExitOK, code)
	for _, want := range []string{"requested", "status STARTED", "Build", "relman-build-shop", "Install", "status INSTALL_COMPLETED", "builder-e2e"} {
		assert.Contains(t, out, want)
	}
	out, _, code = relman(t, "history", txid, "-o", "json")
	require.Equal(t, cli.ExitOK, code)
	var steps []transaction.Step
	require.NoError(t, json.Unmarshal([]byte(out), &steps))
	installs := 0
	for _, s := range steps {
		if s.Activity == workflows.InstallActivity && s.Event == "completed" {
			installs++
			assert.Positive(t, s.Took)
			assert.EqualValues(t, 1, s.Attempt)
		}
	}
	assert.Equal(t, 4, installs)

	// list filters through the search attributes; visibility is eventually
	// consistent, so wait for the row to appear.
	require.Eventually(t, func() bool {
		out, _, code = relman(t, "list", "--project", "shop", "--env", "test", "--status", "INSTALL_COMPLETED", "--limit", "50", "-o", "json")
		return code == 0 && strings.Contains(out, txid)
	}, 30*time.Second, 300*time.Millisecond)
	var rows []transaction.Listed
	require.NoError(t, json.Unmarshal([]byte(out), &rows))
	for _, r := range rows {
		assert.Equal(t, "shop", r.Project)
		assert.Equal(t, "test", r.Env)
		assert.Equal(t, "INSTALL_COMPLETED", r.Status)
	}
	out, _, code = relman(t, "list", "--project", "broken", "-o", "json")
	require.Equal(t, cli.ExitOK, code)
	assert.NotContains(t, out, txid)

	out, _, code = relman(t, "registrations", "-o", "json")
	require.Equal(t, cli.ExitOK, code)
	var leases []workflows.Lease
	require.NoError(t, json.Unmarshal([]byte(out), &leases))
	var ids []string
	for _, l := range leases {
		ids = append(ids, l.ID)
	}
	assert.Subset(t, ids, []string{"builder-e2e", "host-a", "host-b"})
}

func TestCLIErrors(t *testing.T) {
	cases := map[string]struct {
		args []string
		code int
		want string
	}{
		"failed release exits 3":   {[]string{"release", "broken", "--env", "test", "--wait"}, cli.ExitReleaseFailed, "BUILD_FAILED"},
		"rejected release exits 3": {[]string{"release", "nosuch", "--env", "test", "--wait"}, cli.ExitReleaseFailed, "REJECTED"},
		"install without env":      {[]string{"release", "shop"}, cli.ExitUsage, "needs --env"},
		"two selectors":            {[]string{"release", "shop", "--env", "test", "--tag", "a", "--branch", "b"}, cli.ExitUsage, "one source selector"},
		"unknown transaction":      {[]string{"status", "no-such-transaction"}, cli.ExitError, "no transaction no-such-transaction"},
		"unknown command":          {[]string{"frobnicate"}, cli.ExitUsage, "unknown command"},
		"bad output":               {[]string{"list", "-o", "yaml"}, cli.ExitUsage, "--output must be text or json"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, errOut, code := relman(t, tc.args...)
			assert.Equal(t, tc.code, code, errOut)
			assert.Contains(t, errOut, tc.want)
			assert.True(t, strings.HasPrefix(errOut, "Error: "), errOut)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, "one line on stderr: %q", errOut)
		})
	}
}

// slowBuildPID waits until the slow project's build step runs and has
// written its pid to pidfile, and returns that pid.
func slowBuildPID(t *testing.T, pidfile string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		_, err = fmtSscan(strings.TrimSpace(string(b)), &pid)
		return err == nil && pid > 0
	}, time.Minute, 100*time.Millisecond)
	require.True(t, alive(pid))
	return pid
}

func TestCLICancelStopsBuildStep(t *testing.T) {
	pidfile := filepath.Join(env.Root, "slow.pid")
	_ = os.Remove(pidfile)
	out, errOut, code := relman(t, "release", "slow", "--env", "test")
	require.Equal(t, cli.ExitOK, code, errOut)
	txid := strings.TrimSpace(out)

	// Wait until the build step is really running.
	pid := slowBuildPID(t, pidfile)

	out, errOut, code = relman(t, "cancel", txid)
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, "CANCELLED\n", out)
	// The step's process is gone: cancel reaches the process group.
	require.Eventually(t, func() bool { return !alive(pid) }, 20*time.Second, 100*time.Millisecond)

	out, _, code = relman(t, "status", txid)
	require.Equal(t, cli.ExitOK, code)
	assert.Equal(t, "CANCELLED\n", out)
	require.Eventually(t, func() bool {
		out, _, _ = relman(t, "list", "--status", "CANCELLED", "-o", "json")
		return strings.Contains(out, txid)
	}, 30*time.Second, 300*time.Millisecond)
}

func TestCLIFollowPrintsLines(t *testing.T) {
	out, errOut, code := relman(t, "release", "shop", "--env", "test", "--follow")
	require.Equal(t, cli.ExitOK, code, errOut)
	for _, want := range []string{"STARTED", "BUILD_COMPLETED", "INSTALL_COMPLETED", "install installed web on host-a", "install installed tool on host-b"} {
		assert.Contains(t, out, want)
	}
	// Not a terminal: plain lines, no escape sequences.
	assert.NotContains(t, out, "\x1b[")
}

func TestRoleStopsGracefully(t *testing.T) {
	// A third installer host joins, then stops on SIGTERM: it exits 0 and
	// deregisters at once rather than waiting for its lease to expire.
	cfg := filepath.Join(env.Root, "host-c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`version: 1
host: host-c
artifacts: file://./artifacts
work_dir: ./host-c/work
lease: 60s
trust: {manager_key_files: [orders.key.pub]}
environments:
  test:
    web: {behavior: unarchive, path: ./host-c/www}
`), 0o644))
	p, err := env.StartRole("host-c", "installer", cfg)
	require.NoError(t, err)
	hasHostC := func() bool {
		out, _, _ := relman(t, "registrations", "-o", "json")
		return strings.Contains(out, `"host-c"`)
	}
	require.Eventually(t, hasHostC, 30*time.Second, 200*time.Millisecond)
	require.NoError(t, p.Stop(20*time.Second), "installer must exit 0 on SIGTERM")
	assert.False(t, hasHostC(), "a stopped host must deregister")
}

// TestOneTraceAcrossRoles: with tracing on, the trace started by `relman
// release` reaches the manager, the builder and both installer hosts.
func TestOneTraceAcrossRoles(t *testing.T) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Execute(ctx, []string{"release", "shop", "--env", "test", "--wait", "--address", env.Address}, cli.Options{
		Stdout: &out, Stderr: &errb,
		LookupEnv: func(k string) (string, bool) {
			if k == "OTEL_TRACES_EXPORTER" {
				return "console", true
			}
			return os.LookupEnv(k)
		},
	})
	require.Equal(t, cli.ExitOK, code, errb.String())
	m := regexp.MustCompile(`(?m)^trace ([0-9a-f]{32})$`).FindStringSubmatch(errb.String())
	require.NotNil(t, m, "the release prints its trace id: %s", errb.String())
	traceID := m[1]
	assert.Contains(t, errb.String(), `"TraceID":"`+traceID+`"`, "the CLI exports its own spans")
	for _, p := range []string{"manager", "builder", "host-a", "host-b"} {
		require.Eventually(t, func() bool {
			b, _ := os.ReadFile(env.procs[p].Log)
			return strings.Contains(string(b), `"TraceID":"`+traceID+`"`)
		}, 10*time.Second, 100*time.Millisecond, "no span of trace %s in %s's output", traceID, p)
	}
}

func TestInstallFromEarlierBuild(t *testing.T) {
	head := commit(t, "", map[string]string{"site/index.html": "<h1>built once</h1>\n"})
	out, errOut, code := relman(t, "release", "shop", "--action", "build", "--wait", "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var built workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &built))
	require.Equal(t, workflows.StatusBuildCompleted, built.Status)
	require.Equal(t, head, built.Commit)
	// A newer commit must not be what gets installed.
	commit(t, "", map[string]string{"site/index.html": "<h1>newer</h1>\n"})

	out, errOut, code = relman(t, "install", "--from", built.Transaction, "--env", "test", "--wait", "-o", "json")
	require.Equal(t, cli.ExitOK, code, errOut)
	var d workflows.Detail
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &d))
	assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
	assert.Equal(t, built.Transaction, d.Request.From)
	assert.Equal(t, head, d.Commit)
	assert.Equal(t, built.Artifacts, d.Artifacts, "the same artifacts, not a rebuild")
	steps, err := transaction.Timeline(context.Background(), env.Client, d.Transaction)
	require.NoError(t, err)
	for _, st := range steps {
		assert.NotEqual(t, workflows.BuildActivity, st.Activity, "no build ran")
	}
	for _, h := range []string{"host-a", "host-b"} {
		assert.Equal(t, "<h1>built once</h1>\n", readFile(t, filepath.Join(env.hosts[h], "www", "index.html")))
	}

	// Installing from something that is not a finished build is refused.
	failed, err := final(t, start(t, workflows.Request{Project: "broken", Action: workflows.ActionBuild}))
	require.Error(t, err)
	d2, err := final(t, start(t, workflows.Request{Project: "broken", Action: workflows.ActionInstall, Env: "test", From: failed.Transaction}))
	require.Error(t, err)
	assert.Equal(t, workflows.StatusRejected, d2.Status)
	assert.Contains(t, d2.Reason, "only a completed build")
	d3, err := final(t, start(t, workflows.Request{Project: "shop", Action: workflows.ActionInstall, Env: "test", From: "no-such-tx"}))
	require.Error(t, err)
	assert.Contains(t, d3.Reason, "no transaction no-such-tx")
}

func TestSubversionSource(t *testing.T) {
	for name, tc := range map[string]struct {
		sel    workflows.Selector
		commit string
		body   string
	}{
		"trunk":      {workflows.Selector{Trunk: true}, "3", "legacy r3\n"},
		"tag":        {workflows.Selector{Tag: "1.0"}, "2", "legacy r1\n"},
		"revision 1": {workflows.Selector{Revision: "1"}, "1", "legacy r1\n"},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := final(t, start(t, workflows.Request{Project: "legacy", Action: workflows.ActionInstall, Env: "test", Source: tc.sel}))
			require.NoError(t, err)
			assert.Equal(t, workflows.StatusInstallCompleted, d.Status)
			assert.Equal(t, tc.commit, d.Commit)
			for _, h := range []string{"host-a", "host-b"} {
				assert.Equal(t, tc.body, readFile(t, filepath.Join(env.hosts[h], "www", "index.html")))
			}
		})
	}
	d, err := final(t, start(t, workflows.Request{Project: "legacy", Action: workflows.ActionBuild, Source: workflows.Selector{Branch: "nope"}}))
	require.Error(t, err)
	assert.Equal(t, workflows.StatusBuildFailed, d.Status)
	assert.Contains(t, d.Reason, "nope")
}
