// Package ldap authenticates relman users against an organisation's LDAP
// directory (OpenLDAP, 389-ds, Active Directory): a simple bind as the user
// checks the password, and the groups the user is a member of give the
// relman roles, through a configured mapping. Nothing is cached: a user
// removed from a group loses the role at the next login, and a directory
// that does not answer refuses every login.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/relman/relman/auth"
)

// DefaultGroupFilter finds the groups of a user in the three usual shapes:
// groupOfNames (member), groupOfUniqueNames (uniqueMember), posixGroup
// (memberUid). {dn} is the user's DN and {user} the user name, both escaped.
const DefaultGroupFilter = "(|(member={dn})(uniqueMember={dn})(memberUid={user}))"

// DefaultTimeout bounds connecting and each request.
const DefaultTimeout = 5 * time.Second

// Config is an LDAP realm, as the manager config's auth.realms.NAME.ldap.
type Config struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string `yaml:"url"`
	// UserDN is the user's DN with %s for the user name, such as
	// uid=%s,ou=people,dc=example,dc=org. The user binds as it.
	UserDN string `yaml:"user_dn"`
	// GroupBase is where groups are searched, with the user's own bind.
	GroupBase string `yaml:"group_base"`
	// GroupFilter: default DefaultGroupFilter.
	GroupFilter string `yaml:"group_filter"`
	// Roles maps a group to a relman role. A key is the group's full DN,
	// its first RDN (cn=deployers) or its cn alone (deployers); case does
	// not matter.
	Roles map[string]string `yaml:"roles"`
	// StartTLS upgrades an ldap:// connection to TLS before the bind.
	StartTLS bool `yaml:"start_tls"`
	// CAFile holds the PEM certificates that sign the server's; default
	// the system's.
	CAFile string `yaml:"ca_file"`
	// Timeout: default DefaultTimeout.
	Timeout time.Duration `yaml:"timeout"`
}

// Problem is one thing wrong with a Config; Field is its YAML name.
type Problem struct {
	Field string
	Msg   string
}

// Check reports every problem of c, for the manager's config validation.
func (c Config) Check() []Problem {
	var ps []Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch u, err := url.Parse(c.URL); {
	case c.URL == "":
		add("url", "missing; set the directory's URL, such as ldap://ldap.example.org or ldaps://ldap.example.org:636")
	case err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "":
		add("url", "%q is not an ldap:// or ldaps:// URL with a host", c.URL)
	case u.Scheme == "ldaps" && c.StartTLS:
		add("start_tls", "an ldaps:// URL is TLS already; drop start_tls or use ldap://")
	case u.Path != "" && u.Path != "/" || u.RawQuery != "":
		add("url", "%q has a path or query; the bind DN comes from user_dn, so give only scheme, host and port", c.URL)
	case u.Scheme == "ldap" && !c.StartTLS && !loopback(u.Hostname()):
		add("url", "%q would send passwords in clear over the network; use ldaps:// or set start_tls: true (plain ldap:// is taken only on loopback)", c.URL)
	}
	switch n := strings.Count(c.UserDN, "%s"); {
	case c.UserDN == "":
		add("user_dn", "missing; set the user's DN with %%s for the user name, such as uid=%%s,ou=people,dc=example,dc=org")
	case n != 1 || strings.Count(c.UserDN, "%") != 1:
		add("user_dn", "%q must hold %%s exactly once (and no other %%), where the user name goes", c.UserDN)
	default:
		if _, err := goldap.ParseDN(fmt.Sprintf(c.UserDN, "user")); err != nil {
			add("user_dn", "%q is not a DN: %v", c.UserDN, err)
		}
	}
	if c.GroupBase == "" {
		add("group_base", "missing; set where the groups are, such as ou=groups,dc=example,dc=org")
	} else if _, err := goldap.ParseDN(c.GroupBase); err != nil {
		add("group_base", "%q is not a DN: %v", c.GroupBase, err)
	}
	if c.GroupFilter != "" {
		if !strings.Contains(c.GroupFilter, "{dn}") && !strings.Contains(c.GroupFilter, "{user}") {
			add("group_filter", "%q names neither {dn} nor {user}, so it cannot find a user's groups", c.GroupFilter)
		} else if _, err := goldap.CompileFilter(groupFilter(c.GroupFilter, "uid=user,dc=x", "user")); err != nil {
			add("group_filter", "%q is not an LDAP filter: %v", c.GroupFilter, err)
		}
	}
	if len(c.Roles) == 0 {
		add("roles", "none; map groups to relman roles (deployers: deployer), or this realm's users may do nothing")
	}
	for _, k := range slices.Sorted(maps.Keys(c.Roles)) {
		if _, err := parseRule(k, c.Roles[k]); err != nil {
			add("roles."+k, "%v", err)
		}
	}
	if c.Timeout < 0 {
		add("timeout", "%s is negative", c.Timeout)
	}
	return ps
}

