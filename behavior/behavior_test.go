package behavior_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("tree = %v, want %v", got, want)
		return
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("file %s = %q, want %q (tree %v)", k, got[k], v, got)
		}
	}
}

// tarGz packs files with archive.WriteTarGz into a file and returns its path.
func tarGz(t *testing.T, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, files)
	p := filepath.Join(t.TempDir(), "a.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteTarGz(context.Background(), f, src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func lookup(t *testing.T, name string) behavior.Behavior {
	t.Helper()
	b, err := behavior.Builtin().Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unarchive(t *testing.T, resource, format, dest string) error {
	t.Helper()
	return lookup(t, "unarchive").Install(context.Background(), behavior.Request{
		Transaction: "tx", Project: "web", Env: "test", Target: "site",
		Resource: resource, Format: format, Name: "site.tar.gz",
		Config:  config.InstallBehavior{Behavior: "unarchive", Path: dest},
		WorkDir: t.TempDir(), Log: quietLog,
	})
}

// onlyEntry fails unless dir holds exactly the entry name: no staging dirs
// or other leftovers beside an install path.
func onlyEntry(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{name}) {
		t.Errorf("%s holds %v, want only %s", dir, names, name)
	}
}

func TestUnarchiveIntoNewDest(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "does", "not", "exist")
	dest := filepath.Join(parent, "site")
	files := map[string]string{"index.html": "v1\n", "a/b/c.txt": "deep\n"}
	if err := unarchive(t, tarGz(t, files), "tar.gz", dest); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readTree(t, dest), files)
	fi, err := os.Stat(dest)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("dest mode = %v, %v; want 0755", fi.Mode(), err)
	}
	onlyEntry(t, parent, "site")
}

func TestUnarchiveReplacesExistingDest(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "site")
	writeTree(t, dest, map[string]string{"index.html": "old\n", "old-only/x.txt": "x\n"})
	outside := filepath.Join(parent, "keep.txt") // a sibling that must survive
	if err := os.WriteFile(outside, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}

	files := map[string]string{"index.html": "new\n", "new.txt": "n\n"}
	if err := unarchive(t, tarGz(t, files), "tar.gz", dest); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readTree(t, dest), files)
	after, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	// The directory itself was swapped, not refilled in place.
	if os.SameFile(before, after) {
		t.Error("dest is the same directory as before; want the staged one swapped in")
	}
	entries, _ := os.ReadDir(parent)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if strings.Contains(e.Name(), ".relman-staging") {
			t.Errorf("staging dir %s left beside dest", e.Name())
		}
	}
	if !slices.Equal(names, []string{"keep.txt", "site"}) {
		t.Errorf("parent holds %v, want keep.txt and site", names)
	}

	// Installing again (a retry) gives the same result.
	if err := unarchive(t, tarGz(t, files), "tar.gz", dest); err != nil {
		t.Fatal(err)
	}
	sameTree(t, readTree(t, dest), files)
}

func TestUnarchiveFailureKeepsOldDest(t *testing.T) {
	// A truncated archive: the first entry extracts, then the stream ends.
	full, err := os.ReadFile(tarGz(t, map[string]string{"a.txt": strings.Repeat("a", 4096), "b.txt": strings.Repeat("b", 4096)}))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.tar.gz")
	if err := os.WriteFile(truncated, full[:len(full)-40], 0o644); err != nil {
		t.Fatal(err)
	}
	notAnArchive := filepath.Join(t.TempDir(), "plain.tar.gz")
	if err := os.WriteFile(notAnArchive, []byte("this is not gzip\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for name, resource := range map[string]string{"truncated": truncated, "not an archive": notAnArchive} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "site")
			old := map[string]string{"index.html": "old\n", "sub/keep.bin": "\x00\x01\x02binary"}
			writeTree(t, dest, old)
			if err := unarchive(t, resource, "tar.gz", dest); err == nil {
				t.Fatal("want an error")
			}
			sameTree(t, readTree(t, dest), old)
			onlyEntry(t, parent, "site")
		})
	}
}

func TestUnarchiveRefusesSingleFile(t *testing.T) {
	parent := t.TempDir()
	f := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := unarchive(t, f, "file", filepath.Join(parent, "site"))
	if !errors.Is(err, behavior.ErrWrongFormat) {
		t.Fatalf("err = %v, want ErrWrongFormat", err)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("a refused install wrote %d entries", len(entries))
	}
}

func copyReq(t *testing.T, resource, name, dest, mode string) behavior.Request {
	return behavior.Request{
		Transaction: "tx", Env: "test", Target: "tool",
		Resource: resource, Format: "file", Name: name,
		Config:  config.InstallBehavior{Behavior: "copy", Path: dest, Mode: mode},
		WorkDir: t.TempDir(), Log: quietLog,
	}
}

