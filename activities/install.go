package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
	"github.com/relman/relman/workflows"
)

// Installer holds an installer host's activities.
type Installer struct {
	Config *config.Installer
	Store  artifact.Store
	Log    *slog.Logger
	// Behaviors installs named targets by their configured behavior; nil
	// means relman's own (behavior.Builtin).
	Behaviors *behavior.Registry
}

// builtinBehaviors serves installers given no registry; a registry is only
// read once built, so one value serves every activity at once.
var builtinBehaviors = behavior.Builtin()

func (i *Installer) behaviors() *behavior.Registry {
	if i.Behaviors != nil {
		return i.Behaviors
	}
	return builtinBehaviors
}

// Install downloads the named target's artifact, verifies its sha256 and runs
// the target's install behavior. Errors carry the attempt number so the
// transaction's detail can show it.
func (i *Installer) Install(ctx context.Context, in workflows.InstallInput) (workflows.InstallResult, error) {
	attempt := int32(1)
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	res, err := i.install(ctx, in, attempt)
	if err != nil {
		return res, i.classify(ctx, err, attempt)
	}
	return res, nil
}

// target is how this host installs a named target in an environment, and
// the behavior that does it; a target the host lacks, or a behavior it does
// not know, is a non-retryable ErrUnknownTarget.
func (i *Installer) target(env, target string) (config.InstallBehavior, behavior.Behavior, error) {
	ib, ok := i.Config.Environments[env][target]
	if !ok {
		return ib, nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("host %s has no named target %q in environment %q", i.Config.Host, target, env),
			workflows.ErrUnknownTarget, nil)
	}
	b, err := i.behaviors().Lookup(ib.Behavior)
	if err != nil {
		return ib, nil, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrUnknownTarget, nil)
	}
	return ib, b, nil
}

func (i *Installer) install(ctx context.Context, in workflows.InstallInput, attempt int32) (workflows.InstallResult, error) {
	res := workflows.InstallResult{Host: i.Config.Host, Attempt: attempt}
	if err := i.checkOrder(ctx, in.Order, auth.OrderExpect{
		Transaction: in.Transaction, Env: in.Env, Target: in.Target, Action: workflows.OrderInstall, SHA256: in.Artifact.SHA256,
	}); err != nil {
		return res, err
	}
	ib, b, err := i.target(in.Env, in.Target)
	if err != nil {
		return res, err
	}
	res.Behavior = ib.Behavior
	res.Path = ib.Path

	p := startProgress(ctx, "download")
	defer p.end()
	dl := filepath.Join(i.Config.WorkDir, "downloads")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return res, err
	}
	f, err := os.CreateTemp(dl, safeName(in.Transaction+"-"+in.Target)+"-")
	if err != nil {
		return res, err
	}
	defer os.Remove(f.Name())
	if err := i.download(ctx, in.Artifact, f, p); err != nil {
		f.Close()
		return res, err
	}
	if err := f.Close(); err != nil {
		return res, err
	}

	p.set("install " + in.Target)
	prev := liveBefore(ib, b)
	err = b.Install(ctx, behavior.Request{
		Transaction: in.Transaction,
		Project:     in.Project,
		Env:         in.Env,
		Target:      in.Target,
		Resource:    f.Name(),
		Format:      in.Artifact.Format,
		Name:        in.Artifact.Name,
		Config:      ib,
		WorkDir:     i.Config.WorkDir,
		Log:         i.logger().With("transaction", in.Transaction, "target", in.Target),
	})
	if err != nil {
		return res, err
	}
	p.set("health " + in.Target)
	if err := i.afterInstall(ctx, in, ib, b, prev); err != nil {
		return res, err
	}
	i.logger().Info("installed", "transaction", in.Transaction, "target", in.Target, "path", ib.Path, "sha256", in.Artifact.SHA256)
	return res, nil
}

// download streams the artifact to w; the store's reader verifies the
// sha256 and size at the end, before any behavior sees the bytes.
func (i *Installer) download(ctx context.Context, ref workflows.ArtifactRef, w io.Writer, p *progress) error {
	r, err := i.Store.Open(ctx, artifact.Ref{Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size})
	if err != nil {
		return err
	}
	defer r.Close()
	var n atomic.Int64
	cw := &countingWriter{w: w, n: &n, total: ref.Size, p: p}
	_, err = io.Copy(cw, readerWithContext{ctx: ctx, r: r})
	return err
}

func (i *Installer) classify(ctx context.Context, err error, attempt int32) error {
	details := workflows.InstallFailure{Host: i.Config.Host, Attempt: attempt}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return temporal.NewApplicationErrorWithOptions(app.Message(), app.Type(),
			temporal.ApplicationErrorOptions{NonRetryable: app.NonRetryable(), Details: []any{details}})
	}
	if ctx.Err() != nil {
		return err
	}
	kind, nonRetryable := "", false
	var ce *artifact.CorruptError
	switch {
	case errors.As(err, &ce):
		kind, nonRetryable = workflows.ErrChecksum, true
		err = fmt.Errorf("artifact %s is corrupt: expected sha256 %s (%d bytes), got sha256 %s (%d bytes); release again with --rebuild (XML-RPC: rebuild) to build and upload it anew",
			ce.Key, ce.WantSHA256, ce.WantSize, ce.GotSHA256, ce.GotSize)
	case errors.Is(err, artifact.ErrCorrupt):
		kind, nonRetryable = workflows.ErrChecksum, true
	case errors.Is(err, artifact.ErrNotFound):
		kind, nonRetryable = workflows.ErrBadArtifact, true
	case errors.Is(err, archive.ErrUnsafe), errors.Is(err, behavior.ErrWrongFormat):
		kind, nonRetryable = workflows.ErrBadArtifact, true
	case errors.Is(err, artifact.ErrRefused):
		// Wrong keys or a missing bucket: only an operator can fix that.
		kind, nonRetryable = workflows.ErrInstallFailed, true
	}
	if kind == "" {
		kind = workflows.ErrInstallFailed
	}
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf("host %s: %v", i.Config.Host, err), kind,
		temporal.ApplicationErrorOptions{NonRetryable: nonRetryable, Details: []any{details}})
}

func (i *Installer) logger() *slog.Logger {
	if i.Log != nil {
		return i.Log
	}
	return slog.Default()
}

type countingWriter struct {
	w     io.Writer
	n     *atomic.Int64
	total int64
	p     *progress
	last  int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	v := c.n.Add(int64(n))
	if v-c.last >= 8<<20 {
		c.last = v
		c.p.set(fmt.Sprintf("download %d/%d bytes", v, c.total))
	}
	return n, err
}

// readerWithContext stops a long copy when the activity is cancelled.
type readerWithContext struct {
	ctx context.Context
	r   io.Reader
}

func (r readerWithContext) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(b)
}
