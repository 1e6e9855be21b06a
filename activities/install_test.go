package activities_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/relman/relman/activities"
	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/archive"
	"github.com/relman/relman/workflows"
)

type installFixture struct {
	store   artifact.Store
	storeAt string
	root    string // parent of every install path
	out     string // where the command behavior writes
	inst    *activities.Installer
	key     ed25519.PrivateKey // the trusted manager's order key
}

func newInstallFixture(t *testing.T) installFixture {
	t.Helper()
	store, dir := fileStore(t)
	root := t.TempDir()
	out := filepath.Join(t.TempDir(), "command-out")
	cmd := `printf '%s\n' "$RELMAN_RESOURCE" "$RELMAN_TARGET" "$RELMAN_ENV" "$RELMAN_TRANSACTION" > "$0"; cp "$RELMAN_RESOURCE" "$0.resource"`
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Installer{
		Host:    "host-a",
		WorkDir: t.TempDir(),
		Trust:   config.InstallerTrust{ManagerKeys: []string{auth.EncodeManagerKey(pub)}},
		Environments: map[string]map[string]config.InstallBehavior{
			"test": {
				"site": {Behavior: "unarchive", Path: filepath.Join(root, "www", "site")},
				"tool": {Behavior: "copy", Path: filepath.Join(root, "bin", "tool"), Mode: "0755"},
				"hook": {Behavior: "command", Command: []string{"sh", "-c", cmd, out}, Timeout: time.Minute},
				"odd":  {Behavior: "no-such-behavior", Path: filepath.Join(root, "odd")},
			},
		},
	}
	return installFixture{store: store, storeAt: dir, root: root, out: out, key: key,
		inst: &activities.Installer{Config: cfg, Store: store, Log: quietLog}}
}

func (f installFixture) sitePath() string { return filepath.Join(f.root, "www", "site") }

// putTree packs files into a tar.gz with archive.WriteTarGz and stores it.
func (f installFixture) putTree(t *testing.T, files map[string]string) workflows.ArtifactRef {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, files)
	tgz := filepath.Join(t.TempDir(), "site.tar.gz")
	w, err := os.Create(tgz)
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteTarGz(context.Background(), w, src); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.putFile(t, tgz, "tar.gz", "site.tar.gz")
}

func (f installFixture) putBytes(t *testing.T, b []byte, format, name string) workflows.ArtifactRef {
	t.Helper()
	p := filepath.Join(t.TempDir(), "artifact")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f.putFile(t, p, format, name)
}

func (f installFixture) putFile(t *testing.T, path, format, name string) workflows.ArtifactRef {
	t.Helper()
	ref, err := f.store.PutFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return workflows.ArtifactRef{Key: ref.Key, SHA256: ref.SHA256, Size: ref.Size, Format: format, Name: name}
}

// install installs with an order the trusted manager signed for it.
func (f installFixture) install(tx, target string, ref workflows.ArtifactRef) (workflows.InstallResult, error) {
	in := workflows.InstallInput{Transaction: tx, Project: "web", Env: "test", Target: target, Artifact: ref}
	o := f.order(in)
	return f.inst.Install(context.Background(), f.signed(in, o, f.key))
}

// order is the order a manager signs for in on the fixture's host.
func (f installFixture) order(in workflows.InstallInput) auth.Order {
	return auth.Order{
		ID: "order-" + in.Transaction + "-" + in.Target, Transaction: in.Transaction, RunID: "run-1",
		Host: f.inst.Config.Host, Env: in.Env, Target: in.Target, Action: workflows.OrderInstall,
		SHA256: in.Artifact.SHA256, Expires: time.Now().Add(time.Hour),
	}
}

// rollback rolls back with an order the trusted manager signed for it.
func (f installFixture) rollback(ctx context.Context, in workflows.RollbackHostInput) (workflows.RollbackHostResult, error) {
	s, err := auth.SignOrder(f.key, auth.Order{
		ID: "rollback-" + in.Transaction + "-" + in.Target, Transaction: in.Transaction, RunID: "run-1",
		Host: f.inst.Config.Host, Env: in.Env, Target: in.Target, Action: workflows.OrderRollback, To: in.To,
		Expires: time.Now().Add(time.Hour),
	})
	if err != nil {
		panic(err)
	}
	in.Order = &s
	return f.inst.Rollback(ctx, in)
}

func (f installFixture) signed(in workflows.InstallInput, o auth.Order, key ed25519.PrivateKey) workflows.InstallInput {
	s, err := auth.SignOrder(key, o)
	if err != nil {
		panic(err)
	}
	in.Order = &s
	return in
}

