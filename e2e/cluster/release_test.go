//go:build cluster

package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/harness/testcluster"
	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/surface/cli"
	"github.com/relman/relman/workflows"
)

func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func install(project, requester string) workflows.Request {
	return workflows.Request{Project: project, Action: workflows.ActionInstall, Env: "test", Requester: requester}
}

// TestReleaseTwoHosts: a release of one project to env test on two hosts
// completes on the cluster; the artifact went through SeaweedFS and both
// hosts installed its bytes.
func TestReleaseTwoHosts(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 3*time.Minute)
	txid, err := env.Release(ctx, "", install("app", "cluster-two-hosts"))
	require.NoError(t, err)
	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
	for _, h := range hosts {
		b, err := os.ReadFile(env.Path(h, "app.txt"))
		require.NoError(t, err)
		require.Equal(t, "app\n", string(b), h)
	}
	ref := d.Artifacts["app"]
	st, err := artifact.OpenStore(ctx, s3.StoreURL())
	require.NoError(t, err)
	defer st.Close()
	ok, err := st.Has(ctx, artifact.Ref{Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size})
	require.NoError(t, err)
	require.True(t, ok, "artifact %s in the SeaweedFS bucket", ref.Key)
}

// TestLoad200Releases: 200 concurrent releases over 4 projects and 2 hosts
// all end INSTALL_COMPLETED on the cluster; none is lost or duplicated.
func TestLoad200Releases(t *testing.T) {
	env.DumpOnFailure(t)
	const n = 200
	ctx := timeout(t, 10*time.Minute)
	requester := fmt.Sprintf("cluster-load-%d", time.Now().UnixNano())
	start := time.Now()

	reqs := make([]workflows.Request, n)
	for i := range reqs {
		reqs[i] = install(fmt.Sprintf("load%d", i%len(targets)+1), requester)
	}
	ids, errs := env.ReleaseAll(ctx, reqs)
	for i, err := range errs {
		require.NoError(t, err, "start %d", i)
	}
	statuses, reasons := env.FinalAll(ctx, ids)
	wall := time.Since(start)
	byStatus := map[workflows.Status]int{}
	for i, s := range statuses {
		byStatus[s]++
		assert.Equal(t, workflows.StatusInstallCompleted, s, "%s: %s", ids[i], reasons[i])
	}
	t.Logf("%d releases on the cluster: all final in %s (%.1f/s): %v", n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(), byStatus)

	distinct := map[string]bool{}
	for _, id := range ids {
		distinct[id] = true
	}
	assert.Len(t, distinct, n, "transaction ids are distinct")
	// Visibility on PostgreSQL is written by the history service's
	// transfer tasks: poll until every one is listed.
	var rows []transaction.Listed
	require.Eventually(t, func() bool {
		var err error
		rows, err = transaction.List(ctx, env.Client, transaction.Filter{Requester: requester, Status: string(workflows.StatusInstallCompleted), Limit: 1000})
		return err == nil && len(rows) >= n
	}, 2*time.Minute, time.Second, "listing INSTALL_COMPLETED by requester")
	listed := map[string]int{}
	for _, r := range rows {
		listed[r.Transaction]++
	}
	assert.Len(t, rows, n, "none listed twice, none extra")
	for _, id := range ids {
		assert.Equal(t, 1, listed[id], "transaction %s listed %d times", id, listed[id])
	}
}

// builds lists the pids that ran the slow step for txid (one per run).
func builds(t *testing.T, txid string) []string {
	t.Helper()
	var pids []string
	for _, l := range whoLines(t) {
		if l[0] == txid {
			pids = append(pids, l[1])
		}
	}
	return pids
}

// whoLines are the (transaction, pid) lines the slow step wrote.
func whoLines(t *testing.T) [][2]string {
	t.Helper()
	b, err := os.ReadFile(env.Path("who.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var lines [][2]string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			lines = append(lines, [2]string{f[0], f[1]})
		}
	}
	return lines
}

// freshRequest commits a change so that the build of project really runs
// (a build of a commit already built would be reused).
func freshRequest(t *testing.T, project, envName, requester string) workflows.Request {
	t.Helper()
	c, err := testenv.Commit(repo, map[string]string{"fresh.txt": fmt.Sprintf("%s %d\n", t.Name(), time.Now().UnixNano())})
	require.NoError(t, err)
	req := install(project, requester)
	req.Env = envName
	req.Source = workflows.Selector{Revision: c}
	return req
}

