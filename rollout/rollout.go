// Package rollout holds the rules of how a release goes into an
// environment: the strategy (all at once, or rolling batches), how many
// failed hosts it tolerates, what an unreachable host counts as, the lock
// mode and the approval rule. The manager config spells them (YAML) and the
// Release workflow carries them (JSON, in event histories), so both read
// this one package: the vocabulary, the parsing of counts and shares, the
// batching and the validation live here and nowhere else.
package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Strategies, unreachable-host policies, lock modes and approval rules, as
// configs, flags and histories spell them.
const (
	StrategyAllAtOnce = "all-at-once"
	StrategyRolling   = "rolling"

	UnreachableFail = "fail"
	UnreachableSkip = "skip"

	// LockWait (the default): a second release of a named target waits for
	// the first to end. LockRefuse rejects it instead. LockSupersede waits
	// too, but a newer release takes the place of every one still waiting,
	// which ends SUPERSEDED naming it: a burst of releases to one target
	// costs the one running and the newest, not one install each. LockOff
	// takes no lock.
	LockWait      = "wait"
	LockRefuse    = "refuse"
	LockSupersede = "supersede"
	LockOff       = "off"

	ApprovalRequired = "required"
	ApprovalNone     = "none"
)

// DefaultApprovalTimeout ends a release REJECTED when nobody decides.
const DefaultApprovalTimeout = 24 * time.Hour

// Policy says how a release goes through the hosts of an environment. The
// zero value is all-at-once with no failure allowed: the behavior releases
// had before rollouts, which saved histories rely on. The JSON names are
// part of stored histories: never rename them.
type Policy struct {
	Strategy string `yaml:"strategy" json:"strategy,omitempty"` // all-at-once (default) or rolling
	// Batch is hosts per batch of a rolling release: a count ("2") or a
	// share of the hosts ("25%"). Default 1.
	Batch string `yaml:"batch" json:"batch,omitempty"`
	// Pause between batches.
	Pause time.Duration `yaml:"pause" json:"pause,omitempty"`
	// MaxFailures is how many failed hosts the release tolerates before it
	// stops: a count or a share ("10%"). Default 0.
	MaxFailures string `yaml:"max_failures" json:"max_failures,omitempty"`
	// Unreachable: a host that does not pick up its install in time is
	// failed (default) or skipped.
	Unreachable string `yaml:"unreachable" json:"unreachable,omitempty"`
	// AutoRollback: on a stopped rollout, put back the hosts already done.
	AutoRollback bool `yaml:"auto_rollback" json:"auto_rollback,omitempty"`
}

// Default fills in the defaults a config leaves out.
func (p *Policy) Default() {
	p.Strategy = orDefault(p.Strategy, StrategyAllAtOnce)
	p.Unreachable = orDefault(p.Unreachable, UnreachableFail)
	p.MaxFailures = orDefault(p.MaxFailures, "0")
	if p.Strategy == StrategyRolling {
		p.Batch = orDefault(p.Batch, "1")
	}
}

// Legacy reports whether p is the behavior releases had before rollouts:
// every install at once, any failure fails the release.
func (p Policy) Legacy() bool {
	return (p.Strategy == "" || p.Strategy == StrategyAllAtOnce) &&
		(p.MaxFailures == "" || p.MaxFailures == "0") &&
		(p.Unreachable == "" || p.Unreachable == UnreachableFail) &&
		!p.AutoRollback
}

// Problem is one thing wrong with a policy: the field (as the config spells
// it) and what is wrong.
type Problem struct {
	Field string
	Msg   string
}

func (p Problem) String() string { return p.Field + " " + p.Msg }

// Problems reports everything wrong with p, field by field.
func (p Policy) Problems() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch p.Strategy {
	case "", StrategyAllAtOnce, StrategyRolling:
	default:
		add("strategy", "%q is unknown; want all-at-once or rolling", p.Strategy)
	}
	if p.Batch != "" {
		if n, _, err := ParseCount(p.Batch); err != nil {
			add("batch", "%v", err)
		} else if n == 0 {
			add("batch", "%q is zero; want at least 1 host or 1%%", p.Batch)
		}
	}
	if p.MaxFailures != "" {
		if _, _, err := ParseCount(p.MaxFailures); err != nil {
			add("max_failures", "%v", err)
		}
	}
	if p.Pause < 0 {
		add("pause", "%s is negative", p.Pause)
	}
	switch p.Unreachable {
	case "", UnreachableFail, UnreachableSkip:
	default:
		add("unreachable", "%q is unknown; want fail or skip", p.Unreachable)
	}
	return ps
}

// Validate reports a policy a release cannot follow, as one error.
func (p Policy) Validate() error {
	ps := p.Problems()
	if len(ps) == 0 {
		return nil
	}
	s := make([]string, len(ps))
	for i, q := range ps {
		s[i] = q.String()
	}
	return fmt.Errorf("rollout: %s", strings.Join(s, "; "))
}

// Override returns p with the fields o sets.
func (p Policy) Override(o *Policy) Policy {
	if o == nil {
		return p
	}
	if o.Strategy != "" {
		p.Strategy = o.Strategy
	}
	if o.Batch != "" {
		p.Batch = o.Batch
	}
	if o.Pause != 0 {
		p.Pause = o.Pause
	}
	if o.MaxFailures != "" {
		p.MaxFailures = o.MaxFailures
	}
	if o.Unreachable != "" {
		p.Unreachable = o.Unreachable
	}
	if o.AutoRollback {
		p.AutoRollback = true
	}
	return p
}

// Batches splits sorted hosts into the batches p goes through: one batch
// for all-at-once.
func (p Policy) Batches(hosts []string) [][]string {
	if len(hosts) == 0 {
		return nil
	}
	if p.Strategy != StrategyRolling {
		return [][]string{append([]string(nil), hosts...)}
	}
	size := count(p.Batch, len(hosts), 1, true)
	var out [][]string
	for i := 0; i < len(hosts); i += size {
		out = append(out, append([]string(nil), hosts[i:min(i+size, len(hosts))]...))
	}
	return out
}

// MaxFailureCount is how many of total hosts may fail before the release
// stops.
func (p Policy) MaxFailureCount(total int) int {
	return count(p.MaxFailures, total, 0, false)
}

// count reads "N" or "P%" against total; a share rounds up for batches
// (never an empty batch) and down for failures (never more than asked).
func count(s string, total, def int, up bool) int {
	if s == "" {
		return def
	}
	n, pct, err := ParseCount(s)
	if err != nil {
		return def
	}
	if pct {
		if up {
			n = (total*n + 99) / 100
		} else {
			n = total * n / 100
		}
	}
	if up && n < 1 {
		n = 1
	}
	return n
}

// ParseCount reads a count ("2") or a share of the hosts ("25%"): the
// number, and whether it is a percentage.
func ParseCount(s string) (n int, pct bool, err error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err = strconv.Atoi(v)
	if err != nil || n < 0 || pct && n > 100 {
		return 0, false, fmt.Errorf("%q is not a count such as 2 or a share such as 25%%", s)
	}
	return n, pct, nil
}

// ValidLock reports whether s is a lock mode (empty means the default).
func ValidLock(s string) bool {
	switch s {
	case "", LockWait, LockRefuse, LockSupersede, LockOff:
		return true
	}
	return false
}

// ValidApproval reports whether s is an approval rule (empty: none).
func ValidApproval(s string) bool {
	switch s {
	case "", ApprovalNone, ApprovalRequired:
		return true
	}
	return false
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