// hostileTarGz is a tar.gz whose second entry climbs out of the destination.
func hostileTarGz(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range []struct{ name, body string }{{"ok.txt", "fine\n"}, {"../escape", "gotcha\n"}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// installFailure decodes the details every install error carries.
func installFailure(t *testing.T, app *temporal.ApplicationError) workflows.InstallFailure {
	t.Helper()
	var d workflows.InstallFailure
	if err := app.Details(&d); err != nil {
		t.Fatalf("decode details: %v", err)
	}
	return d
}

// noLeftovers fails if staging dirs or downloads remain.
func noLeftovers(t *testing.T, f installFixture) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(f.sitePath()))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "site" {
			t.Errorf("leftover beside the install path: %s", e.Name())
		}
	}
	dl, _ := os.ReadDir(filepath.Join(f.inst.Config.WorkDir, "downloads"))
	for _, e := range dl {
		t.Errorf("leftover download: %s", e.Name())
	}
}

func TestInstallUnarchiveAndReplace(t *testing.T) {
	f := newInstallFixture(t)
	v1 := map[string]string{"index.html": "v1\n", "old-only.txt": "old\n", "css/a.css": "a1\n"}
	res, err := f.install("tx-1", "site", f.putTree(t, v1))
	if err != nil {
		t.Fatal(err)
	}
	want := workflows.InstallResult{Host: "host-a", Path: f.sitePath(), Behavior: "unarchive", Attempt: 1}
	if res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	equalTree(t, readTree(t, f.sitePath()), v1)

	v2 := map[string]string{"index.html": "v2\n", "css/b.css": "b2\n"}
	if _, err := f.install("tx-2", "site", f.putTree(t, v2)); err != nil {
		t.Fatal(err)
	}
	// The new release replaces the old one fully: old-only files are gone.
	equalTree(t, readTree(t, f.sitePath()), v2)
	noLeftovers(t, f)
}

func TestInstallCorruptArtifact(t *testing.T) {
	f := newInstallFixture(t)
	prev := map[string]string{"index.html": "previous\n"}
	if _, err := f.install("tx-1", "site", f.putTree(t, prev)); err != nil {
		t.Fatal(err)
	}
	ref := f.putTree(t, map[string]string{"index.html": "next\n"})
	// Corrupt the stored object in place, keeping its size.
	obj := filepath.Join(f.storeAt, "sha256", ref.SHA256)
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatalf("stored object not at sha256/<hex>: %v", err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(obj, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = f.install("tx-2", "site", ref)
	app := appError(t, err, workflows.ErrChecksum, true)
	mustContain(t, app.Message(), ref.SHA256, sha256Hex(b), "host-a")
	if d := installFailure(t, app); d.Host != "host-a" || d.Attempt != 1 {
		t.Errorf("details = %+v", d)
	}
	equalTree(t, readTree(t, f.sitePath()), prev)
	noLeftovers(t, f)
}

func TestInstallTruncatedArtifact(t *testing.T) {
	f := newInstallFixture(t)
	ref := f.putTree(t, map[string]string{"index.html": "next\n"})
	obj := filepath.Join(f.storeAt, "sha256", ref.SHA256)
	if err := os.Truncate(obj, ref.Size/2); err != nil {
		t.Fatal(err)
	}
	_, err := f.install("tx-1", "site", ref)
	app := appError(t, err, workflows.ErrChecksum, true)
	mustContain(t, app.Message(), ref.SHA256)
	if _, err := os.Stat(f.sitePath()); !os.IsNotExist(err) {
		t.Errorf("a corrupt artifact created the install path: %v", err)
	}
}

func TestInstallMissingArtifact(t *testing.T) {
	f := newInstallFixture(t)
	ref := f.putTree(t, map[string]string{"index.html": "x\n"})
	if err := os.Remove(filepath.Join(f.storeAt, "sha256", ref.SHA256)); err != nil {
		t.Fatal(err)
	}
	_, err := f.install("tx-1", "site", ref)
	appError(t, err, workflows.ErrBadArtifact, true)
}

func TestInstallHostileArchive(t *testing.T) {
	f := newInstallFixture(t)
	prev := map[string]string{"index.html": "previous\n"}
	if _, err := f.install("tx-1", "site", f.putTree(t, prev)); err != nil {
		t.Fatal(err)
	}
	_, err := f.install("tx-2", "site", f.putBytes(t, hostileTarGz(t), "tar.gz", "site.tar.gz"))
	app := appError(t, err, workflows.ErrBadArtifact, true)
	mustContain(t, app.Message(), "../escape")
	if d := installFailure(t, app); d.Host != "host-a" || d.Attempt != 1 {
		t.Errorf("details = %+v", d)
	}
	// Nothing outside: "../escape" from a staging dir beside the install
	// path, or from the install path itself.
	for _, p := range []string{
		filepath.Join(filepath.Dir(f.sitePath()), "escape"),
		filepath.Join(f.root, "escape"),
		filepath.Join(filepath.Dir(f.root), "escape"),
	} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a hostile install", p)
		}
	}
	equalTree(t, readTree(t, f.sitePath()), prev)
	noLeftovers(t, f)
}

