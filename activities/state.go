package activities

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

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

// recordInstall remembers a successful install as the target's live one,
// at the path the behavior says is live when it knows.
func (i *Installer) recordInstall(in workflows.InstallInput, ib config.InstallBehavior, b behavior.Behavior) error {
	rec := stateRecord{Transaction: in.Transaction, SHA256: in.Artifact.SHA256, Path: ib.Path, Behavior: ib.Behavior, Time: time.Now().UTC()}
	if lr, ok := b.(behavior.LiveReporter); ok {
		if live, err := lr.Live(ib); err == nil && live.Path != "" {
			rec.Path = live.Path
		}
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
