package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
	"github.com/relman/relman/internal/buildstep"
	"github.com/relman/relman/internal/source"
	"github.com/relman/relman/workflows"
)

// Builder holds the builder's activities.
type Builder struct {
	Config *config.Builder
	Store  artifact.Store
	Log    *slog.Logger
	// Key signs and verifies the build records in the store (build once);
	// without one no build is reused.
	Key []byte
}

// Build checks out the project's source at the selector, runs its steps and
// streams each named target's output into the artifact store.
func (b *Builder) Build(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
	attempt := int32(1)
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	p := startProgress(ctx, "checkout")
	defer p.end()
	res, err := b.build(ctx, in, fmt.Sprintf("%s-%d", in.Transaction, attempt), p, true)
	if err != nil {
		return res, classifyBuildError(ctx, err)
	}
	return res, nil
}

// BuildLocal is the builder's build without Temporal (the seed's
// template_builder.py): outputs are written as files under outDir.
func (b *Builder) BuildLocal(ctx context.Context, in workflows.BuildInput) (workflows.BuildResult, error) {
	p := startProgress(ctx, "checkout")
	defer p.end()
	return b.build(ctx, in, in.Transaction, p, false)
}

// build builds; with once, a build of the same commit and build config
// already in the store is returned instead unless in.Rebuild, and a new
// build is remembered (see buildonce.go).
func (b *Builder) build(ctx context.Context, in workflows.BuildInput, runID string, p *progress, once bool) (workflows.BuildResult, error) {
	res := workflows.BuildResult{Builder: b.Config.Name, Artifacts: map[string]workflows.ArtifactRef{}}
	bb, ok := b.Config.Projects[in.Project]
	if !ok {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("builder %s has no build behavior for project %q", b.Config.Name, in.Project), workflows.ErrUnknownProject, nil)
	}
	work := filepath.Join(b.Config.WorkDir, "builds", safeName(runID))
	if err := os.RemoveAll(work); err != nil {
		return res, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return res, fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(work)
	src := filepath.Join(work, "src")

	sel := in.Source
	if pinned := lastCommit(ctx); pinned != "" && bb.Source.Git != "" {
		// A retry builds the commit the first attempt resolved and
		// reported, not whatever the branch names by now.
		sel = workflows.Selector{Revision: pinned, URL: in.Source.URL}
		b.logger().Info("retry builds the commit an earlier attempt resolved", "project", in.Project, "source", in.Source.String(), "commit", pinned)
	}
	commit, checkout, err := b.resolve(ctx, in.Project, bb.Source, sel, src)
	if err != nil {
		return res, err
	}
	res.Commit = commit
	p.setCommit(commit)
	var indexKey string
	if once {
		indexKey = buildIndexKey(in.Project, commit, bb, in.Source)
		if !in.Rebuild {
			// A build found needs no tree: nothing is checked out.
			if r, ok := b.reuse(ctx, indexKey, in, bb, commit); ok {
				return r, nil
			}
		}
	}
	co, err := checkout()
	if err != nil {
		return res, err
	}
	b.logger().Info("checked out", "project", in.Project, "source", in.Source.String(), "commit", co.Commit)

	logDir := filepath.Join(b.Config.WorkDir, "logs", in.Project)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return res, err
	}
	runner := &buildstep.Runner{LogPath: filepath.Join(logDir, safeName(runID)+".log")}
	for i, st := range bb.Steps {
		p.set("step " + st.Name)
		env := map[string]string{
			"RELMAN_TRANSACTION": in.Transaction,
			"RELMAN_PROJECT":     in.Project,
			"RELMAN_COMMIT":      co.Commit,
			"RELMAN_SOURCE":      in.Source.String(),
			"RELMAN_SOURCE_DIR":  src,
			"RELMAN_STEP":        strconv.Itoa(i + 1),
			"HOME":               work,
		}
		for k, v := range bb.Env {
			env[k] = v
		}
		dir := src
		if st.Dir != "" {
			dir = filepath.Join(src, st.Dir)
		}
		r, err := runner.Run(ctx, buildstep.Step{Name: st.Name, Argv: st.Run, Dir: dir, Timeout: st.Timeout, Env: env})
		res.Steps = append(res.Steps, workflows.StepResult{Name: st.Name, ExitCode: r.ExitCode, Duration: r.Duration})
		if err != nil {
			return res, err
		}
	}

	targets := in.Targets
	if len(targets) == 0 {
		for t := range bb.Outputs {
			targets = append(targets, t)
		}
		sort.Strings(targets)
	}
	for _, t := range targets {
		out, ok := bb.Outputs[t]
		if !ok {
			return res, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("builder %s has no output configured for named target %q of project %q", b.Config.Name, t, in.Project),
				workflows.ErrBuildFailed, nil)
		}
		p.set("package " + t)
		ref, err := b.pack(ctx, filepath.Join(src, out.Path), filepath.Join(work, "pkg-"+t+".tar.gz"), t)
		if err != nil {
			return res, err
		}
		res.Artifacts[t] = ref
	}
	if indexKey != "" {
		b.remember(ctx, indexKey, in, res)
	}
	return res, nil
}

