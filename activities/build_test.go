package activities_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/artifact"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
	"github.com/relman/relman/workflows"
)

const buildScript = `#!/bin/sh
set -e
mkdir -p out/site/sub
echo "hello from $RELMAN_PROJECT" > out/site/index.html
echo nested > out/site/sub/a.txt
{
  echo "commit=$RELMAN_COMMIT"
  echo "transaction=$RELMAN_TRANSACTION"
  echo "secret=${RELMAN_TEST_SECRET:-unset}"
  echo "extra=${EXTRA:-unset}"
} > out/env.txt
`

type buildFixture struct {
	repo    *gitRepo
	head    string
	store   artifact.Store
	storeAt string
	b       *activities.Builder
}

func newBuildFixture(t *testing.T) buildFixture {
	t.Helper()
	repo := newGitRepo(t)
	repo.write(map[string]string{"build.sh": buildScript, "README": "web\n"})
	head := repo.commit("first")
	store, dir := fileStore(t)
	step := func(argv ...string) []config.Step {
		return []config.Step{{Name: "build", Run: argv, Timeout: time.Minute}}
	}
	cfg := &config.Builder{
		Name:    "builder-1",
		WorkDir: t.TempDir(),
		Projects: map[string]config.BuildBehavior{
			"web": {
				Source: config.Source{Git: repo.dir},
				Steps:  step("sh", "build.sh"),
				Outputs: map[string]config.Output{
					"site": {Path: "out/site"},
					"env":  {Path: "out/env.txt"},
				},
				Env: map[string]string{"EXTRA": "from-config"},
			},
			"broken": {
				Source:  config.Source{Git: repo.dir},
				Steps:   step("sh", "-c", "echo first-line; echo middle; echo the-last-line >&2; exit 3"),
				Outputs: map[string]config.Output{"site": {Path: "out/site"}},
			},
			"noout": {
				Source:  config.Source{Git: repo.dir},
				Steps:   step("true"),
				Outputs: map[string]config.Output{"site": {Path: "does/not/exist"}},
			},
		},
	}
	return buildFixture{repo: repo, head: head, store: store, storeAt: dir,
		b: &activities.Builder{Config: cfg, Store: store, Log: quietLog, Key: []byte("builders-share-this-32-byte-key!")}}
}

