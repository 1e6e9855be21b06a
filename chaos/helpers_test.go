package chaos

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/relman/relman/harness/testenv"
	"github.com/relman/relman/internal/transaction"
	"github.com/relman/relman/workflows"
)

func timeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// release starts a release and returns its transaction id.
func release(t *testing.T, e *testenv.Env, req workflows.Request) string {
	t.Helper()
	txid, err := e.Release(timeout(t, 30*time.Second), "", req)
	require.NoError(t, err)
	return txid
}

func install(project string) workflows.Request {
	return workflows.Request{Project: project, Action: workflows.ActionInstall, Env: "test", Requester: "chaos"}
}

func atRevision(req workflows.Request, rev string) workflows.Request {
	req.Source = workflows.Selector{Revision: rev}
	return req
}

// who is one line of a who file: which builder ran a slow step, for which
// transaction, as which pid.
type who struct{ builder, txid, pid string }

func whoLines(t *testing.T, path, txid string) []who {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []who
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[1] == txid {
			out = append(out, who{f[0], f[1], f[2]})
		}
	}
	return out
}

// waitWho waits until the slow step of txid has started n times and returns
// the lines.
func waitWho(t *testing.T, path, txid string, n int) []who {
	t.Helper()
	var ws []who
	require.Eventually(t, func() bool {
		ws = whoLines(t, path, txid)
		return len(ws) >= n
	}, 90*time.Second, 50*time.Millisecond, "the slow step of %s did not start %d time(s)", txid, n)
	return ws
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}

// countFiles counts the regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	}))
	return n
}

// buildStarts returns the "started" steps of the Build activity in the
// transaction's timeline (one per recorded start; a retried activity's
// start carries its attempt number and the previous failure).
func buildStarts(t *testing.T, e *testenv.Env, txid string) []transaction.Step {
	t.Helper()
	steps, err := transaction.Timeline(timeout(t, 30*time.Second), e.Client, txid)
	require.NoError(t, err)
	var out []transaction.Step
	for _, s := range steps {
		if s.Activity == workflows.BuildActivity && s.Event == "started" {
			out = append(out, s)
		}
	}
	return out
}

func installRecord(d *workflows.Detail, host string) (workflows.InstallRecord, bool) {
	for _, r := range d.Installs {
		if r.Host == host {
			return r, true
		}
	}
	return workflows.InstallRecord{}, false
}

// testenvCommit commits files to the shared repository.
func testenvCommit(files map[string]string) (string, error) {
	return testenv.Commit(repo, files)
}

// freshInstall is an install of project at a new commit of the shared
// repository, so the build really runs its steps (a builder reuses an
// earlier build of the same commit and build config).
func freshInstall(t *testing.T, project string) workflows.Request {
	t.Helper()
	c, err := testenvCommit(map[string]string{"fresh.txt": fmt.Sprintf("%s %d\n", t.Name(), time.Now().UnixNano())})
	require.NoError(t, err)
	return atRevision(install(project), c)
}
