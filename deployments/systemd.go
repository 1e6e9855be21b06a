package deployments

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"text/template"
)

// Unit is what one relman unit says that another does not: the role, where
// its files are, and what it may write. Everything else (the hardening, the
// stop timeout, restarts) is the same for every layout and lives in the
// template.
type Unit struct {
	// Role is manager, builder, installer or codec-server.
	Role string
	// Name tells instances apart (relman generate's NAME); empty for the
	// packaged units, one per role on a machine.
	Name string
	// Relman is the absolute path of the relman binary.
	Relman string
	// Config is the role's config file; the codec-server has none.
	Config string
	// ConfigDir holds the codec-server's key and token files.
	ConfigDir string
	// WorkingDirectory is where relative paths given on the command line
	// resolve; config paths resolve against the config file instead.
	WorkingDirectory string
	// EnvironmentFile holds TEMPORAL_* settings and secrets (TEMPORAL_API_KEY,
	// AWS_*); optional, so a unit starts without one.
	EnvironmentFile string
	// ReadWritePaths are the only places the role may write: its work and log
	// dirs, a builder's file:// store, the parents of an installer's install
	// paths (installs are staged beside their path and renamed into place).
	ReadWritePaths []string
}

// Roles are the units there are, in the order they are documented.
var Roles = []string{"manager", "builder", "installer", "codec-server"}

// User is the system user a role runs as: one per role, so a builder cannot
// write what an installer installs, and neither can read the manager's
// users file. All of them share the group relman, which reads /etc/relman
// and the artifacts a builder on the same machine writes.
func User(role string) string { return "relman-" + role }

// Group is the group every relman user has as its primary group.
const Group = "relman"

// Packaged is the unit of a role installed from the Linux package layout:
// the binary in /usr/local/bin, configs and secrets in /etc/relman, state in
// /var/lib/relman, logs in /var/log/relman, installs under /srv/relman.
// These are the units checked in under systemd/.
func Packaged(role string) Unit {
	u := Unit{
		Role:             role,
		Relman:           "/usr/local/bin/relman",
		Config:           "/etc/relman/" + role + ".yaml",
		ConfigDir:        "/etc/relman",
		WorkingDirectory: "/var/lib/relman/" + role,
		EnvironmentFile:  "/etc/relman/" + role + ".env",
		ReadWritePaths:   []string{"/var/lib/relman/" + role, "/var/log/relman/" + role},
	}
	switch role {
	case "builder":
		// The file:// artifact store installers on this machine read.
		u.ReadWritePaths = append(u.ReadWritePaths, "/var/lib/relman/artifacts")
	case "installer":
		u.ReadWritePaths = append(u.ReadWritePaths, "/srv/relman")
	case "codec-server":
		// It only reads its keys and answers HTTP.
		u.Config = ""
		u.WorkingDirectory = "/"
		u.ReadWritePaths = nil
	}
	return u
}

var unitTemplate = template.Must(template.New("relman.service.tmpl").
	Funcs(template.FuncMap{"join": strings.Join}).
	ParseFS(Systemd, "systemd/relman.service.tmpl"))

// SystemdUnit renders the unit for u.
func SystemdUnit(u Unit) ([]byte, error) {
	if !knownRole(u.Role) {
		return nil, fmt.Errorf("systemd unit for role %q: want one of %s", u.Role, strings.Join(Roles, ", "))
	}
	for _, p := range append([]string{u.Relman, u.Config, u.WorkingDirectory, u.EnvironmentFile}, u.ReadWritePaths...) {
		if p != "" && !filepath.IsAbs(p) {
			return nil, fmt.Errorf("systemd unit for %s: path %q is relative; systemd needs absolute paths", u.Role, p)
		}
		// systemd splits these settings on white space.
		if strings.ContainsAny(p, " \t\n\"'\\%$") {
			return nil, fmt.Errorf("systemd unit for %s: path %q has a space, quote, %%, $ or backslash; move the layout to a plain path", u.Role, p)
		}
	}
	data := struct {
		Unit
		User, Group, ProtectHome string
	}{u, User(u.Role), Group, protectHome(u)}
	var b bytes.Buffer
	if err := unitTemplate.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("systemd unit for %s: %w", u.Role, err)
	}
	return b.Bytes(), nil
}

func knownRole(role string) bool {
	for _, r := range Roles {
		if r == role {
			return true
		}
	}
	return false
}

// protectHome hides home directories from the role, unless its own layout
// lives in one (relman generate --dir ~/relman): then homes are read-only
// and only ReadWritePaths are writable, because ProtectHome=yes would hide
// the layout itself and the role could not start.
func protectHome(u Unit) string {
	for _, p := range append([]string{u.Relman, u.Config, u.WorkingDirectory}, u.ReadWritePaths...) {
		for _, home := range []string{"/home", "/root", "/run/user"} {
			if p == home || strings.HasPrefix(p, home+"/") {
				return "read-only"
			}
		}
	}
	return "yes"
}
