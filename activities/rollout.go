package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sys/unix"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

// maxStateRecords bounds the installs remembered per target: enough to
// describe every release the release behavior keeps.
const maxStateRecords = 20

// targetState is what an installer remembers of one (env, named target):
// <work_dir>/state/<env>/<target>.json.
type targetState struct {
	// Installs, newest first.
	Installs []stateRecord `json:"installs"`
	// Rollback is the last rollback, so a retry of it is idempotent.
	Rollback *rollbackRecord `json:"rollback,omitempty"`
}

type stateRecord struct {
	Transaction string    `json:"transaction"`
	SHA256      string    `json:"sha256"`
	Path        string    `json:"path"`
	Behavior    string    `json:"behavior"`
	Time        time.Time `json:"time"`
}

type rollbackRecord struct {
	Transaction string `json:"transaction"`
	From        string `json:"from"`
	To          string `json:"to"`
}

func (i *Installer) statePath(env, target string) string {
	return filepath.Join(i.Config.WorkDir, "state", env, target+".json")
}

// withState runs fn on the target's state under an flock and writes the
// state back (atomically) when fn reports a change.
func (i *Installer) withState(env, target string, fn func(*targetState) (bool, error)) error {
	p := i.statePath(env, target)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	lf, err := os.OpenFile(p+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("state lock: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("state lock: %w", err)
	}
	st, err := readState(p)
	if err != nil {
		return err
	}
	changed, err := fn(&st)
	if err != nil || !changed {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return os.Rename(tmp.Name(), p)
}

func readState(p string) (targetState, error) {
	var st targetState
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state %s is not valid JSON (remove it to start afresh): %w", p, err)
	}
	return st, nil
}

// recordInstall remembers a successful install as the target's live one.
func (i *Installer) recordInstall(in workflows.InstallInput, ib config.InstallBehavior) error {
	rec := stateRecord{Transaction: in.Transaction, SHA256: in.Artifact.SHA256, Path: ib.Path, Behavior: ib.Behavior, Time: time.Now().UTC()}
	if ib.Behavior == config.BehaviorRelease {
		rec.Path = behavior.ReleaseDir(ib.Path, in.Transaction)
	}
	return i.withState(in.Env, in.Target, func(st *targetState) (bool, error) {
		st.Installs = slices.DeleteFunc(st.Installs, func(r stateRecord) bool { return r.Transaction == in.Transaction })
		st.Installs = append([]stateRecord{rec}, st.Installs...)
		if len(st.Installs) > maxStateRecords {
			st.Installs = st.Installs[:maxStateRecords]
		}
		return true, nil
	})
}

// Where reports what is live for each asked named target on this host:
// for the release behavior what current points at, for the others the
// last successful install relman recorded.
func (i *Installer) Where(ctx context.Context, in workflows.WhereHostInput) (map[string]workflows.LiveInstall, error) {
	out := map[string]workflows.LiveInstall{}
	for _, t := range in.Targets {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[t] = i.live(in.Env, t)
	}
	return out, nil
}

func (i *Installer) live(env, target string) workflows.LiveInstall {
	li := workflows.LiveInstall{Target: target}
	ib, ok := i.Config.Environments[env][target]
	if !ok {
		li.Error = fmt.Sprintf("host %s has no named target %q in environment %q", i.Config.Host, target, env)
		return li
	}
	li.Behavior = ib.Behavior
	st, err := readState(i.statePath(env, target))
	if err != nil {
		li.Error = err.Error()
	}
	if ib.Behavior != config.BehaviorRelease {
		if len(st.Installs) > 0 {
			r := st.Installs[0]
			li.Transaction, li.SHA256, li.Path, li.InstalledAt = r.Transaction, r.SHA256, r.Path, r.Time
		}
		return li
	}
	cur, err := behavior.CurrentRelease(ib.Path)
	if err != nil {
		li.Error = err.Error()
		return li
	}
	li.Releases, _ = behavior.Releases(ib.Path)
	if cur == "" {
		return li
	}
	li.Transaction = cur
	li.Path = filepath.Join(ib.Path, "releases", cur)
	for _, r := range st.Installs {
		if behavior.ReleaseName(r.Transaction) == cur {
			li.Transaction, li.SHA256, li.InstalledAt = r.Transaction, r.SHA256, r.Time
			return li
		}
	}
	if fi, err := os.Stat(li.Path); err == nil {
		li.InstalledAt = fi.ModTime().UTC()
	}
	return li
}

// Rollback switches a release target's current back: to the release of
// in.To, or to the release before the current one. A retry of the same
// rollback switches to the release it chose the first time.
func (i *Installer) Rollback(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
	attempt := int32(1)
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	res := workflows.RollbackHostResult{Host: i.Config.Host, Attempt: attempt}
	ib, ok := i.Config.Environments[in.Env][in.Target]
	if !ok {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("host %s has no named target %q in environment %q", i.Config.Host, in.Target, in.Env),
			workflows.ErrUnknownTarget, nil)
	}
	if ib.Behavior != config.BehaviorRelease {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("host %s installs %s with the %s behavior, which keeps no earlier release; rollback needs the release behavior (behavior: release in the installer config)",
				i.Config.Host, in.Target, ib.Behavior),
			workflows.ErrRollbackUnsupported, nil)
	}
	err := i.withState(in.Env, in.Target, func(st *targetState) (bool, error) {
		to := in.To
		if r := st.Rollback; r != nil && r.Transaction == in.Transaction && in.Transaction != "" {
			to = r.To
		}
		from, now, err := behavior.RollbackRelease(ib.Path, to)
		if err != nil {
			return false, err
		}
		if st.Rollback != nil && st.Rollback.Transaction == in.Transaction {
			from = st.Rollback.From
		}
		res.From, res.To = from, now
		st.Rollback = &rollbackRecord{Transaction: in.Transaction, From: from, To: now}
		return true, nil
	})
	if errors.Is(err, behavior.ErrReleaseNotFound) {
		return res, temporal.NewNonRetryableApplicationError(fmt.Sprintf("host %s: %v", i.Config.Host, err), workflows.ErrReleaseNotFound, nil)
	}
	if err != nil {
		return res, fmt.Errorf("host %s: rollback of %s: %w", i.Config.Host, in.Target, err)
	}
	res.Path = behavior.ReleaseDir(ib.Path, res.To)
	i.logger().Info("rolled back", "transaction", in.Transaction, "target", in.Target, "from", res.From, "to", res.To)
	return res, nil
}

