package main

import (
	"context"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/relman/relman/auth"
)

// files writes an htpasswd file for alice and bob, and an htgroup file
// making alice a deployer and both testers.
func files(t *testing.T, dir string) *Htpasswd {
	t.Helper()
	hash := func(pw string) string {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	h := &Htpasswd{
		PasswordFile: filepath.Join(dir, "relman.htpasswd"),
		GroupFile:    filepath.Join(dir, "relman.htgroup"),
		FreezeFile:   filepath.Join(dir, "FREEZE"),
	}
	write(t, h.PasswordFile, "# htpasswd -B\nalice:"+hash("alice-Htpasswd-1")+"\nbob:"+hash("bob-Htpasswd-2")+"\nold:$apr1$md5hash\n")
	write(t, h.GroupFile, "deployers: alice\ntesters: alice bob\n")
	return h
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHtpasswdAuthenticate(t *testing.T) {
	h := files(t, t.TempDir())
	tests := map[string]struct {
		cred  auth.Credentials
		roles []string
		err   error
	}{
		"alice":            {auth.Credentials{Username: "alice", Password: "alice-Htpasswd-1"}, []string{"deployers", "testers"}, nil},
		"bob":              {auth.Credentials{Username: "bob", Password: "bob-Htpasswd-2"}, []string{"testers"}, nil},
		"wrong password":   {auth.Credentials{Username: "alice", Password: "bob-Htpasswd-2"}, nil, auth.ErrDenied},
		"unknown user":     {auth.Credentials{Username: "carol", Password: "alice-Htpasswd-1"}, nil, auth.ErrDenied},
		"empty password":   {auth.Credentials{Username: "alice"}, nil, auth.ErrDenied},
		"not a bcrypt one": {auth.Credentials{Username: "old", Password: "x"}, nil, auth.ErrDenied},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := h.Authenticate(context.Background(), tc.cred)
			if tc.err != nil {
				if err != tc.err {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tc.cred.Username || len(p.Roles) != len(tc.roles) || (len(p.Roles) > 0 && p.Roles[0] != tc.roles[0]) {
				t.Fatalf("got %+v, want roles %v", p, tc.roles)
			}
		})
	}
}

func TestHtpasswdFreeze(t *testing.T) {
	h := files(t, t.TempDir())
	install := auth.Request{Action: auth.ActionInstall, Project: "template", Env: "prod"}
	if err := h.Authorize(context.Background(), auth.Principal{Name: "alice"}, install); err != nil {
		t.Fatalf("no freeze file, refused: %v", err)
	}
	write(t, h.FreezeFile, "release weekend, until Monday 08:00\n")
	err := h.Authorize(context.Background(), auth.Principal{Name: "alice"}, install)
	if err == nil || err.Error() != "a change freeze is on (release weekend, until Monday 08:00)" {
		t.Fatalf("got %v", err)
	}
	if err := h.Authorize(context.Background(), auth.Principal{Name: "alice"}, auth.Request{Action: auth.ActionRead, Project: "template"}); err != nil {
		t.Fatalf("a freeze stops installs, not reads: %v", err)
	}
}

// The example is what a developer outside relman's module can build: no
// file of it may import relman's internal packages.
func TestImportsOnlyPublicPackages(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range names {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); strings.Contains(p, "/internal/") || strings.HasSuffix(p, "/internal") {
				t.Errorf("%s imports %s", name, p)
			}
		}
	}
}