func TestCopyIntoExistingDirectoryUsesName(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(t.TempDir(), "download-123")
	if err := os.WriteFile(res, []byte("binary\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := lookup(t, "copy").Install(context.Background(), copyReq(t, res, "mytool", dir, "")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mytool"))
	if err != nil || string(b) != "binary\n" {
		t.Fatalf("mytool = %q, %v", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "mytool"))
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("default mode = %v, want 0644", fi.Mode().Perm())
	}
	onlyEntry(t, dir, "mytool")
}

func TestCopyNameCannotEscapeDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(t.TempDir(), "r")
	if err := os.WriteFile(res, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := lookup(t, "copy").Install(context.Background(), copyReq(t, res, "../evil", dir, "")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "evil")); !os.IsNotExist(err) {
		t.Error("a name with .. wrote outside the directory")
	}
	onlyEntry(t, dir, "evil")
}

func TestCopyModeAndBadMode(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "bin", "tool")
	res := filepath.Join(t.TempDir(), "r")
	if err := os.WriteFile(res, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := lookup(t, "copy").Install(context.Background(), copyReq(t, res, "tool", dest, "0755")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dest)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode = %v, %v; want 0755", fi.Mode(), err)
	}
	if err := lookup(t, "copy").Install(context.Background(), copyReq(t, res, "tool", dest, "rwx")); err == nil {
		t.Error("a non-octal mode was accepted")
	}
}

func TestRegisterAndLookupCustom(t *testing.T) {
	var got behavior.Request
	reg := behavior.Builtin()
	reg.Register("test-custom", behavior.Func(func(_ context.Context, req behavior.Request) error {
		got = req
		return nil
	}))
	b, err := reg.Lookup("test-custom")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Install(context.Background(), behavior.Request{Target: "t1", Config: config.InstallBehavior{Options: map[string]string{"k": "v"}}}); err != nil {
		t.Fatal(err)
	}
	if got.Target != "t1" || got.Config.Options["k"] != "v" {
		t.Errorf("behavior got %+v", got)
	}
	if !slices.Contains(reg.Names(), "test-custom") {
		t.Errorf("Names() = %v, want test-custom in it", reg.Names())
	}
	// A registry is a value: another installer's registry does not know it.
	if _, err := behavior.Builtin().Lookup("test-custom"); err == nil {
		t.Error("a behavior registered in one registry is known to another")
	}
	// The registry checks an installer config's behavior names.
	c := &config.Installer{Environments: map[string]map[string]config.InstallBehavior{
		"test": {"a": {Behavior: "test-custom"}, "b": {Behavior: "teleport"}},
	}}
	if err := reg.Check(c); err == nil || !strings.Contains(err.Error(), "environments.test.b.behavior") || strings.Contains(err.Error(), "environments.test.a") {
		t.Errorf("Check = %v, want only environments.test.b.behavior named", err)
	}
}

func TestLookupUnknownListsKnown(t *testing.T) {
	_, err := behavior.Builtin().Lookup("teleport")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range []string{`"teleport"`, "unarchive", "copy", "command"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not mention %s", err, s)
		}
	}
}

func TestCommandRunsConfiguredArgv(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	res := filepath.Join(t.TempDir(), "r")
	if err := os.WriteFile(res, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	req := behavior.Request{
		Transaction: "tx-9", Project: "web", Env: "qa", Target: "hook", Resource: res, Format: "file",
		Config:  config.InstallBehavior{Behavior: "command", Command: []string{"sh", "-c", `echo "$RELMAN_PROJECT $RELMAN_FORMAT $PWD" > "$0"`, out}},
		WorkDir: work, Log: quietLog,
	}
	if err := lookup(t, "command").Install(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Without an existing directory at Path, the command runs in the work dir.
	if want := "web file " + work + "\n"; !bytes.Equal(b, []byte(want)) {
		t.Errorf("command wrote %q, want %q", b, want)
	}
	req.Config.Command = nil
	if err := lookup(t, "command").Install(context.Background(), req); err == nil {
		t.Error("an empty command was accepted")
	}
}

// The transaction id comes from the requester (relman release --request-id
// becomes the workflow id), so it must never steer where the installer
// writes its command log.
func TestCommandLogStaysInWorkDir(t *testing.T) {
	root := t.TempDir()
	work := filepath.Join(root, "a", "b", "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(t.TempDir(), "r")
	if err := os.WriteFile(res, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	req := behavior.Request{
		Transaction: "../../../escaped", Env: "test", Target: "hook", Resource: res, Format: "file",
		Config:  config.InstallBehavior{Behavior: "command", Command: []string{"echo", "hello"}},
		WorkDir: work, Log: quietLog,
	}
	if err := lookup(t, "command").Install(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if rel, _ := filepath.Rel(filepath.Join(work, "logs"), p); strings.HasPrefix(rel, "..") {
			t.Errorf("command wrote %s, outside %s", p, filepath.Join(work, "logs"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
