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
func (i *Installer) checkHealth(ctx context.Context, in workflows.InstallInput, ib config.InstallBehavior) error {
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
		err = i.healthOnce(ctx, in, ib, timeout)
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

func (i *Installer) healthOnce(ctx context.Context, in workflows.InstallInput, ib config.InstallBehavior, timeout time.Duration) error {
	h := ib.Health
	if len(h.Command) > 0 {
		logDir := filepath.Join(i.Config.WorkDir, "logs")
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return err
		}
		r := &buildstep.Runner{LogPath: filepath.Join(logDir, safeName(in.Transaction+"-"+in.Target)+"-health.log")}
		_, err := r.Run(ctx, buildstep.Step{
			Name:    "health " + in.Target,
			Argv:    h.Command,
			Dir:     healthDir(ib, i.Config.WorkDir),
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

// healthDir is where the check command runs: the live release, the
// installed directory, or the work dir for anything else.
func healthDir(ib config.InstallBehavior, workDir string) string {
	dir := ib.Path
	if ib.Behavior == config.BehaviorRelease {
		dir = filepath.Join(ib.Path, "current")
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

// undoRelease switches a release target back to prev after a failed health
// check, so a bad release does not stay live. It says what it did, for the
// error message.
func undoRelease(ib config.InstallBehavior, prev, installed string) string {
	if ib.Behavior != config.BehaviorRelease {
		return ""
	}
	if prev == "" || prev == installed {
		return "; no earlier release to switch back to, current stays on it"
	}
	if err := behavior.SwitchCurrent(ib.Path, prev); err != nil {
		return fmt.Sprintf("; switching current back to %s failed: %v", prev, err)
	}
	return "; current switched back to " + prev
}

// liveRelease is the release a release target's current points at before
// an install, to switch back to when the new one is unhealthy.
func (i *Installer) liveRelease(ib config.InstallBehavior) string {
	if ib.Behavior != config.BehaviorRelease {
		return ""
	}
	cur, _ := behavior.CurrentRelease(ib.Path)
	return cur
}

// afterInstall checks the target's health and records the install as the
// live one. An unhealthy install fails the host's install without retries
// (type HealthCheckFailed): the check has had its own tries already. A
// release target is switched back to the release that was live before.
func (i *Installer) afterInstall(ctx context.Context, in workflows.InstallInput, ib config.InstallBehavior, prev string) error {
	if err := i.checkHealth(ctx, in, ib); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		undo := undoRelease(ib, prev, behavior.ReleaseName(in.Transaction))
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("host %s: %v%s", i.Config.Host, err, undo), workflows.ErrHealthCheck, nil)
	}
	return i.recordInstall(in, ib)
}
