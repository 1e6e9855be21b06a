package source

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// gitRepo is a real repository made for a test; commands run isolated from the
// developer's git config so the test behaves the same everywhere.
type gitRepo struct {
	t   *testing.T
	dir string
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+r.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *gitRepo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *gitRepo) commit(msg string) string {
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

type fixture struct {
	repo                         *gitRepo
	first, second, feature, tag1 string
}

// newFixture: main has two commits, feature has a different file, v1 tags the first
// commit (annotated, so peeling to the commit is exercised).
func newFixture(t *testing.T) fixture {
	t.Helper()
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "upstream")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q")
	r.write("README", "first\n")
	first := r.commit("first")
	r.git("tag", "-a", "-m", "version 1", "v1")
	r.write("README", "second\n")
	r.write("src/main.txt", "main\n")
	second := r.commit("second")
	r.git("checkout", "-q", "-b", "feature")
	r.write("feature.txt", "feature\n")
	feature := r.commit("feature")
	r.git("checkout", "-q", "main")
	return fixture{repo: r, first: first, second: second, feature: feature, tag1: first}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestGitCheckout(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: filepath.Join(t.TempDir(), "cache")}
	ctx := context.Background()

	cases := []struct {
		name       string
		sel        Selector
		commit     string
		readme     string
		hasFeature bool
	}{
		{"default", Selector{}, f.second, "second\n", false},
		{"trunk", Selector{Trunk: true}, f.second, "second\n", false},
		{"branch", Selector{Branch: "feature"}, f.feature, "second\n", true},
		{"tag", Selector{Tag: "v1"}, f.first, "first\n", false},
		{"full sha", Selector{Revision: f.first}, f.first, "first\n", false},
		{"short sha", Selector{Revision: f.feature[:8]}, f.feature, "second\n", true},
		{"upper-case sha", Selector{Revision: strings.ToUpper(f.second[:10])}, f.second, "second\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "src")
			co, err := g.Checkout(ctx, tc.sel, dest)
			if err != nil {
				t.Fatal(err)
			}
			if co.Commit != tc.commit {
				t.Errorf("Commit = %s, want %s", co.Commit, tc.commit)
			}
			if co.Dir != dest {
				t.Errorf("Dir = %s, want %s", co.Dir, dest)
			}
			if co.Describe == "" {
				t.Error("Describe is empty")
			}
			if got := readFile(t, filepath.Join(dest, "README")); got != tc.readme {
				t.Errorf("README = %q, want %q", got, tc.readme)
			}
			if got := exists(filepath.Join(dest, "feature.txt")); got != tc.hasFeature {
				t.Errorf("feature.txt present = %v, want %v", got, tc.hasFeature)
			}
			if exists(filepath.Join(dest, ".git")) {
				t.Error("dest contains .git")
			}
		})
	}
}

func TestGitCheckoutDescribe(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	co, err := g.Checkout(context.Background(), Selector{Tag: "v1"}, filepath.Join(t.TempDir(), "src"))
	if err != nil {
		t.Fatal(err)
	}
	if co.Describe != "v1" {
		t.Errorf("Describe = %q, want v1", co.Describe)
	}
}

func TestGitSecondCheckoutFetches(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	g := &Git{Repo: f.repo.dir, CacheDir: cache}
	ctx := context.Background()
	if _, err := g.Checkout(ctx, Selector{}, filepath.Join(t.TempDir(), "a")); err != nil {
		t.Fatal(err)
	}

	f.repo.write("README", "third\n")
	third := f.repo.commit("third")
	f.repo.git("branch", "-D", "feature")

	dest := filepath.Join(t.TempDir(), "b")
	co, err := g.Checkout(ctx, Selector{Trunk: true}, dest)
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != third {
		t.Errorf("Commit = %s, want the new commit %s", co.Commit, third)
	}
	if got := readFile(t, filepath.Join(dest, "README")); got != "third\n" {
		t.Errorf("README = %q", got)
	}
	// One cache, reused; the deleted branch is pruned from it.
	entries, _ := filepath.Glob(filepath.Join(cache, "*.git"))
	if len(entries) != 1 {
		t.Errorf("cache clones = %v, want exactly one", entries)
	}
	_, err = g.Checkout(ctx, Selector{Branch: "feature"}, filepath.Join(t.TempDir(), "c"))
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted branch: err = %v, want ErrNotFound", err)
	}
}

