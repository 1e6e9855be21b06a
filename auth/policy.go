package auth

import (
	"fmt"
	"path"
	"slices"
)

// Actions lists every action, for validation and messages.
var Actions = []string{ActionBuild, ActionInstall, ActionRollback, ActionCancel, ActionApprove, ActionRead}

// Rule grants roles actions on projects in environments; projects and
// environments are globs ("*", "web-*").
type Rule struct {
	Roles        []string `yaml:"roles"`
	Actions      []string `yaml:"actions"`
	Projects     []string `yaml:"projects"`
	Environments []string `yaml:"environments"`
}

// Policy is the manager's list of rules. Nothing is allowed unless a rule
// allows it.
type Policy []Rule

// Allowed reports whether p lets principal do action on project in env (env
// empty for a build, which is not environment aware).
func (p Policy) Allowed(who Principal, action, project, env string) bool {
	return p.allowed(who, action, project, env, false)
}

// AllowedByName is Allowed counting only rules that name env itself, not
// through a glob: what a protected environment asks.
func (p Policy) AllowedByName(who Principal, action, project, env string) bool {
	return p.allowed(who, action, project, env, true)
}

func (p Policy) allowed(who Principal, action, project, env string, byName bool) bool {
	for _, r := range p {
		if !overlaps(r.Roles, who.Roles) || !r.grants(action) {
			continue
		}
		if !matchAny(r.Projects, project) {
			continue
		}
		if byName && !slices.Contains(r.Environments, env) {
			continue
		}
		if env != "" && !matchAny(r.Environments, env) {
			continue
		}
		return true
	}
	return false
}

// Validate reports rules that can never match.
func (p Policy) Validate() []string {
	var out []string
	for i, r := range p {
		if len(r.Roles) == 0 {
			out = append(out, fmt.Sprintf("policy[%d]: roles is empty", i))
		}
		if len(r.Actions) == 0 {
			out = append(out, fmt.Sprintf("policy[%d]: actions is empty", i))
		}
		for _, a := range r.Actions {
			if !slices.Contains(Actions, a) {
				out = append(out, fmt.Sprintf("policy[%d]: unknown action %q; use %v", i, a, Actions))
			}
		}
		for _, g := range append(append([]string{}, r.Projects...), r.Environments...) {
			if _, err := path.Match(g, ""); err != nil {
				out = append(out, fmt.Sprintf("policy[%d]: bad pattern %q", i, g))
			}
		}
	}
	return out
}

// grants reports whether the rule names action, or install for a
// rollback.
func (r Rule) grants(action string) bool {
	return slices.Contains(r.Actions, action) ||
		(action == ActionRollback && slices.Contains(r.Actions, ActionInstall))
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func matchAny(globs []string, s string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}
