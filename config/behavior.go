package config

import (
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// The install behaviors every installer has (the behavior package holds
// them). Which other names are valid is up to the installer's registry:
// config validation only checks the settings of these.
const (
	BehaviorUnarchive = "unarchive"
	BehaviorCopy      = "copy"
	BehaviorCommand   = "command"
	// BehaviorRelease is the Capistrano-style install behavior:
	// releases/<id>, shared/, and a current symlink switched atomically.
	BehaviorRelease = "release"
)

// BuiltinBehaviors lists them.
var BuiltinBehaviors = []string{BehaviorCommand, BehaviorCopy, BehaviorRelease, BehaviorUnarchive}

// Defaults of the release behavior and of health checks.
const (
	DefaultKeep           = 5
	DefaultHealthTimeout  = 10 * time.Second
	DefaultHealthRetries  = 3
	DefaultHealthInterval = 2 * time.Second
)

// HealthCheck is run after an install of a named target; a failing check
// fails that host's install.
type HealthCheck struct {
	// Command is an argv run with the install's RELMAN_* environment; exit
	// 0 is healthy.
	Command []string `yaml:"command"`
	// HTTP is a URL answered with a 2xx by a healthy install.
	HTTP string `yaml:"http"`
	// Timeout bounds one try (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many more tries follow a failed one (default 3).
	Retries *int `yaml:"retries"`
	// Interval is the pause between tries (default 2s).
	Interval time.Duration `yaml:"interval"`
}

// Tries is how many times the check runs at most.
func (h *HealthCheck) Tries() int {
	if h.Retries == nil {
		return 1 + DefaultHealthRetries
	}
	return 1 + max(*h.Retries, 0)
}

func (b *InstallBehavior) defaultRollout() {
	if b.Behavior == BehaviorRelease && b.Keep == 0 {
		b.Keep = DefaultKeep
	}
	if h := b.Health; h != nil {
		if h.Timeout == 0 {
			h.Timeout = DefaultHealthTimeout
		}
		if h.Interval == 0 {
			h.Interval = DefaultHealthInterval
		}
		if h.Retries == nil {
			r := DefaultHealthRetries
			h.Retries = &r
		}
	}
}

func (b *InstallBehavior) validateRollout(ps *problems, f string) {
	if b.Keep < 0 {
		ps.add(f+".keep", "%d is negative; want how many releases to keep, such as 5", b.Keep)
	}
	if b.Behavior != BehaviorRelease {
		if b.Keep != 0 {
			ps.add(f+".keep", "only the release behavior keeps releases, not %s", b.Behavior)
		}
		if len(b.Shared) > 0 {
			ps.add(f+".shared", "only the release behavior links shared directories, not %s", b.Behavior)
		}
	}
	seen := map[string]bool{}
	for i, s := range b.Shared {
		if !ValidSharedName(s) {
			ps.add(f+".shared", "entry %d %q must be a relative path inside the release, without '..' or a leading '.'", i, s)
		}
		if seen[s] {
			ps.add(f+".shared", "%q is listed twice", s)
		}
		seen[s] = true
	}
	h := b.Health
	if h == nil {
		return
	}
	if len(h.Command) == 0 && h.HTTP == "" {
		ps.add(f+".health", "neither command nor http is set; set one or both")
	}
	if len(h.Command) > 0 && h.Command[0] == "" {
		ps.add(f+".health.command", "the program is empty")
	}
	if h.HTTP != "" {
		u, err := url.Parse(h.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add(f+".health.http", "%q is not an http:// or https:// URL", h.HTTP)
		}
	}
	if h.Timeout < 0 {
		ps.add(f+".health.timeout", "%s is negative", h.Timeout)
	}
	if h.Interval < 0 {
		ps.add(f+".health.interval", "%s is negative", h.Interval)
	}
	if h.Retries != nil && *h.Retries < 0 {
		ps.add(f+".health.retries", "%d is negative", *h.Retries)
	}
}

// ValidSharedName reports whether s may name a shared directory: a clean
// relative path that stays inside the release and is not hidden.
func ValidSharedName(s string) bool {
	if s == "" || strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") || strings.ContainsRune(s, 0) {
		return false
	}
	if path.Clean(s) != s {
		return false
	}
	return !slices.Contains(strings.Split(s, "/"), "..")
}
