package activities_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

func newTx(t *testing.T) string {
	t.Helper()
	u, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	return u.String()
}

// rolloutFixture adds release targets (with and without health checks) to
// the install fixture.
func rolloutFixture(t *testing.T, health map[string]*config.HealthCheck) installFixture {
	t.Helper()
	f := newInstallFixture(t)
	targets := f.inst.Config.Environments["test"]
	targets["app"] = config.InstallBehavior{Behavior: config.BehaviorRelease, Path: filepath.Join(f.root, "app"), Keep: 3, Shared: []string{"logs"}}
	for name, h := range health {
		if h.Retries == nil {
			zero := 0
			h.Retries = &zero
		}
		if h.Timeout == 0 {
			h.Timeout = 5 * time.Second
		}
		h.Interval = 10 * time.Millisecond
		targets[name] = config.InstallBehavior{Behavior: config.BehaviorRelease, Path: filepath.Join(f.root, name), Keep: 3, Health: h}
	}
	return f
}

func TestHealthCommand(t *testing.T) {
	f := rolloutFixture(t, map[string]*config.HealthCheck{
		"ok":  {Command: []string{"sh", "-c", `test -f index.html && test "$RELMAN_TARGET" = ok && test -n "$RELMAN_TRANSACTION"`}},
		"bad": {Command: []string{"sh", "-c", "echo 'app did not start' >&2; exit 2"}},
	})
	ref := f.putTree(t, map[string]string{"index.html": "v1\n"})
	if _, err := f.install(newTx(t), "ok", ref); err != nil {
		t.Fatalf("healthy install failed: %v", err)
	}
	// The bad target's first release fails its check; with no earlier
	// release there is nothing to switch back to.
	_, err := f.install(newTx(t), "bad", ref)
	app := appError(t, err, workflows.ErrHealthCheck, true)
	mustContain(t, app.Message(), "host-a", "health check of bad failed", "app did not start", "no earlier release")
}

func TestHealthFailureSwitchesBack(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "healthy")
	f := rolloutFixture(t, map[string]*config.HealthCheck{
		"web": {Command: []string{"sh", "-c", `test -f "` + flag + `"`}},
	})
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	good := newTx(t)
	if _, err := f.install(good, "web", f.putTree(t, map[string]string{"index.html": "good\n"})); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	_, err := f.install(newTx(t), "web", f.putTree(t, map[string]string{"index.html": "bad\n"}))
	app := appError(t, err, workflows.ErrHealthCheck, true)
	mustContain(t, app.Message(), "current switched back to "+good)
	b, err := os.ReadFile(filepath.Join(f.root, "web", "current", "index.html"))
	if err != nil || string(b) != "good\n" {
		t.Errorf("current/index.html = %q (%v), want the good release", b, err)
	}
}

func TestHealthHTTP(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.URL.Path == "/ok" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer srv.Close()
	two := 2
	f := rolloutFixture(t, map[string]*config.HealthCheck{
		"up":   {HTTP: srv.URL + "/ok"},
		"down": {HTTP: srv.URL + "/fail", Retries: &two},
	})
	ref := f.putTree(t, map[string]string{"index.html": "v1\n"})
	if _, err := f.install(newTx(t), "up", ref); err != nil {
		t.Fatalf("healthy http install failed: %v", err)
	}
	calls = 0
	_, err := f.install(newTx(t), "down", ref)
	app := appError(t, err, workflows.ErrHealthCheck, true)
	mustContain(t, app.Message(), "500", "failed 3 time(s)")
	if calls != 3 {
		t.Errorf("the check ran %d times, want 1 + 2 retries", calls)
	}
}