func TestGitFollowsDefaultBranch(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	ctx := context.Background()
	if _, err := g.Checkout(ctx, Selector{}, filepath.Join(t.TempDir(), "a")); err != nil {
		t.Fatal(err)
	}
	f.repo.git("symbolic-ref", "HEAD", "refs/heads/feature")
	co, err := g.Checkout(ctx, Selector{}, filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != f.feature {
		t.Errorf("Commit = %s, want feature's %s", co.Commit, f.feature)
	}
}

func TestGitConcurrentCheckouts(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	sels := []Selector{{}, {Branch: "feature"}, {Tag: "v1"}, {Revision: f.second}, {}, {Branch: "feature"}}
	var wg sync.WaitGroup
	errs := make([]error, len(sels))
	for i, sel := range sels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = g.Checkout(context.Background(), sel, filepath.Join(t.TempDir(), "src"))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("checkout %d (%+v): %v", i, sels[i], err)
		}
	}
}

func TestGitNotFound(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	for _, sel := range []Selector{
		{Branch: "nope"},
		{Tag: "v9"},
		{Branch: "v1"}, // a tag is not a branch
		{Revision: "deadbeefdeadbeef"},
	} {
		dest := filepath.Join(t.TempDir(), "src")
		_, err := g.Checkout(context.Background(), sel, dest)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%+v: err = %v, want ErrNotFound", sel, err)
		}
		if entries, _ := os.ReadDir(dest); len(entries) != 0 {
			t.Errorf("%+v: dest not left empty: %v", sel, entries)
		}
	}
}

func TestGitBadSelector(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	for _, sel := range []Selector{
		{Branch: "--upload-pack=evil"},
		{Branch: "-x"},
		{Branch: "a..b"},
		{Branch: "foo bar"},
		{Tag: "--output=/tmp/x"},
		{Branch: "x:y"},
		{Branch: "main", Tag: "v1"},
		{Trunk: true, Branch: "main"},
		{Revision: "12"},
		{Revision: "--all"},
		{Revision: "HEAD~1"},
		{URL: "https://evil.example.com/repo.git"},
		{URL: "ext::sh -c touch% /tmp/pwned"},
		{URL: "file://" + f.repo.dir + "/../other"},
	} {
		_, err := g.Checkout(context.Background(), sel, filepath.Join(t.TempDir(), "src"))
		if !errors.Is(err, ErrBadSelector) {
			t.Errorf("%+v: err = %v, want ErrBadSelector", sel, err)
		}
	}
}

func TestGitURLSelector(t *testing.T) {
	f := newFixture(t)
	other := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "other")}
	if err := os.MkdirAll(other.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	other.git("init", "-q")
	other.write("OTHER", "other\n")
	otherCommit := other.commit("other")

	otherURL := "file://" + other.dir
	cache := t.TempDir()
	g := &Git{Repo: f.repo.dir, CacheDir: cache, AllowedURLPrefixes: []string{"file://" + filepath.Dir(other.dir)}}
	dest := filepath.Join(t.TempDir(), "src")
	co, err := g.Checkout(context.Background(), Selector{URL: otherURL}, dest)
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != otherCommit || readFile(t, filepath.Join(dest, "OTHER")) != "other\n" {
		t.Errorf("got %+v", co)
	}
	if !exists(filepath.Join(cache, cacheKey(otherURL)+".git")) {
		t.Error("url selector did not get its own cache keyed by the url")
	}

	// The prefix must end on a path boundary.
	g.AllowedURLPrefixes = []string{"file://" + other.dir[:len(other.dir)-2]}
	if _, err := g.Checkout(context.Background(), Selector{URL: otherURL}, filepath.Join(t.TempDir(), "src")); !errors.Is(err, ErrBadSelector) {
		t.Errorf("partial-segment prefix: err = %v, want ErrBadSelector", err)
	}
	// With no prefixes, only the configured repository itself is allowed.
	g.AllowedURLPrefixes = nil
	if _, err := g.Checkout(context.Background(), Selector{URL: otherURL}, filepath.Join(t.TempDir(), "src")); !errors.Is(err, ErrBadSelector) {
		t.Errorf("no prefixes: err = %v, want ErrBadSelector", err)
	}
	g.Repo = otherURL
	if _, err := g.Checkout(context.Background(), Selector{URL: otherURL}, filepath.Join(t.TempDir(), "src")); err != nil {
		t.Errorf("own repo as url: %v", err)
	}
}

