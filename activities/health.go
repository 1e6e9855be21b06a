package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/buildstep"
	"github.com/relman/relman/workflows"
)

// HealthEnv is the environment of a health check command: the same
// RELMAN_* variables the command behavior gets.
func healthEnv(in workflows.InstallInput, ib config.InstallBehavior) map[string]string {
	return map[string]string{
		"RELMAN_TARGET":      in.Target,
		"RELMAN_ENV":         in.Env,
		"RELMAN_TRANSACTION": in.Transaction,
		"RELMAN_PROJECT":     in.Project,
		"RELMAN_PATH":        ib.Path,
		"RELMAN_FORMAT":      in.Artifact.Format,
		"RELMAN_SHA256":      in.Artifact.SHA256,
	}
}

// checkHealth runs the target's health check: up to h.Tries() tries,
// h.Interval apart, each bounded by h.Timeout. It returns the last try's
// error when none passed.
func (i *Installer) checkHealth(ctx context.Context, in workflows.InstallInput, ib config.InstallBehavior, b behavior.Behavior) error {
	h := ib.Health
	if h == nil {
		return nil
	}
	tries := h.Tries()
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = config.DefaultHealthTimeout
	}
	var err error
	for try := 1; try <= tries; try++ {
		err = i.healthOnce(ctx, in, ib, b, timeout)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		i.logger().Warn("health check failed", "transaction", in.Transaction, "target", in.Target, "try", try, "of", tries, "error", err)
		if try < tries {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(h.Interval):
			}
		}
	}
	return fmt.Errorf("health check of %s failed %d time(s): %w", in.Target, tries, err)
}

func (i *Installer) healthOnce(ctx context.Context, in workflows.InstallInput, ib config.InstallBehavior, b behavior.Behavior, timeout time.Duration) error {
	h := ib.Health
	if len(h.Command) > 0 {
		logDir := filepath.Join(i.Config.WorkDir, "logs")
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return err
		}
		// HOME in the work dir: a check must leave nothing beside the
		// install it checks.
		r := &buildstep.Runner{
			LogPath: filepath.Join(logDir, safeName(in.Transaction+"-"+in.Target)+"-health.log"),
			Home:    filepath.Join(i.Config.WorkDir, "home"),
		}
		_, err := r.Run(ctx, buildstep.Step{
			Name:    "health " + in.Target,
			Argv:    h.Command,
			Dir:     healthDir(ib, b, i.Config.WorkDir),
			Timeout: timeout,
			Env:     healthEnv(in, ib),
		})
		if err != nil {
			return err
		}
	}
	if h.HTTP != "" {
		return httpHealthy(ctx, h.HTTP, timeout)
	}
	return nil
}

// healthDir is where the check command runs: the live install when the
// behavior knows it, the installed directory, or the work dir for anything
// else.
func healthDir(ib config.InstallBehavior, b behavior.Behavior, workDir string) string {
	dir := ib.Path
	if lr, ok := b.(behavior.LiveReporter); ok {
		if live, err := lr.Live(ib); err == nil && live.Path != "" {
			dir = live.Path
		}
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir
	}
	return workDir
}

// httpHealthy GETs url and wants a 2xx answer.
func httpHealthy(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("GET %s: no answer within %s", url, timeout)
		}
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %s, want 2xx", url, resp.Status)
	}
	return nil
}

// undo puts the install that was live before back after a failed health
// check, when the behavior can (behavior.Rollbacker), so a bad release does
// not stay live. It says what it did, for the error message.
func (i *Installer) undo(ctx context.Context, in workflows.InstallInput, ib config.InstallBehavior, b behavior.Behavior, prev string) string {
	rb, ok := b.(behavior.Rollbacker)
	if !ok {
		return ""
	}
	if prev == "" || prev == in.Transaction {
		return "; no earlier release to switch back to, current stays on it"
	}
	if _, _, err := rb.Rollback(ctx, behavior.RollbackRequest{Env: in.Env, Target: in.Target, To: prev, Config: ib, Log: i.logger()}); err != nil {
		return fmt.Sprintf("; switching back to %s failed: %v", prev, err)
	}
	return "; current switched back to " + prev
}

// liveBefore is the transaction live before an install, to switch back to
// when the new one is unhealthy; empty when the behavior does not know.
func liveBefore(ib config.InstallBehavior, b behavior.Behavior) string {
	lr, ok := b.(behavior.LiveReporter)
	if !ok {
		return ""
	}
	live, _ := lr.Live(ib)
	return live.Transaction
}

// afterInstall checks the target's health and records the install as the
// live one. An unhealthy install fails the host's install without retries
// (type HealthCheckFailed): the check has had its own tries already. A
// behavior that can roll back is switched back to what was live before.
func (i *Installer) afterInstall(ctx context.Context, in workflows.InstallInput, ib config.InstallBehavior, b behavior.Behavior, prev string) error {
	if err := i.checkHealth(ctx, in, ib, b); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The rollback must run even though the check used up its tries.
		undo := i.undo(context.WithoutCancel(ctx), in, ib, b, prev)
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("host %s: %v%s", i.Config.Host, err, undo), workflows.ErrHealthCheck, nil)
	}
	return i.recordInstall(in, ib, b)
}