func TestWhereAndRollback(t *testing.T) {
	f := rolloutFixture(t, nil)
	var txs []string
	for i := range 3 {
		tx := newTx(t)
		txs = append(txs, tx)
		if _, err := f.install(tx, "app", f.putTree(t, map[string]string{"index.html": string(rune('1' + i))})); err != nil {
			t.Fatal(err)
		}
	}
	siteTx := newTx(t)
	siteRef := f.putTree(t, map[string]string{"index.html": "site\n"})
	if _, err := f.install(siteTx, "site", siteRef); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	live, err := f.inst.Where(ctx, workflows.WhereHostInput{Env: "test", Targets: []string{"app", "site", "tool"}})
	if err != nil {
		t.Fatal(err)
	}
	if live["app"].Transaction != txs[2] || live["app"].InstalledAt.IsZero() || len(live["app"].Releases) != 3 {
		t.Errorf("app = %+v, want %s with 3 releases", live["app"], txs[2])
	}
	if live["site"].Transaction != siteTx || live["site"].SHA256 != siteRef.SHA256 {
		t.Errorf("site = %+v, want %s (state file)", live["site"], siteTx)
	}
	if live["tool"].Transaction != "" {
		t.Errorf("tool was never installed: %+v", live["tool"])
	}

	rb := newTx(t)
	in := workflows.RollbackHostInput{Transaction: rb, Project: "web", Env: "test", Target: "app"}
	res, err := f.rollback(ctx, in)
	if err != nil || res.From != txs[2] || res.To != txs[1] {
		t.Fatalf("rollback = %+v (%v)", res, err)
	}
	// A retry of the same rollback does not go one further back.
	res, err = f.rollback(ctx, in)
	if err != nil || res.From != txs[2] || res.To != txs[1] {
		t.Fatalf("retried rollback = %+v (%v)", res, err)
	}
	live, _ = f.inst.Where(ctx, workflows.WhereHostInput{Env: "test", Targets: []string{"app"}})
	if live["app"].Transaction != txs[1] {
		t.Errorf("where after rollback = %s, want %s", live["app"].Transaction, txs[1])
	}
	res, err = f.rollback(ctx, workflows.RollbackHostInput{Transaction: newTx(t), Env: "test", Target: "app", To: txs[0]})
	if err != nil || res.To != txs[0] {
		t.Fatalf("rollback --to = %+v (%v)", res, err)
	}
	_, err = f.rollback(ctx, workflows.RollbackHostInput{Transaction: newTx(t), Env: "test", Target: "app", To: "gone"})
	appError(t, err, workflows.ErrReleaseNotFound, true)
	_, err = f.rollback(ctx, workflows.RollbackHostInput{Transaction: newTx(t), Env: "test", Target: "site"})
	app := appError(t, err, workflows.ErrRollbackUnsupported, true)
	mustContain(t, app.Message(), "rollback needs the release behavior")
}

// countingBuild is a builder whose step appends a line to a counter file,
// so a test sees how often steps really ran.
func countingBuild(t *testing.T) (buildFixture, string) {
	t.Helper()
	f := newBuildFixture(t)
	counter := filepath.Join(t.TempDir(), "runs")
	p := f.b.Config.Projects["web"]
	p.Steps = []config.Step{{Name: "build", Run: []string{"sh", "-c", `echo run >> "$COUNTER" && sh build.sh`}, Timeout: time.Minute}}
	p.Env = map[string]string{"COUNTER": counter, "EXTRA": "x"}
	f.b.Config.Projects["web"] = p
	return f, counter
}

func runs(t *testing.T, counter string) int {
	t.Helper()
	b, err := os.ReadFile(counter)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

func TestBuildOnce(t *testing.T) {
	f, counter := countingBuild(t)
	ctx := context.Background()
	first, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-1", Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if first.Reused || runs(t, counter) != 1 {
		t.Fatalf("first build: reused=%v runs=%d", first.Reused, runs(t, counter))
	}
	second, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-2", Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if !second.Reused || runs(t, counter) != 1 {
		t.Fatalf("same commit again: reused=%v runs=%d, want reused and no step run", second.Reused, runs(t, counter))
	}
	if second.Commit != first.Commit || len(second.Artifacts) != 2 || second.Artifacts["site"] != first.Artifacts["site"] {
		t.Errorf("reused build = %+v, want the first one's artifacts %+v", second, first)
	}

	// --rebuild runs the steps.
	third, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-3", Project: "web", Rebuild: true})
	if err != nil || third.Reused || runs(t, counter) != 2 {
		t.Fatalf("rebuild: reused=%v runs=%d err=%v", third.Reused, runs(t, counter), err)
	}

	// A changed build config builds again.
	p := f.b.Config.Projects["web"]
	p.Env["EXTRA"] = "changed"
	f.b.Config.Projects["web"] = p
	fourth, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-4", Project: "web"})
	if err != nil || fourth.Reused || runs(t, counter) != 3 {
		t.Fatalf("changed config: reused=%v runs=%d err=%v", fourth.Reused, runs(t, counter), err)
	}

	// A new commit builds again.
	f.repo.write(map[string]string{"README": "changed\n"})
	f.repo.commit("second")
	fifth, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-5", Project: "web"})
	if err != nil || fifth.Reused || runs(t, counter) != 4 {
		t.Fatalf("new commit: reused=%v runs=%d err=%v", fifth.Reused, runs(t, counter), err)
	}
}