func freshSlow(t *testing.T, requester string) workflows.Request {
	return freshRequest(t, "slow", "test", requester)
}

// outage is how long a killed service stays down before it is started
// again (its start takes a few seconds more).
const outage = 8 * time.Second

// TestServiceKilledMidBuild kills one Temporal service with SIGKILL while
// the builder runs a build step, and starts it again: the release
// completes on both hosts, and the build step ran once (the builder's
// heartbeats ride out the restart within the 30 s heartbeat timeout).
func TestServiceKilledMidBuild(t *testing.T) {
	for _, svc := range []string{testcluster.History, testcluster.Matching} {
		t.Run(svc, func(t *testing.T) {
			env.DumpOnFailure(t)
			ctx := timeout(t, 5*time.Minute)
			txid, err := env.Release(ctx, "", freshSlow(t, "cluster-kill-"+svc))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return len(builds(t, txid)) > 0 }, 2*time.Minute, 100*time.Millisecond, "the build step of %s did not start", txid)

			require.NoError(t, temp.Kill(svc))
			killed := time.Now()
			// Down for a while, as after a crash: with the restart this
			// is longer than a 10 s heartbeat timeout.
			time.Sleep(outage)
			require.NoError(t, temp.StartService(ctx, svc))
			back := time.Now()

			d, err := env.Final(ctx, txid)
			require.NoError(t, err)
			require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
			for _, h := range hosts {
				b, err := os.ReadFile(env.Path(h, "slowout.txt"))
				require.NoError(t, err)
				require.Equal(t, d.Commit+"\n", string(b), h)
			}
			assert.Len(t, builds(t, txid), 1, "the build step ran once: the restart of %s cost no rebuild", svc)
			t.Logf("%s killed; serving again %s later; the release ended %s after that", svc, back.Sub(killed).Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
		})
	}
}

// TestFrontendRestartWhileFollowing: `relman release --follow` runs while
// the frontend is killed and started again; the CLI rides it out and exits
// 0 once the release completes.
func TestFrontendRestartWhileFollowing(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 5*time.Minute)
	req := freshSlow(t, "cluster-follow")
	type result struct {
		out, errOut string
		code        int
	}
	// The transaction id is derived from the request id and the signer
	// (workflows.RequestTransactionID); the test learns it from the build
	// step, which writes it into who.log, so it need not guess the signer.
	requestID := fmt.Sprintf("cluster-follow-%d", time.Now().UnixNano())
	seen := map[string]bool{}
	for _, l := range whoLines(t) {
		seen[l[0]] = true
	}
	done := make(chan result, 1)
	go func() {
		out, errOut, code := env.CLI(ctx, "release", "slow", "--env", "test", "--revision", req.Source.Revision, "--request-id", requestID, "--follow")
		done <- result{out, errOut, code}
	}()
	// A CLI that ended before the build started failed on its own: say
	// how, rather than wait for a build that will not come.
	var early *result
	var txid string
	require.Eventually(t, func() bool {
		select {
		case r := <-done:
			early = &r
			return true
		default:
		}
		for _, l := range whoLines(t) {
			if !seen[l[0]] && strings.HasPrefix(l[0], workflows.RequestIDPrefix) {
				txid = l[0]
				return true
			}
		}
		return false
	}, 2*time.Minute, 100*time.Millisecond, "the build step of request %s did not start", requestID)
	if early != nil {
		t.Fatalf("relman release --follow ended (exit %d) before the build step of request %s started:\nstdout:\n%s\nstderr:\n%s", early.code, requestID, early.out, early.errOut)
	}

	require.NoError(t, temp.Kill(testcluster.Frontend))
	time.Sleep(outage)
	require.NoError(t, temp.StartService(ctx, testcluster.Frontend))

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("relman release --follow did not end")
	}
	require.Equal(t, cli.ExitOK, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.errOut)
	require.Contains(t, r.out, "transaction "+txid)
	require.Contains(t, r.out, string(workflows.StatusInstallCompleted))
	t.Logf("relman release --follow across the frontend restart:\n%s%s", r.out, r.errOut)
	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
}
