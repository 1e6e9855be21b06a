// Package ldaptest starts a real OpenLDAP server (Debian's slapd) for tests:
// its own config, data directory and free port, seeded with users and
// groups, stopped when the test ends. Tests of LDAP realms bind against it
// exactly as against an organisation's directory.
package ldaptest

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relman/relman/harness/testcert"
)

// Base is the directory's suffix; People and Groups hold its entries.
const (
	Base   = "dc=example,dc=org"
	People = "ou=people," + Base
	Groups = "ou=groups," + Base
)

// UserDN is the user_dn template of the seeded directory.
const UserDN = "uid=%s," + People

// User is a person entry (inetOrgPerson) under People.
type User struct {
	UID      string
	Password string
}

// Group is a group under Groups: a groupOfNames listing its members' DNs,
// or with Posix set a posixGroup listing their uids (memberUid), the two
// shapes directories use.
type Group struct {
	CN      string
	Members []string // uids
	Posix   bool
}

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:PORT.
	URL string
	// With StartTLS: LDAPS is ldaps://localhost:PORT, and CAFile the PEM
	// of the CA that signed the server's certificate (for localhost and
	// 127.0.0.1); URL then offers StartTLS.
	LDAPS  string
	CAFile string
	dir    string
	cmd    *exec.Cmd
	done   chan struct{}
	log    *bytes.Buffer
}

// Install is what to run where slapd is missing.
const Install = "apt-get install slapd ldap-utils (as root)"

// Binary finds slapd; Debian installs it in /usr/sbin, which a non-root
// PATH may not include.
func Binary() (string, error) {
	if p, err := exec.LookPath("slapd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/slapd", "/usr/local/sbin/slapd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("slapd is not installed; %s", Install)
}

// Start seeds a directory and serves it until the test ends. Without slapd
// the test is skipped, except in CI (CI set), where it fails.
func Start(t testing.TB, users []User, groups []Group) *Server {
	t.Helper()
	return start(t, users, groups, false)
}

// StartTLS is Start with TLS: ldaps:// on a second port and StartTLS on
// the first, with a certificate from a CA made for the test.
func StartTLS(t testing.TB, users []User, groups []Group) *Server {
	t.Helper()
	return start(t, users, groups, true)
}

func start(t testing.TB, users []User, groups []Group, withTLS bool) *Server {
	t.Helper()
	slapd, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	global := ""
	if withTLS {
		global = tlsFiles(t, dir)
	}
	if err := os.WriteFile(conf, []byte(slapdConf(dir, global)), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.ldif")
	if err := os.WriteFile(seed, []byte(seedLDIF(users, groups)), 0o600); err != nil {
		t.Fatal(err)
	}
	// slapadd loads the directory offline, before slapd serves it.
	slapadd := filepath.Join(filepath.Dir(slapd), "slapadd")
	if out, err := exec.Command(slapadd, "-q", "-f", conf, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v: %s", err, out)
	}
	s := &Server{dir: dir, done: make(chan struct{}), log: &bytes.Buffer{}}
	port := freePort(t)
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(port)
	listen := s.URL + "/"
	if withTLS {
		s.LDAPS = "ldaps://localhost:" + strconv.Itoa(freePort(t))
		s.CAFile = filepath.Join(dir, "ca.pem")
		listen += " " + s.LDAPS + "/"
	}
	// -d 0 keeps slapd in the foreground, a child the test can stop.
	s.cmd = exec.Command(slapd, "-f", conf, "-h", listen, "-d", "0")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.Stop)
	if err := s.wait(port); err != nil {
		t.Fatalf("slapd on %s: %v: %s", s.URL, err, s.log)
	}
	return s
}

// wait returns once slapd accepts connections, or it has exited.
func (s *Server) wait(port int) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("slapd exited")
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("slapd did not listen within 30s")
}

// Stop ends slapd (SIGTERM, then SIGKILL) and waits for it, so tests can
// take the directory away and see what a login does then.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// slapdConf is an old-style slapd.conf; global settings (TLS) go before
// the database section, where slapd reads them.
func slapdConf(dir, global string) string {
	// The ACLs are a directory's usual: passwords only for binding, the
	// rest readable by any bound user, nothing for anonymous.
	return fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
%[3]s
database mdb
maxsize 10485760
suffix "%[2]s"
rootdn "cn=admin,%[2]s"
directory %[1]s/data
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none
`, dir, Base, global)
}

func seedLDIF(users []User, groups []Group) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n", Base)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: people\n\n", People)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: groups\n\n", Groups)
	for i, u := range users {
		fmt.Fprintf(&b, "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: %s\ncn: %s\nsn: %s\nuidNumber: %d\ngidNumber: 1000\nhomeDirectory: /home/%s\nuserPassword: %s\n\n",
			u.UID, People, u.UID, u.UID, u.UID, 1000+i, u.UID, ssha(u.Password))
	}
	for i, g := range groups {
		if g.Posix {
			fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: posixGroup\ncn: %s\ngidNumber: %d\n", g.CN, Groups, g.CN, 2000+i)
			for _, m := range g.Members {
				fmt.Fprintf(&b, "memberUid: %s\n", m)
			}
		} else {
			fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: groupOfNames\ncn: %s\n", g.CN, Groups, g.CN)
			if len(g.Members) == 0 {
				// groupOfNames needs a member; the directory's root stands
				// in for none.
				fmt.Fprintf(&b, "member: %s\n", Base)
			}
			for _, m := range g.Members {
				fmt.Fprintf(&b, "member: uid=%s,%s\n", m, People)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// tlsFiles makes a CA and a server certificate for localhost and
// 127.0.0.1 in dir, and returns slapd's global TLS settings for them.
func tlsFiles(t testing.TB, dir string) string {
	t.Helper()
	f := testcert.Make(t, dir)
	return fmt.Sprintf("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", f.CA, f.Cert, f.Key)
}

// ssha is slapd's salted SHA-1 password scheme, so the seed holds no
// password in the clear.
func ssha(password string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	h := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

// FreePort returns a TCP port nothing listens on, for a server that is
// down.
func FreePort(t testing.TB) int { return freePort(t) }

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
