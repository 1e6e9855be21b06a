package source

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Git checks out from a git repository through a bare cache clone, so the second build
// of a project only fetches what changed.
type Git struct {
	// Repo is the project's repository: a url or a local path.
	Repo string
	// CacheDir holds the cache clones (one per repository url) and git's private HOME.
	CacheDir string
	// AllowedURLPrefixes lists where a url selector may point; empty allows only Repo.
	AllowedURLPrefixes []string
}

var gitURLSchemes = []string{"http", "https", "ssh", "git", "file"}

// gitAllowProtocol keeps git to the transports we vetted: "ext::" would run a command.
const gitAllowProtocol = "file:git:http:https:ssh"

// Checkout puts a plain tree of the selected commit into dest, which must be empty or
// missing.
func (g *Git) Checkout(ctx context.Context, sel Selector, dest string) (Checkout, error) {
	r, err := g.Resolve(ctx, sel)
	if err != nil {
		return Checkout{}, err
	}
	return r.Checkout(ctx, dest)
}

// Resolved is a selector turned into a commit the cache holds, ready to be
// checked out: a build that finds the commit built before (build once)
// needs no tree at all.
type Resolved struct {
	Commit string
	g      *Git
	env    []string
	cache  string
}

// Resolve finds the commit a selector names and makes sure the cache holds
// it. It asks the remote for the ref (one ls-remote) and fetches only when
// the cache lacks that commit; a revision the cache has already needs no
// network at all, since a commit never changes.
func (g *Git) Resolve(ctx context.Context, sel Selector) (Resolved, error) {
	if err := ValidateSelector(sel); err != nil {
		return Resolved{}, err
	}
	if sel.Revision != "" && !isGitRevision(sel.Revision) {
		return Resolved{}, fmt.Errorf("%w: revision %q: want 4 to 64 hex digits", ErrBadSelector, sel.Revision)
	}
	repo := g.Repo
	if sel.URL != "" {
		if err := checkURL(sel.URL, gitURLSchemes, g.AllowedURLPrefixes, g.Repo); err != nil {
			return Resolved{}, err
		}
		repo = sel.URL
	}
	if repo == "" {
		return Resolved{}, errors.New("git: no repository configured")
	}
	if g.CacheDir == "" {
		return Resolved{}, errors.New("git: no cache directory configured")
	}
	cacheRoot, err := filepath.Abs(g.CacheDir)
	if err != nil {
		return Resolved{}, fmt.Errorf("git cache: %w", err)
	}
	env, err := gitEnv(cacheRoot)
	if err != nil {
		return Resolved{}, err
	}
	cache := filepath.Join(cacheRoot, cacheKey(repo)+".git")
	l := lockFor(cache)
	if err := l.lock(ctx); err != nil {
		return Resolved{}, fmt.Errorf("git cache lock: %w", err)
	}
	commit, err := resolveCached(ctx, env, cache, repo, sel)
	l.unlock()
	if err != nil {
		return Resolved{}, err
	}
	return Resolved{Commit: commit, g: g, env: env, cache: cache}, nil
}

// Checkout writes the resolved commit's tree into dest, which must be empty
// or missing.
func (r Resolved) Checkout(ctx context.Context, dest string) (Checkout, error) {
	dest, err := prepareDest(dest)
	if err != nil {
		return Checkout{}, err
	}
	// A fetch may run meanwhile; it can move refs but never removes the
	// objects of a commit we resolved (gc keeps recent objects).
	l := lockFor(r.cache)
	if err := l.rlock(ctx); err != nil {
		return Checkout{}, fmt.Errorf("git cache lock: %w", err)
	}
	defer l.runlock()
	if err := checkoutTree(ctx, r.env, r.cache, r.Commit, dest); err != nil {
		clearDir(dest)
		return Checkout{}, err
	}
	return Checkout{Dir: dest, Commit: r.Commit, Describe: describeGit(ctx, r.env, r.cache, r.Commit)}, nil
}

