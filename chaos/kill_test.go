package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

// TestBuilderKilledMidBuild: the builder running a build step is killed
// with SIGKILL; after the heartbeat timeout the build is taken up by the
// other builder and the release completes.
func TestBuilderKilledMidBuild(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 3*time.Minute)
	whoFile := env.Path("who.log")
	txid := release(t, env, freshInstall(t, "slow"))

	first := waitWho(t, whoFile, txid, 1)[0]
	victim := procs[first.builder]
	require.NotNil(t, victim, "unknown builder %q", first.builder)
	victim.Kill()
	t.Logf("killed %s (pid %d) while it ran the build step of %s", first.builder, victim.Pid(), txid)
	defer func() {
		_, err := startShared(first.builder)
		require.NoError(t, err)
		require.NoError(t, env.WaitRegistered(ctx, first.builder))
	}()

	d, err := env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)

	ws := whoLines(t, whoFile, txid)
	require.Len(t, ws, 2, "the build step ran once per attempt: %v", ws)
	assert.NotEqual(t, first.builder, ws[1].builder, "the second attempt ran on the surviving builder")
	assert.Equal(t, ws[1].builder, d.Builder)

	starts := buildStarts(t, env, txid)
	require.NotEmpty(t, starts)
	last := starts[len(starts)-1]
	assert.EqualValues(t, 2, last.Attempt, "the history shows the build's second attempt")
	assert.Contains(t, last.Worker, ws[1].builder)
	assert.Contains(t, strings.ToLower(last.Detail), "heartbeat", "attempt 2 started after attempt 1's heartbeat timeout")
}

// TestInstallerKilledMidInstall: an installer is killed while it extracts
// v2 of a large artifact over v1; the destination still holds exactly v1;
// after the restart the install is retried and the destination holds
// exactly v2, with no staging directory left beside it.
func TestInstallerKilledMidInstall(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 4*time.Minute)
	dest := env.Path("host-big", "big")
	cfg, err := env.WriteConfig("host-big.yaml", installerConfig("host-big", sharedLease, map[string]config.InstallBehavior{
		"big": {Behavior: config.BehaviorUnarchive, Path: dest},
	}))
	require.NoError(t, err)
	host, err := env.StartRole("host-big", "installer", cfg)
	require.NoError(t, err)
	defer func() {
		assert.NoError(t, host.Stop(20*time.Second))
		assert.NoError(t, env.WaitGone(ctx, "host-big"))
	}()
	require.NoError(t, env.WaitRegistered(ctx, "host-big"))

	const files = 3000 + 2 // the random parts, the marker, only-<version>
	v1, err := testenvCommit(map[string]string{"MARK": "v1\n"})
	require.NoError(t, err)
	start := time.Now()
	d, err := env.Final(ctx, release(t, env, atRevision(install("big"), v1)))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
	t.Logf("v1 (%d bytes) built and installed in %s", d.Artifacts["big"].Size, time.Since(start).Round(time.Millisecond))
	require.Equal(t, "v1\n", readFile(t, filepath.Join(dest, "marker")))
	require.Equal(t, files, countFiles(t, dest))

	v2, err := testenvCommit(map[string]string{"MARK": "v2\n"})
	require.NoError(t, err)
	txid := release(t, env, atRevision(install("big"), v2))
	staging := filepath.Join(filepath.Dir(dest), ".big.relman-staging-*")
	var seen []string
	require.Eventually(t, func() bool {
		seen, _ = filepath.Glob(staging)
		return len(seen) > 0
	}, 2*time.Minute, 2*time.Millisecond, "no staging dir appeared beside %s", dest)
	host.Kill()
	t.Logf("killed host-big while it staged %v", seen)

	// At that moment the destination holds exactly v1.
	assert.Equal(t, "v1\n", readFile(t, filepath.Join(dest, "marker")))
	assert.FileExists(t, filepath.Join(dest, "only-v1"))
	assert.NoFileExists(t, filepath.Join(dest, "only-v2"))
	assert.Equal(t, files, countFiles(t, dest))

	host, err = host.Restart()
	require.NoError(t, err)
	d, err = env.Final(ctx, txid)
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
	rec, ok := installRecord(d, "host-big")
	require.True(t, ok)
	assert.EqualValues(t, 2, rec.Attempts, "the install was retried once, after the kill")

	assert.Equal(t, "v2\n", readFile(t, filepath.Join(dest, "marker")))
	assert.FileExists(t, filepath.Join(dest, "only-v2"))
	assert.NoFileExists(t, filepath.Join(dest, "only-v1"))
	assert.Equal(t, files, countFiles(t, dest))
	left, _ := filepath.Glob(staging)
	assert.Empty(t, left, "staging dirs left beside the destination after the retried install")
}