// Hosts lists every named target of a project and the hosts registered for
// it in an environment, for rollouts that talk to every host (where,
// rollback). Unknown projects and environments are Rejected.
func (m *Manager) Hosts(ctx context.Context, in workflows.HostsInput) (workflows.HostsResult, error) {
	var res workflows.HostsResult
	proj, ok := m.Config.Projects[in.Project]
	if !ok {
		return res, rejected("unknown project %q; this manager knows %s", in.Project, list(keys(m.Config.Projects)))
	}
	if _, ok := m.Config.Environments[in.Env]; !ok {
		return res, rejected("unknown environment %q; this manager knows %s", in.Env, list(keys(m.Config.Environments)))
	}
	leases, err := m.Registry.List(ctx, m.now())
	if err != nil {
		return res, err
	}
	res.Targets = slices.Clone(proj.Targets)
	res.Hosts = map[string][]string{}
	res.HostTimeout = m.Config.Timeouts.Host
	for _, l := range leases {
		if l.Role != workflows.RoleInstaller {
			continue
		}
		for _, t := range l.Targets[in.Env] {
			if slices.Contains(res.Targets, t) && !slices.Contains(res.Hosts[t], l.ID) {
				res.Hosts[t] = append(res.Hosts[t], l.ID)
			}
		}
	}
	for t := range res.Hosts {
		sort.Strings(res.Hosts[t])
	}
	if len(res.Hosts) == 0 {
		return res, rejected("no installer host advertises any named target of project %q in environment %q", in.Project, in.Env)
	}
	return res, nil
}
