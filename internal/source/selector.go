// Package source checks out a project's source for a build.
//
// A selector (trunk, branch, tag, revision or url) comes from a user's request, so
// everything here treats it as hostile: it is validated against a tight charset before
// any tool sees it, and every tool invocation puts "--" or "--end-of-options" in front
// of it so a value can never turn into an option. The result is always a plain tree
// of files without version-control metadata, because the build must not depend on
// (or be able to tamper with) the repository it came from.
package source

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Selector picks what to build. At most one field may be set; none means trunk, so the
// zero value is the common case.
type Selector struct {
	Trunk    bool
	Branch   string
	Tag      string
	Revision string
	URL      string
}

// Checkout describes a finished checkout.
type Checkout struct {
	// Dir holds a clean tree of exactly Commit, without .git or .svn.
	Dir string
	// Commit is the full sha (git) or the revision number (svn), so a build can be
	// reproduced from it even after branches and tags move.
	Commit string
	// Describe is a human-friendly name for Commit, e.g. `git describe` output.
	Describe string
}

var (
	// ErrBadSelector marks a selector that can never succeed as given (bad syntax, url
	// not allowed), so callers can fail the request without retrying.
	ErrBadSelector = errors.New("bad source selector")
	// ErrNotFound marks a branch, tag or revision that does not exist in the repository.
	ErrNotFound = errors.New("source not found")
)

const (
	maxRefLen = 255
	maxURLLen = 2048
)

// ValidateSelector checks a selector's syntax only. It accepts revisions of both
// backends (hex for git, digits for svn) and does not know the allowed url prefixes:
// each backend re-checks what is specific to it.
func ValidateSelector(sel Selector) error {
	set := 0
	for _, b := range []bool{sel.Trunk, sel.Branch != "", sel.Tag != "", sel.Revision != "", sel.URL != ""} {
		if b {
			set++
		}
	}
	if set > 1 {
		return fmt.Errorf("%w: at most one of trunk, branch, tag, revision and url may be set", ErrBadSelector)
	}
	switch {
	case sel.Branch != "":
		return validRefName("branch", sel.Branch)
	case sel.Tag != "":
		return validRefName("tag", sel.Tag)
	case sel.Revision != "":
		if !isGitRevision(sel.Revision) && !isSvnRevision(sel.Revision) {
			return fmt.Errorf("%w: revision %q: want 4 to 64 hex digits (git) or a revision number (svn)", ErrBadSelector, sel.Revision)
		}
	case sel.URL != "":
		return validURL(sel.URL)
	}
	return nil
}

// validRefName follows git check-ref-format closely enough that a name accepted here
// is also a valid git ref and a safe svn path below branches/ or tags/.
func validRefName(kind, name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %q: %s", ErrBadSelector, kind, name, why)
	}
	if len(name) > maxRefLen {
		return bad("too long")
	}
	if !utf8.ValidString(name) {
		return bad("not valid UTF-8")
	}
	if strings.HasPrefix(name, "-") {
		return bad("must not start with '-'")
	}
	if name == "@" {
		return bad("must not be '@'")
	}
	for _, s := range []string{"..", "@{", "//"} {
		if strings.Contains(name, s) {
			return bad(fmt.Sprintf("must not contain %q", s))
		}
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return bad("must not contain spaces or control characters")
		}
		if strings.ContainsRune(":~^?*[\\", r) {
			return bad(fmt.Sprintf("must not contain %q", r))
		}
	}
	if strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") {
		return bad("must not start or end with '/' or end with '.'")
	}
	for _, c := range strings.Split(name, "/") {
		if strings.HasPrefix(c, ".") || strings.HasSuffix(c, ".lock") {
			return bad("a path component must not start with '.' or end with '.lock'")
		}
	}
	return nil
}

func isGitRevision(s string) bool {
	if len(s) < 4 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}

// isSvnRevision caps the length so the number always fits an int64.
func isSvnRevision(s string) bool {
	if len(s) == 0 || len(s) > 18 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

var urlSchemes = []string{"http", "https", "ssh", "git", "svn", "svn+ssh", "file"}

func validURL(raw string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: url %q: %s", ErrBadSelector, raw, why)
	}
	if len(raw) > maxURLLen {
		return bad("too long")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f {
			return bad("must be printable ASCII without spaces")
		}
	}
	if strings.ContainsAny(raw, "\\#?") {
		return bad("must not contain '\\', '#' or '?'")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("does not parse")
	}
	scheme, _, _ := strings.Cut(raw, ":")
	if !contains(urlSchemes, scheme) {
		return bad("scheme must be one of " + strings.Join(urlSchemes, ", "))
	}
	if !strings.HasPrefix(raw, scheme+"://") {
		return bad("must be scheme://...")
	}
	if u.Scheme == "file" {
		if u.Host != "" && u.Host != "localhost" {
			return bad("file url must not name a host")
		}
	} else if u.Hostname() == "" || strings.HasPrefix(u.Host, "-") {
		return bad("needs a host")
	}
	// Dot segments would let "allowed/prefix/../elsewhere" escape a prefix check.
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == ".." || seg == "." {
			return bad("must not contain '.' or '..' path segments")
		}
	}
	return nil
}

// urlAllowed requires a match on a path boundary, so the prefix "https://h/team" does not
// admit "https://h/team-evil" or "https://h/team@evil". With no prefixes configured only
// the configured repository (and, for svn, paths inside it) is allowed.
func urlAllowed(raw string, prefixes []string, own string) bool {
	if len(prefixes) == 0 {
		prefixes = []string{own}
	}
	for _, p := range prefixes {
		if p == "" {
			continue
		}
		if raw == p {
			return true
		}
		if !strings.HasPrefix(raw, p) {
			continue
		}
		if strings.HasSuffix(p, "/") || raw[len(p)] == '/' {
			return true
		}
	}
	return false
}

// checkURL applies the backend-specific rules on top of ValidateSelector.
func checkURL(raw string, schemes, prefixes []string, own string) error {
	scheme, _, _ := strings.Cut(raw, ":")
	if !contains(schemes, scheme) {
		return fmt.Errorf("%w: url %q: scheme %q not supported here (want %s)", ErrBadSelector, raw, scheme, strings.Join(schemes, ", "))
	}
	if !urlAllowed(raw, prefixes, own) {
		return fmt.Errorf("%w: url %q is not under an allowed prefix", ErrBadSelector, redactURL(raw))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