// resolveCached resolves sel against the remote and the cache, fetching
// only what the cache lacks. Callers hold the cache lock exclusively.
func resolveCached(ctx context.Context, env []string, cache, repo string, sel Selector) (string, error) {
	fresh := false
	if _, err := os.Stat(filepath.Join(cache, "HEAD")); err != nil {
		if _, err := git(ctx, env, "init", "-c", "init.defaultBranch=main", "init", "--quiet", "--bare", "--", cache); err != nil {
			return "", fmt.Errorf("create cache: %w", err)
		}
		fresh = true
	}
	if sel.Revision != "" && !fresh {
		// A commit is the same forever: one the cache has needs no fetch.
		if commit, err := resolveGit(ctx, env, cache, sel); err == nil {
			return commit, nil
		}
	}
	if sel.Revision == "" && !fresh {
		if commit, ok := remoteCommit(ctx, env, repo, sel); ok && hasCommit(ctx, env, cache, commit) {
			return commit, nil
		}
	}
	if err := updateCache(ctx, env, cache, repo); err != nil {
		return "", err
	}
	return resolveGit(ctx, env, cache, sel)
}

// remoteCommit asks the remote which commit sel's ref names (the default
// branch, a branch, or a tag peeled to its commit) in one ls-remote. ok is
// false when it cannot tell; the caller then fetches and resolves in the
// cache, which reports what is wrong.
func remoteCommit(ctx context.Context, env []string, repo string, sel Selector) (string, bool) {
	var refs []string
	switch {
	case sel.Branch != "":
		if validRefName("branch", sel.Branch) != nil {
			return "", false
		}
		refs = []string{"refs/heads/" + sel.Branch}
	case sel.Tag != "":
		if validRefName("tag", sel.Tag) != nil {
			return "", false
		}
		refs = []string{"refs/tags/" + sel.Tag, "refs/tags/" + sel.Tag + "^{}"}
	default:
		refs = []string{"HEAD"}
	}
	out, err := git(ctx, env, "ls-remote", append([]string{"ls-remote", "--", repo}, refs...)...)
	if err != nil {
		return "", false
	}
	found := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, ref, ok := strings.Cut(sc.Text(), "\t")
		if ok && isGitRevision(sha) && (len(sha) == 40 || len(sha) == 64) {
			found[ref] = sha
		}
	}
	if sel.Tag != "" {
		// An annotated tag's own object is not a commit: take the peeled one.
		if c, ok := found["refs/tags/"+sel.Tag+"^{}"]; ok {
			return c, true
		}
	}
	c, ok := found[refs[0]]
	return c, ok
}

// hasCommit reports whether the cache holds commit.
func hasCommit(ctx context.Context, env []string, cache, commit string) bool {
	_, err := git(ctx, env, "cat-file", "--git-dir="+cache, "cat-file", "-e", "--end-of-options", commit+"^{commit}")
	return err == nil
}

// cacheKey names a cache by the repository url so a url selector never shares (and
// never poisons) the project's own cache.
func cacheKey(repo string) string {
	sum := sha256.Sum256([]byte(repo))
	return hex.EncodeToString(sum[:])
}

