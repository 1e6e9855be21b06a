package source

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Svn exports from a subversion repository. There is no cache: svn export fetches
// exactly one tree, which is what a cache would save anyway.
type Svn struct {
	// Root is the repository url with the conventional trunk/ branches/ tags/ layout.
	Root string
	// Username and Password authenticate to the server. The password is handed to svn
	// on stdin, never on a command line where any local user could read it.
	Username, Password string
	// AllowedURLPrefixes lists where a url selector may point; empty allows only
	// urls inside Root.
	AllowedURLPrefixes []string
}

var svnURLSchemes = []string{"http", "https", "svn", "svn+ssh", "file"}

// svnNotFound are the codes svn uses for a path or revision that does not exist.
var svnNotFound = []string{"E160006", "E160013", "W160013", "E170000", "W170000", "E195012", "E200009"}

// Checkout exports the selected tree into dest, which must be empty or missing.
// Externals are not fetched: they could point anywhere, past the url allow-list.
func (s *Svn) Checkout(ctx context.Context, sel Selector, dest string) (Checkout, error) {
	if err := ValidateSelector(sel); err != nil {
		return Checkout{}, err
	}
	if sel.Revision != "" && !isSvnRevision(sel.Revision) {
		return Checkout{}, fmt.Errorf("%w: revision %q: want a revision number", ErrBadSelector, sel.Revision)
	}
	root := strings.TrimRight(s.Root, "/")
	if root == "" && sel.URL == "" {
		return Checkout{}, errors.New("svn: no repository root configured")
	}
	var target, what string
	peg := "HEAD"
	switch {
	case sel.Branch != "":
		target, what = root+"/branches/"+escapeSvnPath(sel.Branch), "branch "+sel.Branch
	case sel.Tag != "":
		target, what = root+"/tags/"+escapeSvnPath(sel.Tag), "tag "+sel.Tag
	case sel.Revision != "":
		n, _ := strconv.ParseInt(sel.Revision, 10, 64)
		peg = strconv.FormatInt(n, 10)
		target, what = root+"/trunk", "revision "+peg
	case sel.URL != "":
		if err := checkURL(sel.URL, svnURLSchemes, s.AllowedURLPrefixes, root); err != nil {
			return Checkout{}, err
		}
		target, what = strings.TrimRight(sel.URL, "/"), "url "+redactURL(sel.URL)
	default:
		target, what = root+"/trunk", "trunk"
	}
	dest, err := prepareDest(dest)
	if err != nil {
		return Checkout{}, err
	}
	// A private config dir keeps the user's ~/.subversion (stored credentials, proxy
	// and tunnel settings) out of the build.
	cfg, err := os.MkdirTemp("", "relman-svn-config-")
	if err != nil {
		return Checkout{}, fmt.Errorf("svn config: %w", err)
	}
	defer os.RemoveAll(cfg)

	info, err := s.info(ctx, cfg, target+"@"+peg)
	if err != nil {
		if isSvnNotFound(err) {
			return Checkout{}, fmt.Errorf("%w: %s: %v", ErrNotFound, what, err)
		}
		return Checkout{}, fmt.Errorf("resolve %s: %w", what, err)
	}
	rev := info.Commit.Revision
	if rev == "" {
		rev = info.Revision
	}
	if !isSvnRevision(rev) {
		return Checkout{}, fmt.Errorf("resolve %s: svn info gave no revision", what)
	}
	// Exporting at the resolved revision (not HEAD) makes Commit describe exactly the
	// files we exported, even if someone commits meanwhile.
	args := s.args(cfg, "export", "--quiet", "--force", "--ignore-externals", "-r", rev, "--", target+"@"+rev, dest)
	if _, err := run(ctx, invocation{op: "svn export", name: "svn", args: args, env: svnEnv(), stdin: s.stdin()}); err != nil {
		clearDir(dest)
		return Checkout{}, fmt.Errorf("export %s: %w", what, err)
	}
	return Checkout{Dir: dest, Commit: rev, Describe: describeSvn(info, root, rev)}, nil
}

type svnInfo struct {
	Revision    string `xml:"revision,attr"`
	Kind        string `xml:"kind,attr"`
	URL         string `xml:"url"`
	RelativeURL string `xml:"relative-url"`
	Commit      struct {
		Revision string `xml:"revision,attr"`
	} `xml:"commit"`
}

func (s *Svn) info(ctx context.Context, cfg, target string) (svnInfo, error) {
	args := s.args(cfg, "info", "--xml", "--", target)
	out, err := run(ctx, invocation{op: "svn info", name: "svn", args: args, env: svnEnv(), stdin: s.stdin()})
	if err != nil {
		return svnInfo{}, err
	}
	var doc struct {
		Entries []svnInfo `xml:"entry"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		return svnInfo{}, fmt.Errorf("svn info: parse: %w", err)
	}
	if len(doc.Entries) != 1 {
		return svnInfo{}, fmt.Errorf("svn info: want 1 entry, got %d", len(doc.Entries))
	}
	if doc.Entries[0].Kind != "dir" {
		return svnInfo{}, fmt.Errorf("svn info: %s is a %s, not a directory", redactURL(doc.Entries[0].URL), doc.Entries[0].Kind)
	}
	return doc.Entries[0], nil
}

// args builds the options every svn call needs. --password-from-stdin is used instead
// of --password so the secret never shows up in ps or /proc/PID/cmdline.
func (s *Svn) args(cfg, sub string, rest ...string) []string {
	args := []string{sub, "--non-interactive", "--no-auth-cache", "--config-dir", cfg}
	if s.Username != "" {
		args = append(args, "--username", s.Username)
	}
	if s.Password != "" {
		args = append(args, "--password-from-stdin")
	}
	return append(args, rest...)
}

func (s *Svn) stdin() string {
	if s.Password == "" {
		return ""
	}
	return s.Password + "\n"
}

func svnEnv() []string {
	env := baseEnv(func(k string) bool { return k == "SVN_EDITOR" || k == "EDITOR" || k == "VISUAL" })
	// svn refuses to write non-ASCII file names under the C locale; give it UTF-8
	// when the process has no locale at all (typical for services).
	if os.Getenv("LC_ALL") == "" && os.Getenv("LC_CTYPE") == "" && os.Getenv("LANG") == "" {
		env = append(env, "LC_CTYPE=C.UTF-8")
	}
	return env
}

func isSvnNotFound(err error) bool {
	var ce *cmdError
	if !errors.As(err, &ce) {
		return false
	}
	for _, code := range svnNotFound {
		if strings.Contains(ce.stderr, code+":") {
			return true
		}
	}
	return false
}

// escapeSvnPath escapes each path segment of a branch or tag name for use in a url.
func escapeSvnPath(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func describeSvn(info svnInfo, root, rev string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(info.RelativeURL, "^"), "/")
	if rel == "" {
		rel = strings.TrimPrefix(strings.TrimPrefix(info.URL, root), "/")
	}
	if rel == "" {
		rel = redactURL(info.URL)
	}
	if u, err := url.PathUnescape(rel); err == nil {
		rel = u
	}
	return rel + "@" + rev
}
