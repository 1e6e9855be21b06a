package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/relman/relman/auth"
)

// Htpasswd authenticates against Apache's files, which many teams already
// keep for their web servers: an htpasswd file of bcrypt hashes
// (`htpasswd -B`) and an htgroup file whose group names are the relman
// roles ("deployers: alice bob"). The files are read at every login, so
// edits need no restart.
//
// It is also an auth.Authorizer: while FreezeFile exists, every install is
// refused with the file's first line as the reason (a change freeze).
type Htpasswd struct {
	PasswordFile string
	GroupFile    string
	FreezeFile   string
}

// dummyHash keeps a login for an unknown user as slow as a wrong password,
// so timing does not tell which users exist.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)

// Authenticate checks the password against the user's bcrypt hash.
func (h *Htpasswd) Authenticate(_ context.Context, c auth.Credentials) (auth.Principal, error) {
	hashes, err := readPairs(h.PasswordFile, ":")
	if err != nil {
		return auth.Principal{}, &auth.UnavailableError{Server: "the htpasswd file", Err: err}
	}
	hash, ok := hashes[c.Username]
	if !ok || c.Password == "" || !strings.HasPrefix(hash, "$2") {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(c.Password))
		return auth.Principal{}, auth.ErrDenied
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(c.Password)) != nil {
		return auth.Principal{}, auth.ErrDenied
	}
	groups, err := readPairs(h.GroupFile, ":")
	if err != nil {
		return auth.Principal{}, &auth.UnavailableError{Server: "the htgroup file", Err: err}
	}
	var roles []string
	for group, members := range groups {
		if slices.Contains(strings.Fields(members), c.Username) {
			roles = append(roles, group)
		}
	}
	slices.Sort(roles)
	return auth.Principal{Name: c.Username, Roles: roles}, nil
}

// Authorize refuses installs during a change freeze. The manager asks only
// after its policy allowed the request.
func (h *Htpasswd) Authorize(_ context.Context, _ auth.Principal, r auth.Request) error {
	if h.FreezeFile == "" || r.Action != auth.ActionInstall {
		return nil
	}
	b, err := os.ReadFile(h.FreezeFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Not knowing whether a freeze is on refuses, never allows.
		return &auth.UnavailableError{Server: "the freeze file", Err: err}
	}
	reason, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Errorf("a change freeze is on (%s)", reason)
}

// readPairs reads "key<sep>value" lines, skipping blanks and # comments.
func readPairs(path, sep string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, s.Err()
}
