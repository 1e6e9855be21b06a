package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireSvn skips only on a developer machine without subversion; in CI a missing
// svn is a broken image, and the tests must fail rather than silently pass.
func requireSvn(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"svnadmin", "svn"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "" {
				t.Skipf("%s not on PATH", bin)
			}
			t.Fatalf("%s not on PATH and CI is set: %v", bin, err)
		}
	}
}

type svnRepo struct {
	t    *testing.T
	root string // url
	cfg  string
	dir  string // scratch space
}

func (r *svnRepo) svn(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("svn", append([]string{"--non-interactive", "--config-dir", r.cfg}, args...)...)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("svn %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// newSvnRepo builds:
//
//	r1 import trunk/README=one, branches/, tags/
//	r2 trunk/README=two, trunk/src/main.txt
//	r3 tags/v1 copied from trunk@2
//	r4 branches/feature copied from trunk@2
//	r5 branches/feature/feature.txt
func newSvnRepo(t *testing.T) *svnRepo {
	t.Helper()
	requireSvn(t)
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	if out, err := exec.Command("svnadmin", "create", repoDir).CombinedOutput(); err != nil {
		t.Fatalf("svnadmin create: %v\n%s", err, out)
	}
	r := &svnRepo{t: t, root: "file://" + repoDir, cfg: filepath.Join(base, "cfg"), dir: base}
	imp := filepath.Join(base, "import")
	for _, d := range []string{"trunk", "branches", "tags"} {
		if err := os.MkdirAll(filepath.Join(imp, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(imp, "trunk", "README"), "one\n")
	r.svn("import", "-q", "-m", "layout", imp, r.root)

	wc := filepath.Join(base, "wc")
	r.svn("checkout", "-q", r.root+"/trunk", wc)
	writeFile(t, filepath.Join(wc, "README"), "two\n")
	writeFile(t, filepath.Join(wc, "src", "main.txt"), "main\n")
	r.svn("add", "-q", filepath.Join(wc, "src"))
	r.svn("commit", "-q", "-m", "second", wc)

	r.svn("copy", "-q", "-m", "tag v1", r.root+"/trunk@2", r.root+"/tags/v1")
	r.svn("copy", "-q", "-m", "branch feature", r.root+"/trunk@2", r.root+"/branches/feature")

	bwc := filepath.Join(base, "bwc")
	r.svn("checkout", "-q", r.root+"/branches/feature", bwc)
	writeFile(t, filepath.Join(bwc, "feature.txt"), "feature\n")
	r.svn("add", "-q", filepath.Join(bwc, "feature.txt"))
	r.svn("commit", "-q", "-m", "feature", bwc)
	return r
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSvnCheckout(t *testing.T) {
	r := newSvnRepo(t)
	s := &Svn{Root: r.root + "/"}
	cases := []struct {
		name       string
		sel        Selector
		commit     string
		describe   string
		readme     string
		hasMain    bool
		hasFeature bool
	}{
		{"default", Selector{}, "2", "trunk@2", "two\n", true, false},
		{"trunk", Selector{Trunk: true}, "2", "trunk@2", "two\n", true, false},
		{"tag", Selector{Tag: "v1"}, "3", "tags/v1@3", "two\n", true, false},
		{"branch", Selector{Branch: "feature"}, "5", "branches/feature@5", "two\n", true, true},
		{"revision 1", Selector{Revision: "1"}, "1", "trunk@1", "one\n", false, false},
		// HEAD is r5, but trunk last changed in r2: Commit names the tree, not the clock.
		{"revision HEAD", Selector{Revision: "5"}, "2", "trunk@2", "two\n", true, false},
		{"url", Selector{URL: r.root + "/branches/feature"}, "5", "branches/feature@5", "two\n", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "src")
			co, err := s.Checkout(context.Background(), tc.sel, dest)
			if err != nil {
				t.Fatal(err)
			}
			if co.Commit != tc.commit || co.Describe != tc.describe || co.Dir != dest {
				t.Errorf("got %+v, want Commit %s Describe %s Dir %s", co, tc.commit, tc.describe, dest)
			}
			if got := readFile(t, filepath.Join(dest, "README")); got != tc.readme {
				t.Errorf("README = %q, want %q", got, tc.readme)
			}
			if got := exists(filepath.Join(dest, "src", "main.txt")); got != tc.hasMain {
				t.Errorf("src/main.txt present = %v, want %v", got, tc.hasMain)
			}
			if got := exists(filepath.Join(dest, "feature.txt")); got != tc.hasFeature {
				t.Errorf("feature.txt present = %v, want %v", got, tc.hasFeature)
			}
			if exists(filepath.Join(dest, ".svn")) {
				t.Error("dest contains .svn")
			}
		})
	}
}

func TestSvnNotFound(t *testing.T) {
	r := newSvnRepo(t)
	s := &Svn{Root: r.root}
	for _, sel := range []Selector{{Branch: "nope"}, {Tag: "v9"}, {Revision: "99"}, {URL: r.root + "/nothing/here"}} {
		dest := filepath.Join(t.TempDir(), "src")
		_, err := s.Checkout(context.Background(), sel, dest)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%+v: err = %v, want ErrNotFound", sel, err)
		}
	}
}

func TestSvnBadSelector(t *testing.T) {
	r := newSvnRepo(t)
	s := &Svn{Root: r.root}
	for _, sel := range []Selector{
		{Branch: "-x"},
		{Branch: "--config-option=x"},
		{Branch: "a..b"},
		{Branch: "../trunk"},
		{Tag: "foo bar"},
		{Revision: "abcd"},
		{Revision: "-r1"},
		{URL: "file:///etc"},
		{URL: r.root + "-evil/trunk"},
		{URL: "git://example.com/x"},
	} {
		_, err := s.Checkout(context.Background(), sel, filepath.Join(t.TempDir(), "src"))
		if !errors.Is(err, ErrBadSelector) {
			t.Errorf("%+v: err = %v, want ErrBadSelector", sel, err)
		}
	}
}

// TestSvnPassword runs a real svnserve that requires a password, and records every
// svn command line through a wrapper on PATH to prove the password is not on one.
func TestSvnPassword(t *testing.T) {
	requireSvn(t)
	svnserve, err := exec.LookPath("svnserve")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("svnserve not on PATH")
		}
		t.Fatal(err)
	}
	r := newSvnRepo(t)
	repoDir := strings.TrimPrefix(r.root, "file://")
	writeFile(t, filepath.Join(repoDir, "conf", "svnserve.conf"),
		"[general]\nanon-access = none\nauth-access = read\npassword-db = passwd\nrealm = relman-test\n")
	const password = "pa55-w0rd-s3cret"
	writeFile(t, filepath.Join(repoDir, "conf", "passwd"), "[users]\nalice = "+password+"\n")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := exec.Command(svnserve, "-d", "--foreground", "--listen-host", "127.0.0.1", "--listen-port", fmt.Sprint(port), "-r", filepath.Dir(repoDir))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "svnserve did not start on %s", addr)

	realSvn, _ := exec.LookPath("svn")
	bin := t.TempDir()
	argLog := filepath.Join(t.TempDir(), "argv")
	writeFile(t, filepath.Join(bin, "svn"), "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '"+argLog+"'\nexec '"+realSvn+"' \"$@\"\n")
	if err := os.Chmod(filepath.Join(bin, "svn"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	root := "svn://" + addr + "/" + filepath.Base(repoDir)
	s := &Svn{Root: root, Username: "alice", Password: password}
	dest := filepath.Join(t.TempDir(), "src")
	co, err := s.Checkout(context.Background(), Selector{Tag: "v1"}, dest)
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != "3" || readFile(t, filepath.Join(dest, "README")) != "two\n" {
		t.Errorf("got %+v", co)
	}
	argv := readFile(t, argLog)
	if !strings.Contains(argv, "export") || !strings.Contains(argv, "--username alice") {
		t.Errorf("wrapper did not see the svn calls: %s", argv)
	}
	if strings.Contains(argv, password) {
		t.Errorf("password appeared on a command line: %s", argv)
	}

	s.Password = "wrong"
	_, err = s.Checkout(context.Background(), Selector{Tag: "v1"}, filepath.Join(t.TempDir(), "src"))
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	t.Logf("wrong password: %v", err)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadSelector) {
		t.Errorf("auth failure misclassified: %v", err)
	}
}