// gitEnv isolates git from the machine's and user's configuration, which could set
// hooks, credential helpers, url rewrites or filters that change what a build sees.
func gitEnv(cacheRoot string) ([]string, error) {
	home := filepath.Join(cacheRoot, ".home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("git home: %w", err)
	}
	env := baseEnv(func(k string) bool {
		if k == "GIT_SSH_COMMAND" || k == "GIT_SSH" || k == "GIT_SSH_VARIANT" {
			return false
		}
		return strings.HasPrefix(k, "GIT_") || k == "HOME" || k == "XDG_CONFIG_HOME" || k == "LC_ALL"
	})
	env = append(env,
		"HOME="+home,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ALLOW_PROTOCOL="+gitAllowProtocol,
		"LC_ALL=C",
	)
	if os.Getenv("GIT_SSH_COMMAND") == "" && os.Getenv("GIT_SSH") == "" {
		// Without BatchMode ssh would wait forever on a host key or passphrase prompt.
		env = append(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	return env, nil
}

func git(ctx context.Context, env []string, op string, args ...string) ([]byte, error) {
	return run(ctx, invocation{op: "git " + op, name: "git", args: args, env: env})
}

// updateCache creates the bare cache if needed and mirrors the remote's branches and
// tags into it. Callers hold the cache lock exclusively.
func updateCache(ctx context.Context, env []string, cache, repo string) error {
	if _, err := os.Stat(filepath.Join(cache, "HEAD")); err != nil {
		if _, err := git(ctx, env, "init", "-c", "init.defaultBranch=main", "init", "--quiet", "--bare", "--", cache); err != nil {
			return fmt.Errorf("create cache: %w", err)
		}
	}
	if _, err := git(ctx, env, "fetch", "--git-dir="+cache, "fetch", "--quiet", "--prune", "--no-tags",
		"--no-write-fetch-head", "--", repo,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	return followRemoteHead(ctx, env, cache, repo)
}

// followRemoteHead points the cache's HEAD at the remote's default branch, because
// fetch does not update it and trunk must follow a remote that renames its default.
func followRemoteHead(ctx context.Context, env []string, cache, repo string) error {
	out, err := git(ctx, env, "ls-remote", "--git-dir="+cache, "ls-remote", "--symref", "--", repo, "HEAD")
	if err != nil {
		return fmt.Errorf("find default branch: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		target, ok := strings.CutPrefix(sc.Text(), "ref: ")
		if !ok {
			continue
		}
		target, _, _ = strings.Cut(target, "\t")
		branch, ok := strings.CutPrefix(target, "refs/heads/")
		if !ok || validRefName("branch", branch) != nil {
			return nil
		}
		if _, err := git(ctx, env, "symbolic-ref", "--git-dir="+cache, "symbolic-ref", "HEAD", target); err != nil {
			return fmt.Errorf("set default branch: %w", err)
		}
		return nil
	}
	// No symref advertised (an old server or a detached HEAD): keep what HEAD says.
	return nil
}

// resolveGit turns a selector into a full commit sha. Branches and tags are spelled as
// full ref names so a branch can never be mistaken for a tag of the same name.
func resolveGit(ctx context.Context, env []string, cache string, sel Selector) (string, error) {
	var what, ref string
	switch {
	case sel.Branch != "":
		what, ref = "branch "+sel.Branch, "refs/heads/"+sel.Branch
	case sel.Tag != "":
		what, ref = "tag "+sel.Tag, "refs/tags/"+sel.Tag
	case sel.Revision != "":
		what, ref = "revision "+sel.Revision, strings.ToLower(sel.Revision)
	default:
		what, ref = "default branch", "HEAD"
	}
	out, err := git(ctx, env, "rev-parse", "--git-dir="+cache, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		if exitCode(err) == 1 {
			return "", fmt.Errorf("%w: %s", ErrNotFound, what)
		}
		return "", fmt.Errorf("resolve %s: %w", what, err)
	}
	commit := strings.TrimSpace(string(out))
	if len(commit) != 40 && len(commit) != 64 || !isGitRevision(commit) {
		return "", fmt.Errorf("resolve %s: unexpected output %q", what, commit)
	}
	// A ref whose name looks like hex wins over an abbreviated sha in git's lookup;
	// the revision the user asked for must be the commit we build.
	if sel.Revision != "" && !strings.HasPrefix(commit, ref) {
		return "", fmt.Errorf("%w: %s (it names a ref, not a commit)", ErrNotFound, what)
	}
	return commit, nil
}

// checkoutTree writes the commit's files into dest. It uses a private index file so
// concurrent checkouts from one cache never contend for the cache's index, and
// read-tree + checkout-index so dest never gets a .git and HEAD never moves.
func checkoutTree(ctx context.Context, env []string, cache, commit, dest string) error {
	tmp, err := os.MkdirTemp("", "relman-git-index-")
	if err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	defer os.RemoveAll(tmp)
	env = append(env[:len(env):len(env)], "GIT_INDEX_FILE="+filepath.Join(tmp, "index"))
	if _, err := git(ctx, env, "read-tree", "--git-dir="+cache, "--work-tree="+dest, "read-tree", "--end-of-options", commit); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	if _, err := git(ctx, env, "checkout-index", "--git-dir="+cache, "--work-tree="+dest, "checkout-index", "--all", "--force"); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	return nil
}

// describeGit is best effort: a name for humans must not fail a build.
func describeGit(ctx context.Context, env []string, cache, commit string) string {
	out, err := git(ctx, env, "describe", "--git-dir="+cache, "describe", "--tags", "--always", "--abbrev=12", "--end-of-options", commit)
	if err != nil {
		return commit[:12]
	}
	return strings.TrimSpace(string(out))
}
