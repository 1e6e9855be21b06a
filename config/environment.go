package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Safety settings of an environment, as the manager config spells them.
const (
	StrategyAllAtOnce = "all-at-once"
	StrategyRolling   = "rolling"
	UnreachableFail   = "fail"
	UnreachableSkip   = "skip"
	LockWait          = "wait"
	LockRefuse        = "refuse"
	LockOff           = "off"
	ApprovalRequired  = "required"
	ApprovalNone      = "none"

	DefaultApprovalTimeout = 24 * time.Hour
)

// RolloutPolicy says how a release goes through an environment's hosts.
// Batch and MaxFailures are a count (2) or a share of the hosts ("25%").
type RolloutPolicy struct {
	Strategy     string        `yaml:"strategy"` // all-at-once (default) or rolling
	Batch        string        `yaml:"batch"`    // default 1
	Pause        time.Duration `yaml:"pause"`
	MaxFailures  string        `yaml:"max_failures"` // default 0
	Unreachable  string        `yaml:"unreachable"`  // fail (default) or skip
	AutoRollback bool          `yaml:"auto_rollback"`
}

func (c *Manager) defaultEnvironments() {
	for name, e := range c.Environments {
		e.Rollout.Strategy = orDefault(e.Rollout.Strategy, StrategyAllAtOnce)
		e.Rollout.Unreachable = orDefault(e.Rollout.Unreachable, UnreachableFail)
		e.Rollout.MaxFailures = orDefault(e.Rollout.MaxFailures, "0")
		if e.Rollout.Strategy == StrategyRolling {
			e.Rollout.Batch = orDefault(e.Rollout.Batch, "1")
		}
		e.Lock = orDefault(e.Lock, LockWait)
		e.Approval = orDefault(e.Approval, ApprovalNone)
		if e.Approval == ApprovalRequired && e.ApprovalTimeout == 0 {
			e.ApprovalTimeout = DefaultApprovalTimeout
		}
		c.Environments[name] = e
	}
}

func (e Environment) validate(ps *problems, f string) {
	r := e.Rollout
	if r.Strategy != "" && r.Strategy != StrategyAllAtOnce && r.Strategy != StrategyRolling {
		ps.add(f+".rollout.strategy", "%q is unknown; want all-at-once or rolling", r.Strategy)
	}
	if r.Batch != "" {
		if n, err := ParseCount(r.Batch); err != nil {
			ps.add(f+".rollout.batch", "%v", err)
		} else if n == 0 {
			ps.add(f+".rollout.batch", "%q is zero; want at least 1 host or 1%%", r.Batch)
		}
	}
	if r.MaxFailures != "" {
		if _, err := ParseCount(r.MaxFailures); err != nil {
			ps.add(f+".rollout.max_failures", "%v", err)
		}
	}
	if r.Pause < 0 {
		ps.add(f+".rollout.pause", "%s is negative", r.Pause)
	}
	if r.Unreachable != "" && r.Unreachable != UnreachableFail && r.Unreachable != UnreachableSkip {
		ps.add(f+".rollout.unreachable", "%q is unknown; want fail or skip", r.Unreachable)
	}
	switch e.Lock {
	case "", LockWait, LockRefuse, LockOff:
	default:
		ps.add(f+".lock", "%q is unknown; want wait, refuse or off", e.Lock)
	}
	switch e.Approval {
	case "", ApprovalNone, ApprovalRequired:
	default:
		ps.add(f+".approval", "%q is unknown; want required or none", e.Approval)
	}
	if e.FourEyes && e.Approval != ApprovalRequired {
		ps.add(f+".four_eyes", "needs approval: required")
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

// ParseCount reads a rollout count: "2" or "25%". It returns the number
// (the percentage for a share).
func ParseCount(s string) (int, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || pct && n > 100 {
		return 0, fmt.Errorf("%q is not a count such as 2 or a share such as 25%%", s)
	}
	return n, nil
}