func TestBuildOnceMissingArtifactRebuilds(t *testing.T) {
	f, counter := countingBuild(t)
	ctx := context.Background()
	first, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-1", Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	// The store lost an artifact: the index must not be trusted.
	if err := os.Remove(filepath.Join(f.storeAt, filepath.FromSlash(first.Artifacts["site"].Key))); err != nil {
		t.Fatal(err)
	}
	second, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-2", Project: "web"})
	if err != nil || second.Reused || runs(t, counter) != 2 {
		t.Fatalf("reused=%v runs=%d err=%v, want a rebuild", second.Reused, runs(t, counter), err)
	}
	// Only asking for a target the index lacks also builds again: here the
	// index has both, so a narrower request is reused.
	third, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-3", Project: "web", Targets: []string{"env"}})
	if err != nil || !third.Reused || len(third.Artifacts) != 1 {
		t.Fatalf("narrower request: %+v (%v)", third, err)
	}
}

// TestBuildRecordCannotBePoisoned: whoever writes the artifact store
// rewrites a build record to name an object of their own (its sha256 and
// size right, so the store serves it). The record no longer verifies, so
// the builder builds again and returns its own artifacts, never theirs; a
// record moved from another build's key, or written by a builder with
// another key, is refused alike.
func TestBuildRecordCannotBePoisoned(t *testing.T) {
	f, counter := countingBuild(t)
	ctx := context.Background()
	first, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-1", Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	evil, err := f.store.Put(ctx, strings.NewReader("#!/bin/sh\nrm -rf /\n"))
	if err != nil {
		t.Fatal(err)
	}
	records, err := filepath.Glob(filepath.Join(f.storeAt, "builds", "web", "*.json"))
	if err != nil || len(records) != 1 {
		t.Fatalf("build records %v (%v), want one", records, err)
	}
	rewrite := func(edit func(map[string]any)) {
		t.Helper()
		b, err := os.ReadFile(records[0])
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		edit(doc)
		if b, err = json.Marshal(doc); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(records[0], b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	point := func(doc map[string]any) {
		arts := doc["artifacts"].(map[string]any)
		arts["site"] = map[string]any{"key": evil.Key, "sha256": evil.SHA256, "size": evil.Size, "format": "tar.gz"}
	}
	for name, edit := range map[string]func(map[string]any){
		"pointed at another object": point,
		"pointed, mac removed":      func(doc map[string]any) { point(doc); delete(doc, "mac") },
		"pointed, mac of its own": func(doc map[string]any) {
			point(doc)
			doc["mac"] = strings.Repeat("ab", 32)
		},
	} {
		rewrite(edit)
		before := runs(t, counter)
		res, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-" + name, Project: "web"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Reused || runs(t, counter) != before+1 {
			t.Fatalf("%s: reused=%v runs=%d, want a real build", name, res.Reused, runs(t, counter))
		}
		if res.Artifacts["site"].SHA256 == evil.SHA256 || res.Artifacts["site"] != first.Artifacts["site"] {
			t.Fatalf("%s: site = %+v, want the builder's own %+v", name, res.Artifacts["site"], first.Artifacts["site"])
		}
	}
	// The rebuild wrote a good record again: the next build reuses it.
	again, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-again", Project: "web"})
	if err != nil || !again.Reused {
		t.Fatalf("after the rebuild: reused=%v err=%v, want the new record reused", again.Reused, err)
	}
	// A valid record copied over another build config's record does not
	// pass for it.
	p := f.b.Config.Projects["web"]
	p.Env["EXTRA"] = "changed"
	f.b.Config.Projects["web"] = p
	if _, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-changed", Project: "web"}); err != nil {
		t.Fatal(err)
	}
	all, _ := filepath.Glob(filepath.Join(f.storeAt, "builds", "web", "*.json"))
	if len(all) != 2 {
		t.Fatalf("build records %v, want two", all)
	}
	valid, err := os.ReadFile(records[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r != records[0] {
			if err := os.WriteFile(r, valid, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := runs(t, counter)
	moved, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-moved", Project: "web"})
	if err != nil || moved.Reused || runs(t, counter) != before+1 {
		t.Fatalf("moved record: reused=%v runs=%d err=%v, want a real build", moved.Reused, runs(t, counter), err)
	}
	// A builder with another key trusts none of it.
	other := *f.b
	other.Key = []byte("another-store-another-key-32-byt")
	res, err := other.Build(ctx, workflows.BuildInput{Transaction: "tx-other", Project: "web"})
	if err != nil || res.Reused {
		t.Fatalf("another key: reused=%v err=%v", res.Reused, err)
	}
}
