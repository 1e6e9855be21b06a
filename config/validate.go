package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/relman/relman/auth"
)

// MinLease is the shortest lease accepted: leases renew every lease/3, and
// renewing every second would flood the registry's history.
const MinLease = 3 * time.Second

// nameRE is the charset of project, environment, target, host and builder
// names. They end up in task queue names, workflow ids and file names, so
// they are kept to what is safe in all three.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

const nameRule = "use 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"

// ValidName reports whether s is usable as a project, environment, target,
// host or builder name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// ParseLevel reads a logging level as the config and flags spell it.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is unknown; want debug, info, warn or error", s)
}

// FileMode is the copy behavior's Mode as a file mode.
func (b InstallBehavior) FileMode() (os.FileMode, error) {
	s := strings.TrimPrefix(strings.TrimPrefix(b.Mode, "0o"), "0O")
	if s == "" {
		s = DefaultCopyMode
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal file mode such as 0644", b.Mode)
	}
	fm := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm, nil
}

// Validate reports every problem in the config as one *Error. It expects
// Default to have run.
func (c *Manager) Validate() error {
	var ps problems
	c.Service.validate(&ps)
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		ps.add("listen_port", "%d is not a port; want 0 to 65535", c.ListenPort)
	}
	if a := c.ListenAddress; a != "" && net.ParseIP(a) == nil && a != "localhost" {
		ps.add("listen_address", "%q is not an IP address; use e.g. 127.0.0.1, or 0.0.0.0 for every interface", a)
	}
	c.Gateway.validate(&ps, c.ListenAddress)
	checkNamed(&ps, "environments", c.Environments, "none defined; releases need at least one environment", func(field, _ string, e Environment) {
		e.validate(&ps, field)
	})
	checkNamed(&ps, "projects", c.Projects, "none defined; define at least one project", func(field, _ string, p ProjectDef) {
		if len(p.Targets) == 0 {
			ps.add(field+".targets", "none defined; a project needs at least one target")
		}
		seen := map[string]bool{}
		for i, t := range p.Targets {
			f := fmt.Sprintf("%s.targets[%d]", field, i)
			checkName(&ps, f, t)
			if seen[t] {
				ps.add(f, "target %q is listed twice", t)
			}
			seen[t] = true
		}
	})
	checkDuration(&ps, "timeouts.build", c.Timeouts.Build)
	checkDuration(&ps, "timeouts.install", c.Timeouts.Install)
	checkDuration(&ps, "timeouts.host", c.Timeouts.Host)
	for _, p := range c.Policy.Validate() {
		ps.add("policy", "%s", p)
	}
	if !c.Auth.Enabled() && !c.Auth.Anonymous {
		ps.add("auth", "set users_file (then add users with relman user add), realms, or, to let anyone release anything, anonymous: true")
	}
	if len(c.Policy) > 0 && !c.Auth.Enabled() {
		ps.add("policy", "a policy needs auth.users_file or auth.realms; without them everything is allowed")
	}
	c.Auth.validateRealms(&ps)
	if c.Artifacts != "" {
		checkArtifacts(&ps, c.Artifacts)
	} else if c.RecordsKeyFile != "" {
		ps.add("records_key_file", "set without artifacts; records need a store: set artifacts too, or remove records_key_file")
	}
	if c.MinRetention < 0 {
		ps.add("min_retention", "%s is negative; want a duration such as 720h (30 days)", c.MinRetention)
	}
	return ps.err(label(c.path, "manager config"))
}

func (a Auth) validateRealms(ps *problems) {
	for _, name := range sortedKeys(a.Realms) {
		field := "auth.realms." + name
		switch {
		case name == auth.DefaultRealm:
			ps.add(field, "%q is the users file's realm; give this realm another name", name)
		case !auth.ValidRealm(name):
			ps.add(field, "realm name %q is invalid; %s", name, nameRule)
		}
		r := a.Realms[name]
		if r.LDAP == nil {
			// A realm the manager binary registers in code; only the
			// binary can tell whether it does, at start.
			continue
		}
		for _, p := range r.LDAP.Check() {
			ps.add(field+".ldap."+p.Field, "%s", p.Msg)
		}
	}
}

// workerID is the field that names a builder or host, its value, and what
// to say when it is missing.
type workerID struct{ field, value, missing string }