func TestBuildSuccess(t *testing.T) {
	t.Setenv("RELMAN_TEST_SECRET", "leaked")
	f := newBuildFixture(t)
	ctx := context.Background()
	res, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-1", Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != f.head {
		t.Errorf("commit = %q, want %q (git rev-parse HEAD)", res.Commit, f.head)
	}
	if res.Builder != "builder-1" {
		t.Errorf("builder = %q", res.Builder)
	}
	if len(res.Steps) != 1 || res.Steps[0].Name != "build" || res.Steps[0].ExitCode != 0 {
		t.Errorf("steps = %+v", res.Steps)
	}
	if len(res.Artifacts) != 2 {
		t.Fatalf("artifacts = %+v, want site and env", res.Artifacts)
	}

	site, ok := res.Artifacts["site"]
	if !ok || site.Format != "tar.gz" || site.Name != "site.tar.gz" {
		t.Fatalf("site artifact = %+v, want format tar.gz", site)
	}
	envRef, ok := res.Artifacts["env"]
	if !ok || envRef.Format != "file" || envRef.Name != "env.txt" {
		t.Fatalf("env artifact = %+v, want format file named env.txt", envRef)
	}
	for name, ref := range res.Artifacts {
		if ref.Key != "sha256/"+ref.SHA256 {
			t.Errorf("%s: key %q does not match sha256 %q", name, ref.Key, ref.SHA256)
		}
		b := readArtifact(t, f.store, artifact.Ref{Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size})
		if got := sha256Hex(b); got != ref.SHA256 {
			t.Errorf("%s: stored bytes hash to %s, ref says %s", name, got, ref.SHA256)
		}
		if int64(len(b)) != ref.Size {
			t.Errorf("%s: stored %d bytes, ref says %d", name, len(b), ref.Size)
		}
	}

	// The directory output extracts to what the step wrote.
	tgz := filepath.Join(t.TempDir(), "site.tar.gz")
	if err := os.WriteFile(tgz, readArtifact(t, f.store, artifact.Ref{Key: site.Key, SHA256: site.SHA256, Size: site.Size}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := archive.Extract(ctx, tgz, out, archive.Limits{}); err != nil {
		t.Fatal(err)
	}
	equalTree(t, readTree(t, out), map[string]string{
		"index.html": "hello from web\n",
		"sub/a.txt":  "nested\n",
	})

	// The step's environment: relman's variables and the config's, never the
	// builder process's own.
	env := string(readArtifact(t, f.store, artifact.Ref{Key: envRef.Key, SHA256: envRef.SHA256, Size: envRef.Size}))
	mustContain(t, env,
		"commit="+f.head+"\n",
		"transaction=tx-1\n",
		"secret=unset\n",
		"extra=from-config\n")

	// The work dir of the build is gone; the log stays.
	if _, err := os.Stat(filepath.Join(f.b.Config.WorkDir, "builds", "tx-1-1")); !os.IsNotExist(err) {
		t.Errorf("build work dir left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.b.Config.WorkDir, "logs", "web", "tx-1-1.log")); err != nil {
		t.Errorf("build log: %v", err)
	}
}

func TestBuildSelectedTargetsOnly(t *testing.T) {
	f := newBuildFixture(t)
	res, err := f.b.Build(context.Background(), workflows.BuildInput{Transaction: "tx-2", Project: "web", Targets: []string{"env"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Artifacts["site"]; ok || len(res.Artifacts) != 1 {
		t.Errorf("artifacts = %+v, want only env", res.Artifacts)
	}
}

func TestBuildBranchAndSameContentDeduplicated(t *testing.T) {
	f := newBuildFixture(t)
	f.repo.git("checkout", "-q", "-b", "feature")
	f.repo.write(map[string]string{"README": "feature\n"})
	feature := f.repo.commit("feature")
	f.repo.git("checkout", "-q", "main")
	ctx := context.Background()
	main, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-main", Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.b.Build(ctx, workflows.BuildInput{Transaction: "tx-br", Project: "web", Source: workflows.Selector{Branch: "feature"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != feature {
		t.Errorf("branch build commit = %s, want %s", res.Commit, feature)
	}
	if main.Commit != f.head {
		t.Errorf("trunk build commit = %s, want %s (the default branch)", main.Commit, f.head)
	}
	// The site does not depend on the commit: packing is deterministic, so
	// both builds name the same object.
	if main.Artifacts["site"].SHA256 != res.Artifacts["site"].SHA256 {
		t.Errorf("identical site outputs packed differently: %s vs %s", main.Artifacts["site"].SHA256, res.Artifacts["site"].SHA256)
	}
}

// A retried build builds the commit its first attempt resolved and
// heartbeated, even when the branch has moved on since: the transaction
// never ships a commit other than the one it named.
func TestBuildRetryBuildsTheFirstAttemptsCommit(t *testing.T) {
	f := newBuildFixture(t)
	f.repo.write(map[string]string{"README": "newer\n"})
	newer := f.repo.commit("newer")
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivity(f.b.Build)
	env.SetHeartbeatDetails(activities.Beat{Phase: "build", Commit: f.head})
	v, err := env.ExecuteActivity(f.b.Build, workflows.BuildInput{Transaction: "tx-retry", Project: "web"})
	require.NoError(t, err)
	var res workflows.BuildResult
	require.NoError(t, v.Get(&res))
	assert.Equal(t, f.head, res.Commit, "the first attempt's commit, not the branch's newer %s", newer)

	fresh := ts.NewTestActivityEnvironment()
	fresh.RegisterActivity(f.b.Build)
	v, err = fresh.ExecuteActivity(f.b.Build, workflows.BuildInput{Transaction: "tx-new", Project: "web"})
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	assert.Equal(t, newer, res.Commit, "a first attempt builds what the branch names now")
}

func TestBuildFailures(t *testing.T) {
	tests := map[string]struct {
		in       workflows.BuildInput
		wantType string
		want     []string
	}{
		"failing step": {
			in:       workflows.BuildInput{Transaction: "tx-f", Project: "broken"},
			wantType: workflows.ErrBuildFailed,
			want:     []string{`"build"`, "status 3", "middle", "the-last-line"},
		},
		"unknown branch": {
			in:       workflows.BuildInput{Transaction: "tx-b", Project: "web", Source: workflows.Selector{Branch: "no-such-branch"}},
			wantType: workflows.ErrSourceFailed,
			want:     []string{"no-such-branch"},
		},
		"bad selector": {
			in:       workflows.BuildInput{Transaction: "tx-s", Project: "web", Source: workflows.Selector{Branch: "-rf"}},
			wantType: workflows.ErrSourceFailed,
		},
		"missing output": {
			in:       workflows.BuildInput{Transaction: "tx-o", Project: "noout"},
			wantType: workflows.ErrBuildFailed,
			want:     []string{`named target "site"`, "not found"},
		},
		"target without output": {
			in:       workflows.BuildInput{Transaction: "tx-t", Project: "web", Targets: []string{"docs"}},
			wantType: workflows.ErrBuildFailed,
			want:     []string{`"docs"`, `"web"`},
		},
		"unknown project": {
			in:       workflows.BuildInput{Transaction: "tx-p", Project: "nope"},
			wantType: workflows.ErrUnknownProject,
			want:     []string{`"nope"`, "builder-1"},
		},
	}
	f := newBuildFixture(t)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := f.b.Build(context.Background(), tc.in)
			app := appError(t, err, tc.wantType, true)
			mustContain(t, app.Message(), tc.want...)
			if tc.wantType == workflows.ErrBuildFailed && strings.Contains(tc.in.Project, "broken") {
				// The tail ends with the last line of output.
				if !strings.HasSuffix(strings.TrimSpace(app.Message()), "the-last-line") {
					t.Errorf("message does not end with the last output line: %q", app.Message())
				}
			}
		})
	}
}

// A transaction id must never make the build's scratch dir (removed before
// and after the build) the work dir itself or its builds/ parent.
func TestBuildLocalOddTransactionKeepsWorkDir(t *testing.T) {
	f := newBuildFixture(t)
	sentinel := filepath.Join(f.b.Config.WorkDir, "builds", "other-build", "keep")
	writeTree(t, filepath.Dir(sentinel), map[string]string{"keep": "x"})
	for _, tx := range []string{"..", ".", ""} {
		if _, err := f.b.BuildLocal(context.Background(), workflows.BuildInput{Transaction: tx, Project: "web"}); err != nil {
			t.Fatalf("BuildLocal(%q): %v", tx, err)
		}
		if _, err := os.Stat(sentinel); err != nil {
			t.Fatalf("BuildLocal(%q) removed another build's files: %v", tx, err)
		}
	}
}