// Authenticator is an LDAP realm's authenticator.
type Authenticator struct {
	cfg    Config
	server string
	tls    *tls.Config
	rules  []rule
}

var _ auth.Authenticator = (*Authenticator)(nil)

// New checks c and reads its CA file; it does not connect, so a manager
// starts while the directory is down and refuses its logins until it is up.
func New(c Config) (*Authenticator, error) {
	if ps := c.Check(); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.Field + ": " + p.Msg
		}
		return nil, fmt.Errorf("ldap realm: %s", strings.Join(msgs, "; "))
	}
	if c.GroupFilter == "" {
		c.GroupFilter = DefaultGroupFilter
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	u, _ := url.Parse(c.URL)
	a := &Authenticator{cfg: c, server: "LDAP server " + c.URL}
	if u.Scheme == "ldaps" || c.StartTLS {
		a.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ldap realm: ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ldap realm: ca_file %s holds no PEM certificate", c.CAFile)
			}
			a.tls.RootCAs = pool
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Roles)) {
		r, _ := parseRule(k, c.Roles[k])
		a.rules = append(a.rules, r)
	}
	return a, nil
}

// userName is what may go into the bind DN. Directories match uid without
// regard to case or surrounding spaces, so " Alice" would bind as alice;
// allowing only one spelling keeps the recorded name (the requester, four
// eyes) one per person.
var userName = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,62}$`)

// Authenticate binds as the user and maps their groups to roles. A wrong
// password, an unknown user and a user name that cannot be one all get
// auth.ErrDenied; a directory that cannot be reached gets an
// *auth.UnavailableError naming the server.
func (a *Authenticator) Authenticate(ctx context.Context, c auth.Credentials) (auth.Principal, error) {
	name := strings.ToLower(c.Username)
	// An empty password would be an unauthenticated bind, which LDAP
	// servers answer with success: never send one.
	if c.Password == "" || !userName.MatchString(name) {
		return auth.Principal{}, auth.ErrDenied
	}
	conn, err := a.dial(ctx)
	if err != nil {
		return auth.Principal{}, &auth.UnavailableError{Server: a.server, Err: err}
	}
	defer conn.Close()
	// The client may hang up while the directory is slow: stop waiting.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	dn := fmt.Sprintf(a.cfg.UserDN, goldap.EscapeDN(name))
	if err := conn.Bind(dn, c.Password); err != nil {
		return auth.Principal{}, a.bindError(err)
	}
	groups, err := a.groups(conn, dn, name)
	if err != nil {
		return auth.Principal{}, err
	}
	return auth.Principal{Name: name, Roles: a.roles(groups)}, nil
}

func (a *Authenticator) dial(ctx context.Context) (*goldap.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	u, _ := url.Parse(a.cfg.URL)
	host := u.Host
	if u.Port() == "" {
		port := "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "ldaps" {
		tc := tls.Client(raw, a.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		raw = tc
	}
	conn := goldap.NewConn(raw, u.Scheme == "ldaps")
	conn.Start()
	conn.SetTimeout(a.cfg.Timeout)
	if a.cfg.StartTLS {
		if err := conn.StartTLS(a.tls); err != nil {
			conn.Close()
			return nil, fmt.Errorf("start_tls: %w", err)
		}
	}
	return conn, nil
}

// bindError tells a refusal of these credentials, which is the user's
// business, from a directory in trouble, which is the operator's.
func (a *Authenticator) bindError(err error) error {
	switch {
	case goldap.IsErrorAnyOf(err,
		goldap.LDAPResultInvalidCredentials, goldap.LDAPResultNoSuchObject, goldap.LDAPResultInvalidDNSyntax,
		goldap.LDAPResultInappropriateAuthentication, goldap.LDAPResultUnwillingToPerform, goldap.ErrorEmptyPassword):
		return auth.ErrDenied
	case goldap.IsErrorAnyOf(err, goldap.ErrorNetwork, goldap.LDAPResultBusy, goldap.LDAPResultUnavailable,
		goldap.LDAPResultServerDown, goldap.LDAPResultTimeout, goldap.LDAPResultConnectError):
		return &auth.UnavailableError{Server: a.server, Err: err}
	}
	return fmt.Errorf("%s refused the bind: %w", a.server, err)
}

type group struct {
	dn  *goldap.DN
	cns []string
}

func (a *Authenticator) groups(conn *goldap.Conn, dn, name string) ([]group, error) {
	req := goldap.NewSearchRequest(a.cfg.GroupBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		0, int(a.cfg.Timeout/time.Second)+1, false, groupFilter(a.cfg.GroupFilter, dn, name), []string{"cn"}, nil)
	res, err := conn.Search(req)
	if err != nil {
		if goldap.IsErrorAnyOf(err, goldap.ErrorNetwork, goldap.LDAPResultBusy, goldap.LDAPResultUnavailable,
			goldap.LDAPResultServerDown, goldap.LDAPResultTimeout, goldap.LDAPResultTimeLimitExceeded) {
			return nil, &auth.UnavailableError{Server: a.server, Err: err}
		}
		return nil, fmt.Errorf("%s: searching the groups under %s: %w", a.server, a.cfg.GroupBase, err)
	}
	out := make([]group, 0, len(res.Entries))
	for _, e := range res.Entries {
		d, err := goldap.ParseDN(e.DN)
		if err != nil {
			continue
		}
		out = append(out, group{dn: d, cns: e.GetAttributeValues("cn")})
	}
	return out, nil
}

func (a *Authenticator) roles(groups []group) []string {
	var roles []string
	for _, g := range groups {
		for _, r := range a.rules {
			if r.matches(g) && !slices.Contains(roles, r.role) {
				roles = append(roles, r.role)
			}
		}
	}
	slices.Sort(roles)
	return roles
}

// rule is one entry of Roles.
type rule struct {
	dn   *goldap.DN // a full DN or a single RDN
	cn   string
	role string
}

func parseRule(key, role string) (rule, error) {
	r := rule{role: role}
	if strings.TrimSpace(role) == "" {
		return r, errors.New("the role is empty; name the relman role this group gives")
	}
	if !strings.Contains(key, "=") {
		if strings.TrimSpace(key) == "" {
			return r, errors.New("the group is empty")
		}
		r.cn = key
		return r, nil
	}
	d, err := goldap.ParseDN(key)
	if err != nil {
		return r, fmt.Errorf("%q is neither a group's cn nor a DN: %v", key, err)
	}
	r.dn = d
	return r, nil
}

func (r rule) matches(g group) bool {
	if r.dn == nil {
		for _, cn := range g.cns {
			if strings.EqualFold(cn, r.cn) {
				return true
			}
		}
		return false
	}
	if r.dn.EqualFold(g.dn) {
		return true
	}
	// cn=deployers names the group by its first RDN, wherever it sits.
	return len(r.dn.RDNs) == 1 && len(g.dn.RDNs) > 0 && r.dn.RDNs[0].EqualFold(g.dn.RDNs[0])
}

func groupFilter(f, dn, name string) string {
	return strings.NewReplacer("{dn}", goldap.EscapeFilter(dn), "{user}", goldap.EscapeFilter(name)).Replace(f)
}

// loopback reports whether host names this machine: localhost or a
// loopback address, where a password in clear never leaves the machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
