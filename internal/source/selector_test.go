package source

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateSelector(t *testing.T) {
	good := []Selector{
		{},
		{Trunk: true},
		{Branch: "main"},
		{Branch: "release/1.2"},
		{Branch: "feature_x-y.z"},
		{Tag: "v1.2.3"},
		{Tag: "ünïcode"},
		{Revision: "abcd"},
		{Revision: strings.Repeat("a", 64)},
		{Revision: "12"}, // svn
		{Revision: "0"},
		{URL: "https://git.example.com/team/repo.git"},
		{URL: "ssh://git@git.example.com:2222/team/repo.git"},
		{URL: "git://git.example.com/repo"},
		{URL: "svn://svn.example.com/repo/trunk"},
		{URL: "svn+ssh://svn.example.com/repo/trunk"},
		{URL: "file:///srv/git/repo.git"},
	}
	for _, sel := range good {
		if err := ValidateSelector(sel); err != nil {
			t.Errorf("%+v: %v", sel, err)
		}
	}
	bad := []Selector{
		{Trunk: true, Tag: "v1"},
		{Branch: "a", Revision: "abcd"},
		{Branch: "--upload-pack=evil"},
		{Branch: "-x"},
		{Branch: "a..b"},
		{Branch: "foo bar"},
		{Branch: "tab\there"},
		{Branch: "nl\n"},
		{Branch: "a:b"}, {Branch: "a~1"}, {Branch: "a^"}, {Branch: "a?"}, {Branch: "a*"}, {Branch: "a[b"}, {Branch: `a\b`},
		{Branch: "a@{1}"}, {Branch: "@"}, {Branch: "/a"}, {Branch: "a/"}, {Branch: "a//b"}, {Branch: "a."},
		{Branch: ".hidden"}, {Branch: "a/.b"}, {Branch: "x.lock"},
		{Branch: "rtl\u202egnp"},
		{Branch: "\xff"},
		{Branch: strings.Repeat("a", 256)},
		{Tag: "--force"},
		{Revision: "abc"},
		{Revision: strings.Repeat("a", 65)},
		{Revision: "xyz1"},
		{Revision: "HEAD"},
		{Revision: "-1"},
		{URL: "ftp://example.com/repo"},
		{URL: "ext::sh -c evil"},
		{URL: "-oProxyCommand=evil"},
		{URL: "ssh://-oProxyCommand=evil/x"},
		{URL: "https://example.com/a b"},
		{URL: "https:///nohost"},
		{URL: "https://example.com/a/../b"},
		{URL: "https://example.com/repo?x=1"},
		{URL: "https://example.com/repo#frag"},
		{URL: "git@example.com:team/repo.git"},
		{URL: "file://otherhost/srv/repo"},
		{URL: "https://example.com/\u00e9"},
	}
	for _, sel := range bad {
		if err := ValidateSelector(sel); !errors.Is(err, ErrBadSelector) {
			t.Errorf("%+v: err = %v, want ErrBadSelector", sel, err)
		}
	}
}

func TestURLAllowed(t *testing.T) {
	prefixes := []string{"https://git.example.com/team", "ssh://git.example.com/"}
	for u, want := range map[string]bool{
		"https://git.example.com/team":            true,
		"https://git.example.com/team/repo.git":   true,
		"https://git.example.com/team-evil/repo":  false,
		"https://git.example.com/team@evil.com/x": false,
		"https://git.example.com/other/repo":      false,
		"ssh://git.example.com/anything":          true,
		"ssh://git.example.com.evil.com/x":        false,
		"http://git.example.com/team/repo.git":    false,
	} {
		if got := urlAllowed(u, prefixes, "unused"); got != want {
			t.Errorf("%s: allowed = %v, want %v", u, got, want)
		}
	}
	if !urlAllowed("svn://h/repo/branches/x", nil, "svn://h/repo") || urlAllowed("svn://h/repo2", nil, "svn://h/repo") {
		t.Error("with no prefixes only the configured repository and paths inside it are allowed")
	}
}

func TestRedact(t *testing.T) {
	got := redact("fatal: unable to access 'https://bob:hunter2@git.example.com/x.git/': 403")
	if strings.Contains(got, "hunter2") || !strings.Contains(got, "https://bob:xxxxx@git.example.com") {
		t.Errorf("redact = %q", got)
	}
}