// TestManagerKilledMidRelease: with two managers on the queue, one is
// killed during a build; the release completes and status queries keep
// answering. Then the only manager left is killed mid-build and a new one
// started: the release completes.
func TestManagerKilledMidRelease(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 4*time.Minute)
	whoFile := env.Path("who.log")

	m2, err := startShared("manager-2")
	require.NoError(t, err)
	require.NoError(t, env.WaitPoller(ctx, env.ManagerQueue, enums.TASK_QUEUE_TYPE_WORKFLOW, fmt.Sprintf(":%d", m2.Pid())))

	t.Run("one of two killed", func(t *testing.T) {
		txid := release(t, env, freshInstall(t, "slow"))
		waitWho(t, whoFile, txid, 1)
		q := watch(txid)
		time.Sleep(time.Second) // a few answers before the kill
		procs["manager-1"].Kill()
		killed := time.Now()
		t.Log("killed manager-1 during the build")
		d, err := env.Final(ctx, txid)
		require.NoError(t, err)
		require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
		answers := q.stop()

		// Queries answered during the build, after the kill, and at the end.
		var after int
		var maxGap time.Duration
		last := killed
		for _, a := range answers {
			if a.err != nil {
				require.ErrorIs(t, a.err, transaction.ErrNotYet, "a status query failed at %s", a.at.Sub(killed))
				continue
			}
			if a.at.After(killed) {
				after++
				maxGap = max(maxGap, a.at.Sub(last))
				last = a.at
			}
		}
		t.Logf("%d status answers after the kill, longest wait %s", after, maxGap.Round(time.Millisecond))
		assert.Positive(t, after)
		assert.Less(t, maxGap, 15*time.Second, "status queries stopped answering for too long")
		got, err := transaction.Get(ctx, env.Client, txid)
		require.NoError(t, err)
		assert.Equal(t, workflows.StatusInstallCompleted, got.Status)
	})

	t.Run("the only one killed and restarted", func(t *testing.T) {
		txid := release(t, env, freshInstall(t, "slow"))
		waitWho(t, whoFile, txid, 1)
		m2.Kill()
		t.Log("killed manager-2, the only manager, during the build")
		m1, err := startShared("manager-1")
		require.NoError(t, err)
		d, err := env.Final(ctx, txid)
		require.NoError(t, err)
		require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
		require.True(t, m1.Running())
		got, err := transaction.Get(ctx, env.Client, txid)
		require.NoError(t, err)
		assert.Equal(t, workflows.StatusInstallCompleted, got.Status)
	})
	if !procs["manager-1"].Running() {
		_, err := startShared("manager-1")
		require.NoError(t, err)
	}
}

type answer struct {
	at     time.Time
	status workflows.Status
	err    error
}

type watcher struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	answers []answer
}

// watch polls transaction.Get for txid every 200ms until stopped.
func watch(txid string) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			qctx, qcancel := context.WithTimeout(ctx, 20*time.Second)
			d, err := transaction.Get(qctx, env.Client, txid)
			qcancel()
			if ctx.Err() != nil {
				return
			}
			a := answer{at: time.Now(), err: err}
			if errors.Is(err, context.DeadlineExceeded) {
				a.err = fmt.Errorf("%w: %v", transaction.ErrNotYet, err)
			}
			if d != nil {
				a.status = d.Status
			}
			w.mu.Lock()
			w.answers = append(w.answers, a)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *watcher) stop() []answer {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.answers
}