// validateWorker checks what builders and installers share: the
// connection, the id they register under, the managers they serve, the
// artifact store and the lease.
func (s *Service) validateWorker(ps *problems, id workerID, managers []ManagerRef, conflict bool, artifacts string, lease time.Duration) {
	s.validate(ps)
	if id.value == "" {
		ps.add(id.field, "%s", id.missing)
	} else {
		checkName(ps, id.field, id.value)
	}
	validateManagers(ps, managers, conflict)
	checkArtifacts(ps, artifacts)
	checkLease(ps, lease)
}

// Validate reports every problem in the config as one *Error. It expects
// Default to have run.
func (c *Builder) Validate() error {
	var ps problems
	c.Service.validateWorker(&ps, workerID{"name", c.Name, "missing and the host name is unknown; set name"},
		c.Managers, c.managersConflict, c.Artifacts, c.Lease)
	checkNamed(&ps, "projects", c.Projects, "none defined; define at least one project to build", func(field, _ string, p BuildBehavior) {
		switch {
		case p.Source.Git == "" && p.Source.Svn == "":
			ps.add(field+".source", "neither git nor svn is set; set one")
		case p.Source.Git != "" && p.Source.Svn != "":
			ps.add(field+".source", "both git and svn are set; set only one")
		case p.Source.Svn != "" && !strings.Contains(p.Source.Svn, "://"):
			ps.add(field+".source.svn", "%q is not a URL; use e.g. https://host/repo or file:///abs/path", p.Source.Svn)
		}
		if len(p.Steps) == 0 {
			ps.add(field+".steps", "none defined; a project needs at least one step")
		}
		stepNames := map[string]int{}
		for i, s := range p.Steps {
			f := fmt.Sprintf("%s.steps[%d]", field, i)
			if len(s.Run) == 0 || s.Run[0] == "" {
				ps.add(f, "run is empty")
			}
			if s.Name == "" {
				ps.add(f, "name is empty")
			} else if j, dup := stepNames[s.Name]; dup {
				ps.add(f, "name %q is already used by steps[%d]", s.Name, j)
			} else {
				stepNames[s.Name] = i
			}
			if s.Timeout < 0 {
				ps.add(f+".timeout", "%s is negative", s.Timeout)
			}
			if s.Dir != "" {
				checkInCheckout(&ps, f+".dir", s.Dir)
			}
		}
		checkNamed(&ps, field+".outputs", p.Outputs, "none defined; a project needs at least one output", func(f, _ string, o Output) {
			if o.Path == "" {
				ps.add(f+".path", "missing")
			} else {
				checkInCheckout(&ps, f+".path", o.Path)
			}
		})
		for _, k := range sortedKeys(p.Env) {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				ps.add(field+".env", "%q is not an environment variable name", k)
			}
		}
	})
	return ps.err(label(c.path, "builder config"))
}

// Validate reports every problem in the config as one *Error. It expects
// Default to have run.
func (c *Installer) Validate() error {
	var ps problems
	c.Service.validateWorker(&ps, workerID{"host", c.Host, "missing; set the name this host registers under"},
		c.Managers, c.managersConflict, c.Artifacts, c.Lease)
	checkTrust(&ps, c.Trust)
	checkNamed(&ps, "environments", c.Environments, "none defined; define at least one environment with its targets", func(field, env string, targets map[string]InstallBehavior) {
		checkNamed(&ps, field, targets, "no targets; list the targets this host installs in "+env, func(f, _ string, b InstallBehavior) {
			if b.Behavior == "" {
				ps.add(f+".behavior", "missing; want one of %s, or one an installer of your own registers", strings.Join(BuiltinBehaviors, ", "))
			}
			switch b.Behavior {
			case BehaviorUnarchive, BehaviorCopy, BehaviorRelease:
				if b.Path == "" {
					ps.add(f+".path", "missing; %s needs the path to install into", b.Behavior)
				} else if !filepath.IsAbs(b.Path) {
					ps.add(f+".path", "%q is not absolute", b.Path)
				}
			case BehaviorCommand:
				if len(b.Command) == 0 || b.Command[0] == "" {
					ps.add(f+".command", "empty; command needs an argv such as [systemctl, restart, web]")
				}
			}
			if b.Mode != "" {
				if _, err := b.FileMode(); err != nil {
					ps.add(f+".mode", "%v", err)
				}
			}
			if b.Timeout < 0 {
				ps.add(f+".timeout", "%s is negative", b.Timeout)
			}
			b.validateRollout(&ps, f)
		})
	})
	return ps.err(label(c.path, "installer config"))
}