// resolve finds the commit a selector names and returns how to write its
// tree into dest. For git the commit is known first (one ls-remote, a fetch
// only of what the cache lacks), so a build that reuses an earlier one
// checks nothing out; svn knows the revision once it has checked out.
func (b *Builder) resolve(ctx context.Context, project string, s config.Source, sel workflows.Selector, dest string) (string, func() (source.Checkout, error), error) {
	ss := source.Selector{Trunk: sel.Trunk, Branch: sel.Branch, Tag: sel.Tag, Revision: sel.Revision, URL: sel.URL}
	if s.Svn != "" {
		sv := &source.Svn{Root: s.Svn, Username: s.SvnUsername, Password: s.SvnPassword, AllowedURLPrefixes: s.AllowedURLPrefixes}
		co, err := sv.Checkout(ctx, ss, dest)
		return co.Commit, func() (source.Checkout, error) { return co, nil }, err
	}
	g := &source.Git{Repo: s.Git, CacheDir: filepath.Join(b.Config.WorkDir, "cache", project), AllowedURLPrefixes: s.AllowedURLPrefixes}
	r, err := g.Resolve(ctx, ss)
	return r.Commit, func() (source.Checkout, error) { return r.Checkout(ctx, dest) }, err
}

// pack streams one output into the store: a directory as a tar.gz written
// to a local file first (its hash is known only at the end), a file as it is.
func (b *Builder) pack(ctx context.Context, path, tmp, target string) (workflows.ArtifactRef, error) {
	var ref workflows.ArtifactRef
	fi, err := os.Stat(path)
	if err != nil {
		return ref, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("output of named target %q not found after the build: %v", target, err), workflows.ErrBuildFailed, nil)
	}
	upload := path
	ref.Format = "file"
	ref.Name = filepath.Base(path)
	if fi.IsDir() {
		f, err := os.Create(tmp)
		if err != nil {
			return ref, err
		}
		if err := archive.WriteTarGz(ctx, f, path); err != nil {
			f.Close()
			return ref, fmt.Errorf("package %s: %w", target, err)
		}
		if err := f.Close(); err != nil {
			return ref, err
		}
		upload = tmp
		ref.Format = "tar.gz"
		ref.Name = target + ".tar.gz"
	}
	r, err := b.Store.PutFile(ctx, upload)
	if err != nil {
		return ref, fmt.Errorf("upload %s: %w", target, err)
	}
	ref.Key, ref.SHA256, ref.Size = r.Key, r.SHA256, r.Size
	return ref, nil
}

func (b *Builder) logger() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.Default()
}

// classifyBuildError makes errors retrying cannot fix non-retryable with a
// typed kind; anything else (a network blip, a killed checkout) is retried.
func classifyBuildError(ctx context.Context, err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return err
	}
	if ctx.Err() != nil {
		return err
	}
	var se *buildstep.StepError
	if errors.As(err, &se) {
		if se.Canceled {
			return err
		}
		return temporal.NewNonRetryableApplicationError(se.Error(), workflows.ErrBuildFailed, nil)
	}
	if errors.Is(err, source.ErrBadSelector) || errors.Is(err, source.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrSourceFailed, nil)
	}
	if errors.Is(err, archive.ErrUnsafe) {
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrBuildFailed, nil)
	}
	if errors.Is(err, artifact.ErrRefused) {
		// Wrong keys or a missing bucket: only an operator can fix that.
		return temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrBuildFailed, nil)
	}
	return err
}

// safeName keeps ids usable as file names: one path component, never "."
// or ".." (a scratch dir named so would be its parent, removed whole).
func safeName(s string) string {
	if strings.Trim(s, ".") == "" {
		return "_" + s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
