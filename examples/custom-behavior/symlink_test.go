package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/behavior"
	"github.com/relman/relman/config"
	"github.com/relman/relman/workflows"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// tarGz packs files into a tar.gz as a builder's output would be, with
// the standard library only: the example imports relman's public packages
// and nothing else of relman's.
func tarGz(t *testing.T, files map[string]string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "release.tar.gz")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []io.Closer{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func install(t *testing.T, base, tx, resource, format string) error {
	t.Helper()
	return SymlinkRelease{}.Install(context.Background(), behavior.Request{
		Transaction: tx, Project: "template", Env: "test", Target: "template",
		Resource: resource, Format: format, Name: "template.tar.gz",
		Config:  config.InstallBehavior{Behavior: SymlinkReleaseName, Path: base},
		WorkDir: t.TempDir(), Log: quietLog,
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestSymlinkReleaseInstallTwice(t *testing.T) {
	base := filepath.Join(t.TempDir(), "template")
	if err := install(t, base, "tx-1", tarGz(t, map[string]string{"index.html": "one\n"}), "tar.gz"); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(base, "current", "index.html")); got != "one\n" {
		t.Fatalf("current/index.html = %q after the first install", got)
	}
	if err := install(t, base, "tx-2", tarGz(t, map[string]string{"index.html": "two\n", "new.txt": "n\n"}), "tar.gz"); err != nil {
		t.Fatal(err)
	}

	link, err := os.Readlink(filepath.Join(base, "current"))
	if err != nil {
		t.Fatal(err)
	}
	if link != filepath.Join("releases", "tx-2") {
		t.Errorf("current -> %q, want releases/tx-2", link)
	}
	if got := readFile(t, filepath.Join(base, "current", "index.html")); got != "two\n" {
		t.Errorf("current/index.html = %q, want two", got)
	}
	// The first release is still there, whole.
	if got := readFile(t, filepath.Join(base, "releases", "tx-1", "index.html")); got != "one\n" {
		t.Errorf("releases/tx-1/index.html = %q, want one", got)
	}
	if _, err := os.Stat(filepath.Join(base, "releases", "tx-1", "new.txt")); !os.IsNotExist(err) {
		t.Error("the second release leaked into the first")
	}
	// No temporary symlinks or staging dirs are left.
	if got := entries(t, base); !slices.Equal(got, []string{"current", "releases"}) {
		t.Errorf("%s holds %v", base, got)
	}
	if got := entries(t, filepath.Join(base, "releases")); !slices.Equal(got, []string{"tx-1", "tx-2"}) {
		t.Errorf("releases holds %v", got)
	}
}

func TestSymlinkReleaseRetryAndRollForward(t *testing.T) {
	base := filepath.Join(t.TempDir(), "template")
	r1 := tarGz(t, map[string]string{"index.html": "one\n"})
	r2 := tarGz(t, map[string]string{"index.html": "two\n"})
	for _, step := range []struct{ tx, res string }{{"tx-1", r1}, {"tx-1", r1}, {"tx-2", r2}, {"tx-2", r2}} {
		if err := install(t, base, step.tx, step.res, "tar.gz"); err != nil {
			t.Fatalf("install %s: %v", step.tx, err)
		}
	}
	if got := readFile(t, filepath.Join(base, "current", "index.html")); got != "two\n" {
		t.Errorf("current/index.html = %q, want two", got)
	}
	if got := entries(t, filepath.Join(base, "releases")); !slices.Equal(got, []string{"tx-1", "tx-2"}) {
		t.Errorf("releases holds %v", got)
	}
}

func TestSymlinkReleaseFailuresKeepCurrent(t *testing.T) {
	base := filepath.Join(t.TempDir(), "template")
	if err := install(t, base, "tx-1", tarGz(t, map[string]string{"index.html": "one\n"}), "tar.gz"); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(single, []byte("not an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := install(t, base, "tx-2", single, "file"); !errors.Is(err, behavior.ErrWrongFormat) {
		t.Errorf("single file: err = %v, want ErrWrongFormat", err)
	}
	if err := install(t, base, "tx-3", single, "tar.gz"); err == nil {
		t.Error("garbage labelled tar.gz was installed")
	}
	if got := readFile(t, filepath.Join(base, "current", "index.html")); got != "one\n" {
		t.Errorf("current/index.html = %q after failed installs, want one", got)
	}
	if got := entries(t, filepath.Join(base, "releases")); !slices.Equal(got, []string{"tx-1"}) {
		t.Errorf("releases holds %v after failed installs", got)
	}
}

func TestSymlinkReleaseRefusesRealCurrentDir(t *testing.T) {
	base := filepath.Join(t.TempDir(), "template")
	if err := os.MkdirAll(filepath.Join(base, "current"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := install(t, base, "tx-1", tarGz(t, map[string]string{"index.html": "one\n"}), "tar.gz")
	if err == nil || !strings.Contains(err.Error(), "not a symlink") {
		t.Fatalf("err = %v, want a refusal naming the real directory", err)
	}
}

func TestReleaseName(t *testing.T) {
	for tx, want := range map[string]string{
		"tx-1":                "tx-1",
		"../../etc":           "_.._.._etc",
		"a/b":                 "a_b",
		".hidden":             "_.hidden",
		"0199a1b2-c3d4.e5_f6": "0199a1b2-c3d4.e5_f6",
	} {
		got, err := releaseName(tx)
		if err != nil || got != want {
			t.Errorf("releaseName(%q) = %q, %v; want %q", tx, got, err, want)
		}
		if got != "" && (strings.Contains(got, "/") || !filepath.IsLocal(got)) {
			t.Errorf("releaseName(%q) = %q is not one local path component", tx, got)
		}
	}
	for _, tx := range []string{"", ".", ".."} {
		if _, err := releaseName(tx); err == nil {
			t.Errorf("releaseName(%q) accepted", tx)
		}
	}
}

// The example config loads, and the binary's registry knows its behavior.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := config.LoadInstaller("installer.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ib := cfg.Environments["test"]["template"]
	if ib.Behavior != SymlinkReleaseName || !filepath.IsAbs(ib.Path) {
		t.Errorf("template target = %+v", ib)
	}
	reg := behavior.Builtin()
	if err := reg.Check(cfg); err == nil {
		t.Error("relman's own behaviors know symlink-release")
	}
	reg.Register(SymlinkReleaseName, SymlinkRelease{})
	if err := reg.Check(cfg); err != nil {
		t.Error(err)
	}
}

// The behavior's abilities: what is live, and rolling back to the release
// before, or to a named one; a release not kept is ErrReleaseNotFound.
func TestSymlinkReleaseRollbackAndLive(t *testing.T) {
	base := filepath.Join(t.TempDir(), "template")
	for _, tx := range []string{"tx-1", "tx-2", "tx-3"} {
		if err := install(t, base, tx, tarGz(t, map[string]string{"index.html": tx + "\n"}), "tar.gz"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // releases are ordered by when they were made
	}
	cfg := config.InstallBehavior{Behavior: SymlinkReleaseName, Path: base}
	live, err := SymlinkRelease{}.Live(cfg)
	if err != nil || live.Transaction != "tx-3" || !slices.Equal(live.Releases, []string{"tx-1", "tx-2", "tx-3"}) {
		t.Fatalf("Live = %+v, %v", live, err)
	}
	from, to, err := SymlinkRelease{}.Rollback(context.Background(), behavior.RollbackRequest{Config: cfg})
	if err != nil || from != "tx-3" || to != "tx-2" {
		t.Fatalf("Rollback = %s -> %s, %v; want tx-3 -> tx-2", from, to, err)
	}
	if got := readFile(t, filepath.Join(base, "current", "index.html")); got != "tx-2\n" {
		t.Errorf("current/index.html = %q after rollback", got)
	}
	if _, to, err = (SymlinkRelease{}).Rollback(context.Background(), behavior.RollbackRequest{Config: cfg, To: "tx-1"}); err != nil || to != "tx-1" {
		t.Fatalf("Rollback to tx-1 = %s, %v", to, err)
	}
	if _, _, err = (SymlinkRelease{}).Rollback(context.Background(), behavior.RollbackRequest{Config: cfg}); !errors.Is(err, behavior.ErrReleaseNotFound) {
		t.Errorf("rollback before the first release: err = %v, want ErrReleaseNotFound", err)
	}
	if _, _, err = (SymlinkRelease{}).Rollback(context.Background(), behavior.RollbackRequest{Config: cfg, To: "tx-9"}); !errors.Is(err, behavior.ErrReleaseNotFound) {
		t.Errorf("rollback to a release never made: err = %v, want ErrReleaseNotFound", err)
	}
}

// Through relman's own install activity, with a real file store: download,
// verify, then the custom behavior.
func TestSymlinkReleaseThroughInstallActivity(t *testing.T) {
	ctx := context.Background()
	store, err := artifact.OpenStore(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	base := filepath.Join(t.TempDir(), "template")
	// The installer runs only orders its trusted manager signed.
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inst := &activities.Installer{
		Config: &config.Installer{
			Host: "host-c", WorkDir: t.TempDir(),
			Trust: config.InstallerTrust{ManagerKeys: []string{auth.EncodeManagerKey(pub)}},
			Environments: map[string]map[string]config.InstallBehavior{
				"test": {"template": {Behavior: SymlinkReleaseName, Path: base}},
			},
		},
		Store: store, Log: quietLog, Behaviors: behavior.Builtin(),
	}
	inst.Behaviors.Register(SymlinkReleaseName, SymlinkRelease{})
	for _, v := range []string{"one", "two"} {
		ref, err := store.PutFile(ctx, tarGz(t, map[string]string{"index.html": v + "\n"}))
		if err != nil {
			t.Fatal(err)
		}
		order, err := auth.SignOrder(key, auth.Order{
			ID: "order-" + v, Transaction: "tx-" + v, Host: "host-c", Env: "test", Target: "template",
			Action: workflows.OrderInstall, SHA256: ref.SHA256, Expires: time.Now().Add(time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := inst.Install(ctx, workflows.InstallInput{
			Transaction: "tx-" + v, Project: "template", Env: "test", Target: "template",
			Artifact: workflows.ArtifactRef{Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size, Format: "tar.gz", Name: "template.tar.gz"},
			Order:    &order,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Behavior != SymlinkReleaseName || res.Path != base {
			t.Errorf("result = %+v", res)
		}
	}
	if got := readFile(t, filepath.Join(base, "current", "index.html")); got != "two\n" {
		t.Errorf("current/index.html = %q, want two", got)
	}
	if got := readFile(t, filepath.Join(base, "releases", "tx-one", "index.html")); got != "one\n" {
		t.Errorf("first release = %q, want one", got)
	}
}