func (s *Service) validate(ps *problems) {
	switch s.Version {
	case Version:
	case 0:
		ps.add("version", "missing; add `version: %d`", Version)
	default:
		ps.add("version", "%d is not supported; this relman reads version %d", s.Version, Version)
	}
	if _, _, err := net.SplitHostPort(s.Temporal.Address); err != nil {
		ps.add("temporal.address", "%q is not host:port", s.Temporal.Address)
	}
	if (s.Temporal.TLSCertPath == "") != (s.Temporal.TLSKeyPath == "") {
		ps.add("temporal", "tls_cert_path and tls_key_path go together; set both or neither")
	}
	if _, err := ParseLevel(s.Logging.Level); err != nil {
		ps.add("logging.level", "%q is unknown; want debug, info, warn or error", s.Logging.Level)
	}
	if s.ManagerQueue == "" {
		ps.add("manager_queue", "empty")
	}
	checkManagerQueue(ps, "manager_queue", s.ManagerQueue)
	if s.RegistryID == "" {
		ps.add("registry_id", "empty")
	}
	if s.StatusAddress != "" {
		if _, _, err := net.SplitHostPort(s.StatusAddress); err != nil {
			ps.add("status_address", "%q is not host:port such as 0.0.0.0:8081", s.StatusAddress)
		}
	}
}

func (g Gateway) validate(ps *problems, address string) {
	if (g.TLSCertPath == "") != (g.TLSKeyPath == "") {
		ps.add("gateway", "tls_cert_path and tls_key_path go together; set both or neither")
	}
	if g.Off || g.TLS() || g.Insecure || Loopback(address) {
		return
	}
	ps.add("listen_address", "%s serves the XML-RPC gateway beyond this machine, where passwords would cross the network in clear; set gateway.tls_cert_path and gateway.tls_key_path, or gateway.insecure: true to serve plain HTTP anyway", address)
}

// Loopback reports whether address (an IP or localhost) only serves this
// machine.
func Loopback(address string) bool {
	if address == "localhost" {
		return true
	}
	ip := net.ParseIP(address)
	return ip != nil && ip.IsLoopback()
}

// checkNamed checks a section of named entries (projects, environments,
// targets, outputs): none at all is the problem empty says, then, in name
// order, each entry's name and whatever check finds in it, given the
// entry's field (field.name).
func checkNamed[V any](ps *problems, field string, m map[string]V, empty string, check func(field, name string, v V)) {
	if len(m) == 0 {
		ps.add(field, "%s", empty)
	}
	for _, name := range sortedKeys(m) {
		f := field + "." + name
		checkName(ps, f, name)
		check(f, name, m[name])
	}
}

func checkName(ps *problems, field, name string) {
	if !ValidName(name) {
		ps.add(field, "name %q is invalid; %s", name, nameRule)
	}
}

func checkDuration(ps *problems, field string, d time.Duration) {
	if d < 0 {
		ps.add(field, "%s is negative", d)
	}
}

func checkLease(ps *problems, d time.Duration) {
	if d != 0 && d < MinLease {
		ps.add("lease", "%s is too short; want at least %s", d, MinLease)
	}
}

func checkArtifacts(ps *problems, s string) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		ps.add("artifacts", "%q is not a store URL such as file:///dir, s3://bucket or mem://", s)
	}
}

// checkInCheckout keeps build paths inside the checkout, where they are
// resolved; an absolute path or ".." would reach the rest of the build host.
func checkInCheckout(ps *problems, field, p string) {
	slashed := filepath.ToSlash(p)
	if path.IsAbs(slashed) || filepath.IsAbs(p) {
		ps.add(field, "%q is absolute; want a path relative to the checkout", p)
		return
	}
	if slices.Contains(strings.Split(slashed, "/"), "..") {
		ps.add(field, "%q has a .. component; want a path inside the checkout", p)
	}
}

func label(path, fallback string) string {
	if path == "" {
		return fallback
	}
	return path
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// checkTrust checks an installer's trust section: at least one manager
// key, inline or in a file, and each inline key base64 of an ed25519
// public key.
func checkTrust(ps *problems, t InstallerTrust) {
	for i, k := range t.ManagerKeys {
		if _, err := auth.ParseManagerKey(k); err != nil {
			ps.add(fmt.Sprintf("trust.manager_keys[%d]", i), "not base64 of a 32-byte ed25519 public key; paste what relman manager-key prints")
		}
	}
	if len(t.ManagerKeys) == 0 && len(t.ManagerKeyFiles) == 0 {
		ps.add("trust", "no manager key: an installer runs only install orders its manager signed; add trust.manager_keys with what relman manager-key --config manager.yaml prints, or trust.manager_key_files naming the manager's orders.key.pub")
	}
}
