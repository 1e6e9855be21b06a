package activities

import (
	"context"
	"fmt"
	"os"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/workflows"
)

// Where reports what is live for each asked named target on this host:
// what the behavior says is live when it knows (a behavior.LiveReporter,
// such as release), else the last successful install relman recorded.
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
	b, err := i.behaviors().Lookup(ib.Behavior)
	if err != nil {
		li.Error = err.Error()
		return li
	}
	lr, ok := b.(behavior.LiveReporter)
	if !ok {
		if len(st.Installs) > 0 {
			r := st.Installs[0]
			li.Transaction, li.SHA256, li.Path, li.InstalledAt = r.Transaction, r.SHA256, r.Path, r.Time
		}
		return li
	}
	live, err := lr.Live(ib)
	if err != nil {
		li.Error = err.Error()
		return li
	}
	li.Releases = live.Releases
	li.Transaction, li.Path = live.Transaction, live.Path
	if live.Transaction == "" {
		return li
	}
	for _, r := range st.Installs {
		if r.Transaction == live.Transaction {
			li.SHA256, li.InstalledAt = r.SHA256, r.Time
			return li
		}
	}
	if fi, err := os.Stat(li.Path); err == nil {
		li.InstalledAt = fi.ModTime().UTC()
	}
	return li
}
