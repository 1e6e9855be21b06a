package config

import (
	"fmt"
	"net/url"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/rollout"
)

func (c *Manager) defaultEnvironments() {
	for name, e := range c.Environments {
		e.Rollout.Default()
		e.Lock = orDefault(e.Lock, rollout.LockWait)
		if e.LockTimeout == 0 {
			e.LockTimeout = DefaultLockTimeout
		}
		if e.Protected {
			// Protected means approved by someone else, whatever else
			// the file says (validate refuses approval: none).
			e.Approval = orDefault(e.Approval, rollout.ApprovalRequired)
			e.FourEyes = true
		}
		e.Approval = orDefault(e.Approval, rollout.ApprovalNone)
		if e.Approval == rollout.ApprovalRequired && e.ApprovalTimeout == 0 {
			e.ApprovalTimeout = rollout.DefaultApprovalTimeout
		}
		c.Environments[name] = e
	}
}

func (e Environment) validate(ps *problems, f string) {
	for _, p := range e.Rollout.Problems() {
		ps.add(f+".rollout."+p.Field, "%s", p.Msg)
	}
	if !rollout.ValidLock(e.Lock) {
		ps.add(f+".lock", "%q is unknown; want wait, refuse, supersede or off", e.Lock)
	}
	if !rollout.ValidApproval(e.Approval) {
		ps.add(f+".approval", "%q is unknown; want required or none", e.Approval)
	}
	if e.Protected && e.Approval != rollout.ApprovalRequired {
		ps.add(f+".approval", "%q, but a protected environment needs approval: required (drop approval, or protected)", e.Approval)
	} else if e.FourEyes && e.Approval != rollout.ApprovalRequired {
		ps.add(f+".four_eyes", "needs approval: required")
	}
	if e.LockTimeout < 0 {
		ps.add(f+".lock_timeout", "%s is negative", e.LockTimeout)
	}
	if e.ApprovalTimeout < 0 {
		ps.add(f+".approval_timeout", "%s is negative", e.ApprovalTimeout)
	}
	for i, w := range e.Webhooks {
		u, err := url.Parse(w)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add(fmt.Sprintf("%s.webhooks[%d]", f, i), "%q is not an http:// or https:// URL", w)
		}
	}
}

// Implied says, for each protected environment, what protected: true
// turns on beyond what its own lines say, so a config check and the
// manager's start can show it rather than leave it silent.
func (c *Manager) Implied() []string {
	var out []string
	for _, name := range sortedKeys(c.Environments) {
		if c.Environments[name].Protected {
			out = append(out, fmt.Sprintf("environments.%s: protected, so approval: required and four_eyes: true (whoever asked for a release cannot approve it), and only policy rules that name %s let anyone install, approve or cancel there", name, name))
		}
	}
	return out
}

// Allowed reports whether the policy lets who do action on project in env.
// In a protected environment only rules that name the environment itself
// count for what changes or decides what runs there (install, approve,
// cancel): a rule for every environment ("*") is not enough.
func (c *Manager) Allowed(who auth.Principal, action, project, env string) bool {
	if e, ok := c.Environments[env]; ok && e.Protected && action != auth.ActionRead {
		return c.Policy.AllowedByName(who, action, project, env)
	}
	return c.Policy.Allowed(who, action, project, env)
}

// Webhook is the URL of webhook index of environment env, or false when
// the config has none there (it changed since the release was planned).
func (c *Manager) Webhook(env string, index int) (string, bool) {
	e, ok := c.Environments[env]
	if !ok || index < 0 || index >= len(e.Webhooks) {
		return "", false
	}
	return e.Webhooks[index], true
}