// TestDeadHostDoesNotHang: a host registered for the target and then
// killed without deregistering is reported unreachable within the host
// timeout, the others install; once its lease expires it is planned no more.
func TestDeadHostDoesNotHang(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 2*time.Minute)
	cfg, err := env.WriteConfig("host-dead.yaml", installerConfig("host-dead", 6*time.Second, map[string]config.InstallBehavior{
		"edge": copyTo(env.Path("host-dead", "edge.txt")),
	}))
	require.NoError(t, err)
	dead, err := env.StartRole("host-dead", "installer", cfg)
	require.NoError(t, err)
	require.NoError(t, env.WaitRegistered(ctx, "host-dead"))
	dead.Kill()
	killed := time.Now()

	d, err := env.Final(ctx, release(t, env, install("edge")))
	took := time.Since(killed)
	require.Error(t, err)
	require.Equal(t, workflows.StatusInstallFailed, d.Status)
	t.Logf("INSTALL_FAILED %s after the kill: %s", took.Round(time.Millisecond), d.Reason)
	assert.Less(t, took, chaosTimeouts.Host+12*time.Second, "the dead host held the release past the host timeout")
	assert.Contains(t, d.Reason, "host-dead")
	assert.Contains(t, d.Reason, "unreachable")
	rec, ok := installRecord(d, "host-dead")
	require.True(t, ok, "the dead host was planned: %+v", d.Installs)
	assert.Equal(t, workflows.InstallFailedS, rec.State)
	assert.Contains(t, rec.Error, "unreachable")
	for _, h := range sharedHosts {
		r, ok := installRecord(d, h)
		require.True(t, ok, h)
		assert.Equal(t, workflows.InstallInstalled, r.State, "%s: %s", h, r.Error)
	}

	require.NoError(t, env.WaitGone(ctx, "host-dead"))
	t.Logf("host-dead's lease expired %s after the kill", time.Since(killed).Round(time.Millisecond))
	d, err = env.Final(ctx, release(t, env, install("edge")))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)
	_, planned := installRecord(d, "host-dead")
	assert.False(t, planned, "a host whose lease expired is not planned")
	assert.Len(t, d.Installs, len(sharedHosts))
}

// TestCorruptArtifactRefused: an artifact whose stored bytes were flipped
// (same size) is refused by every installer with a checksum mismatch that
// names both hashes, without retries, and the previous install stays.
func TestCorruptArtifactRefused(t *testing.T) {
	env.DumpOnFailure(t)
	ctx := timeout(t, 2*time.Minute)
	good := fmt.Sprintf("payload good %d\n", time.Now().UnixNano())
	c1, err := testenvCommit(map[string]string{"payload.txt": good})
	require.NoError(t, err)
	d, err := env.Final(ctx, release(t, env, atRevision(install("corrupt"), c1)))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusInstallCompleted, d.Status, d.Reason)

	c2, err := testenvCommit(map[string]string{"payload.txt": fmt.Sprintf("payload next %d\n", time.Now().UnixNano())})
	require.NoError(t, err)
	build := atRevision(install("corrupt"), c2)
	build.Action, build.Env = workflows.ActionBuild, ""
	d, err = env.Final(ctx, release(t, env, build))
	require.NoError(t, err)
	require.Equal(t, workflows.StatusBuildCompleted, d.Status, d.Reason)
	ref := d.Artifacts["blob"]
	obj := env.Path("artifacts", filepath.FromSlash(ref.Key))
	b, err := os.ReadFile(obj)
	require.NoError(t, err)
	require.EqualValues(t, ref.Size, len(b))
	for i := range min(4, len(b)) {
		b[i] ^= 0xff
	}
	require.NoError(t, os.WriteFile(obj, b, 0o644))
	defer os.Remove(obj)

	d, err = env.Final(ctx, release(t, env, atRevision(install("corrupt"), c2)))
	require.Error(t, err)
	require.Equal(t, workflows.StatusInstallFailed, d.Status)
	assert.Contains(t, d.Reason, ref.SHA256)
	require.Len(t, d.Installs, len(sharedHosts))
	for _, r := range d.Installs {
		assert.Equal(t, workflows.InstallFailedS, r.State, r.Host)
		assert.Contains(t, r.Error, "corrupt")
		assert.Contains(t, r.Error, "expected sha256 "+ref.SHA256)
		assert.Regexp(t, `got sha256 [0-9a-f]{64}`, r.Error)
		assert.NotContains(t, r.Error, "got sha256 "+ref.SHA256)
		assert.EqualValues(t, 1, r.Attempts, "a checksum mismatch is not retried (%s)", r.Host)
		assert.Equal(t, good, readFile(t, env.Path(r.Host, "blob.txt")), "the previous install stays on %s", r.Host)
	}
}