func TestGitDestMustBeEmpty(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "junk"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Checkout(context.Background(), Selector{}, dest); err == nil {
		t.Fatal("checkout into a non-empty dir succeeded")
	}
	// An existing empty directory is fine.
	if _, err := g.Checkout(context.Background(), Selector{}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestGitFetchErrorCarriesStderr(t *testing.T) {
	g := &Git{Repo: filepath.Join(t.TempDir(), "missing"), CacheDir: t.TempDir()}
	_, err := g.Checkout(context.Background(), Selector{}, filepath.Join(t.TempDir(), "src"))
	if err == nil {
		t.Fatal("fetch from a missing repository succeeded")
	}
	t.Logf("missing repository: %v", err)
	if !strings.Contains(err.Error(), "fetch") || !strings.Contains(err.Error(), "does not appear to be a git repository") {
		t.Errorf("error lacks git's explanation: %v", err)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadSelector) {
		t.Errorf("a fetch failure must stay retryable: %v", err)
	}
}

func TestGitCanceled(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Checkout(ctx, Selector{}, filepath.Join(t.TempDir(), "src")); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// A build that may reuse an earlier one needs the commit, not the tree:
// Resolve finds it, and a revision the cache holds needs no remote at all
// (commits never change), while trunk, a branch or a tag is asked of the
// remote and fetched only when the cache lacks its commit.
func TestGitResolveFetchesOnlyWhatIsMissing(t *testing.T) {
	f := newFixture(t)
	g := &Git{Repo: f.repo.dir, CacheDir: t.TempDir()}
	ctx := context.Background()
	for name, tc := range map[string]struct {
		sel  Selector
		want string
	}{
		"trunk":    {Selector{}, f.second},
		"branch":   {Selector{Branch: "feature"}, f.feature},
		"tag":      {Selector{Tag: "v1"}, f.tag1},
		"revision": {Selector{Revision: f.first[:12]}, f.first},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := g.Resolve(ctx, tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			if r.Commit != tc.want {
				t.Errorf("Commit = %s, want %s", r.Commit, tc.want)
			}
		})
	}
	// A new commit on trunk is seen at once: the remote is asked.
	f.repo.write("README", "third\n")
	third := f.repo.commit("third")
	r, err := g.Resolve(ctx, Selector{Trunk: true})
	if err != nil || r.Commit != third {
		t.Fatalf("trunk after a new commit = %s, %v; want %s", r.Commit, err, third)
	}
	co, err := r.Checkout(ctx, filepath.Join(t.TempDir(), "tree"))
	if err != nil || readFile(t, filepath.Join(co.Dir, "README")) != "third\n" {
		t.Fatalf("checkout of the resolved commit: %v", err)
	}
	// With the remote gone, a revision the cache holds still resolves.
	if err := os.Rename(f.repo.dir, f.repo.dir+".gone"); err != nil {
		t.Fatal(err)
	}
	if r, err := g.Resolve(ctx, Selector{Revision: f.feature}); err != nil || r.Commit != f.feature {
		t.Errorf("cached revision without the remote = %s, %v", r.Commit, err)
	}
	if _, err := g.Resolve(ctx, Selector{Trunk: true}); err == nil {
		t.Error("trunk resolved without the remote")
	}
}
