// Package realm assembles a manager's realms: the users file (the default
// realm), the LDAP realms of its config, and the authenticators its binary
// registers in code. The gateway and the manager's activities use the one
// registry it builds, so a login and the manager's later check agree.
package realm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/relman/relman/auth"
	"github.com/relman/relman/auth/ldap"
	"github.com/relman/relman/config"
)

// Registry builds the realms of a manager config. code holds the
// authenticators registered in code (nil for none); each must be listed in
// the config under auth.realms as an empty realm, and each empty realm of
// the config must be among them, so the config says which realms exist and
// a binary without one fails at start instead of refusing its users later.
func Registry(a config.Auth, code *auth.Registry) (*auth.Registry, error) {
	if _, ok := code.Lookup(auth.DefaultRealm); ok {
		return nil, fmt.Errorf("realm %q is the users file's; register yours under another name", auth.DefaultRealm)
	}
	reg := &auth.Registry{}
	if a.UsersFile != "" {
		if err := reg.Register(auth.DefaultRealm, auth.UsersFile{Path: a.UsersFile}); err != nil {
			return nil, err
		}
	}
	var missing []string
	for _, name := range sortedKeys(a.Realms) {
		r := a.Realms[name]
		fromCode, inCode := code.Lookup(name)
		switch {
		case r.LDAP != nil && inCode:
			return nil, fmt.Errorf("auth.realms.%s: the realm has ldap settings and is registered in code too; rename one of them", name)
		case r.LDAP != nil:
			l, err := ldap.New(*r.LDAP)
			if err != nil {
				return nil, fmt.Errorf("auth.realms.%s: %w", name, err)
			}
			if err := reg.Register(name, l); err != nil {
				return nil, err
			}
		case inCode:
			if err := reg.Register(name, fromCode); err != nil {
				return nil, err
			}
		default:
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("auth.realms %s: no ldap settings, and this manager binary registers no authenticator under that name (it registers: %s); configure ldap or run the binary that registers it",
			strings.Join(missing, ", "), orNone(code.Realms()))
	}
	var unlisted []string
	for _, name := range code.Realms() {
		if _, ok := a.Realms[name]; !ok {
			unlisted = append(unlisted, name)
		}
	}
	if len(unlisted) > 0 {
		return nil, fmt.Errorf("realm(s) %s registered in code are not in the config; list each under auth.realms as `%s: {}` so authentication is on and the config names every realm",
			strings.Join(unlisted, ", "), unlisted[0])
	}
	return reg, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