func TestInstallWrongFormat(t *testing.T) {
	f := newInstallFixture(t)
	_, err := f.install("tx-1", "site", f.putBytes(t, []byte("just a file\n"), "file", "notes.txt"))
	appError(t, err, workflows.ErrBadArtifact, true)
}

func TestInstallUnknownTarget(t *testing.T) {
	f := newInstallFixture(t)
	ref := f.putTree(t, map[string]string{"a": "b"})
	tests := map[string]struct {
		env, target string
		want        []string
	}{
		"unknown target":   {env: "test", target: "nope", want: []string{`"nope"`, `"test"`, "host-a"}},
		"unknown env":      {env: "prod", target: "site", want: []string{`"site"`, `"prod"`, "host-a"}},
		"unknown behavior": {env: "test", target: "odd", want: []string{`"no-such-behavior"`, "unarchive"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			in := workflows.InstallInput{Transaction: "tx-1", Project: "web", Env: tc.env, Target: tc.target, Artifact: ref}
			_, err := f.inst.Install(context.Background(), f.signed(in, f.order(in), f.key))
			app := appError(t, err, workflows.ErrUnknownTarget, true)
			mustContain(t, app.Message(), tc.want...)
			if d := installFailure(t, app); d.Host != "host-a" || d.Attempt != 1 {
				t.Errorf("details = %+v", d)
			}
		})
	}
}

func TestInstallCopyMode(t *testing.T) {
	f := newInstallFixture(t)
	dest := filepath.Join(f.root, "bin", "tool")
	for i, content := range []string{"#!/bin/sh\necho one\n", "#!/bin/sh\necho two\n"} {
		res, err := f.install("tx-copy", "tool", f.putBytes(t, []byte(content), "file", "tool"))
		if err != nil {
			t.Fatalf("install %d: %v", i, err)
		}
		if res.Behavior != "copy" || res.Path != dest {
			t.Errorf("result = %+v", res)
		}
		fi, err := os.Lstat(dest)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
			t.Errorf("mode = %v, want a regular file with 0755", fi.Mode())
		}
		b, err := os.ReadFile(dest)
		if err != nil || string(b) != content {
			t.Errorf("content = %q, %v; want %q", b, err, content)
		}
		// Atomic: written beside the destination and renamed, so nothing
		// else is left in the directory.
		entries, _ := os.ReadDir(filepath.Dir(dest))
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("dir holds %v, want only tool", names)
		}
	}
}

func TestInstallCommand(t *testing.T) {
	f := newInstallFixture(t)
	payload := []byte("payload for the hook\n")
	if _, err := f.install("tx-cmd", "hook", f.putBytes(t, payload, "file", "hook.bin")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("command wrote %q, want 4 lines", b)
	}
	resource, target, env, tx := lines[0], lines[1], lines[2], lines[3]
	if !strings.HasPrefix(resource, filepath.Join(f.inst.Config.WorkDir, "downloads")+string(filepath.Separator)) {
		t.Errorf("RELMAN_RESOURCE = %q, want a file under the work dir's downloads", resource)
	}
	if target != "hook" || env != "test" || tx != "tx-cmd" {
		t.Errorf("RELMAN_TARGET, RELMAN_ENV, RELMAN_TRANSACTION = %q, %q, %q", target, env, tx)
	}
	got, err := os.ReadFile(f.out + ".resource")
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("resource content = %q, %v; want the verified artifact", got, err)
	}
	// The download is removed once the behavior is done.
	if _, err := os.Stat(resource); !os.IsNotExist(err) {
		t.Errorf("download %s left behind: %v", resource, err)
	}
}

func TestInstallCommandFailure(t *testing.T) {
	f := newInstallFixture(t)
	f.inst.Config.Environments["test"]["hook"] = config.InstallBehavior{
		Behavior: "command", Command: []string{"sh", "-c", "echo restarting; echo service failed >&2; exit 4"}, Timeout: time.Minute,
	}
	_, err := f.install("tx-cmd", "hook", f.putBytes(t, []byte("x"), "file", "x"))
	// A failing command may be a transient condition: retryable.
	app := appError(t, err, workflows.ErrInstallFailed, false)
	mustContain(t, app.Message(), "host-a", "status 4", "service failed")
}
