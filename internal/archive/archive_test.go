package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/relman/relman/internal/archive"
	"github.com/stretchr/testify/require"
)

const mib = 1 << 20

type tarCase struct {
	entries func(s sandbox) []tarEntry
	lim     archive.Limits
	reason  string // expected in the error message
}

func tarRefusals() map[string]tarCase {
	return map[string]tarCase{
		"absolute path": {
			entries: func(s sandbox) []tarEntry { return []tarEntry{tfile(s.sentinel+"/pwned", 0o644, "x")} },
			reason:  "absolute path",
		},
		"parent escape": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tfile("../sentinel/pwned", 0o644, "x")} },
			reason:  "parent directory",
		},
		"nested parent escape": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tdir("a/"), tfile("a/../../sentinel/pwned", 0o644, "x")} },
			reason:  "parent directory",
		},
		"inner dotdot": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tfile("a/../b", 0o644, "x")} },
			reason:  "parent directory",
		},
		"backslash traversal": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tfile(`..\sentinel\pwned`, 0o644, "x")} },
			reason:  "backslash",
		},
		"file entry names the destination": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tfile(".", 0o644, "x")} },
			reason:  "file entry names the destination itself",
		},
		"symlink entry names the destination": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tsymlink(".", "elsewhere")} },
			reason:  "symlink entry names the destination itself",
		},
		"hard link entry names the destination": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tfile("f", 0o644, "x"), thardlink(".", "f")} },
			reason:  "hard link entry names the destination itself",
		},
		"symlink to /etc": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tsymlink("etc", "/etc")} },
			reason:  "absolute",
		},
		"absolute symlink then write through it": {
			entries: func(s sandbox) []tarEntry {
				return []tarEntry{tsymlink("s", s.sentinel), tfile("s/pwned", 0o644, "x")}
			},
			reason: "absolute",
		},
		"dotdot symlink then write through it": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tsymlink("s", "../sentinel"), tfile("s/pwned", 0o644, "x")}
			},
			reason: "leads outside",
		},
		"nested dotdot symlink": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tsymlink("a/b/s", "../../../sentinel/keep")} },
			reason:  "leads outside",
		},
		"symlink through a link to dot": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tsymlink("s", "."), tsymlink("x", "s/../sentinel/keep")}
			},
			reason: "leads outside",
		},
		"symlink made escaping by a later link": {
			// x looks local when created; only once s exists does it escape.
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tsymlink("x", "s/../sentinel/keep"), tsymlink("s", ".")}
			},
			reason: "leads outside",
		},
		"write through an inside symlink": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tdir("real/"), tsymlink("s", "real"), tfile("s/f", 0o644, "x")}
			},
			reason: "through symlink",
		},
		"file over an earlier symlink": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tsymlink("s", "target"), tfile("s", 0o644, "x")}
			},
			reason: "duplicate",
		},
		"duplicate file": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tfile("f", 0o644, "one"), tfile("f", 0o644, "two")}
			},
			reason: "duplicate",
		},
		"directory over a symlink": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tsymlink("d", "."), tdir("d/")}
			},
			reason: "collides",
		},
		"hardlink escape": {
			entries: func(sandbox) []tarEntry { return []tarEntry{thardlink("h", "../sentinel/keep")} },
			reason:  "hard link target",
		},
		"absolute hardlink": {
			entries: func(s sandbox) []tarEntry { return []tarEntry{thardlink("h", s.sentinel+"/keep")} },
			reason:  "hard link target",
		},
		"hardlink to a symlink": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tsymlink("l", "x"), thardlink("h", "l")}
			},
			reason: "not an earlier regular file",
		},
		"char device": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tspecial("null", tar.TypeChar)} },
			reason:  "device",
		},
		"block device": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tspecial("sda", tar.TypeBlock)} },
			reason:  "device",
		},
		"fifo": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tspecial("pipe", tar.TypeFifo)} },
			reason:  "fifo",
		},
		"too many entries": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tfile("1", 0o644, ""), tfile("2", 0o644, ""), tfile("3", 0o644, ""), tfile("4", 0o644, "")}
			},
			lim:    archive.Limits{MaxEntries: 3},
			reason: "more than 3 entries",
		},
		"gzip bomb": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tzeros("zeros", 50*mib)} },
			lim:     archive.Limits{MaxBytes: mib},
			reason:  "total limit",
		},
		"total over limit across files": {
			entries: func(sandbox) []tarEntry {
				return []tarEntry{tzeros("a", mib/2), tzeros("b", mib/2), tzeros("c", mib/2)}
			},
			lim:    archive.Limits{MaxBytes: mib},
			reason: "total limit",
		},
		"file over per-file limit": {
			entries: func(sandbox) []tarEntry { return []tarEntry{tzeros("big", 2*mib)} },
			lim:     archive.Limits{MaxFileBytes: mib},
			reason:  "per-file limit",
		},
	}
}

func TestExtractTarGzRefuses(t *testing.T) {
	for name, tc := range tarRefusals() {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			data := makeTarGz(t, tc.entries(s)...)
			err := archive.ExtractTarGz(context.Background(), bytes.NewReader(data), s.dest, tc.lim)
			require.Error(t, err)
			require.ErrorIs(t, err, archive.ErrUnsafe)
			require.Contains(t, err.Error(), tc.reason)
			var ue *archive.UnsafeError
			require.ErrorAs(t, err, &ue)
			require.NotEmpty(t, ue.Entry)
			require.Contains(t, err.Error(), strconv.Quote(ue.Entry))
			s.checkUntouched(t)
		})
	}
}

type zipCase struct {
	entries func(s sandbox) []zipEntry
	lim     archive.Limits
	reason  string
}

func zipRefusals() map[string]zipCase {
	return map[string]zipCase{
		"absolute path": {
			entries: func(s sandbox) []zipEntry { return []zipEntry{zfile(s.sentinel+"/pwned", 0o644, "x")} },
			reason:  "absolute path",
		},
		"parent escape": {
			entries: func(sandbox) []zipEntry { return []zipEntry{zfile("../sentinel/pwned", 0o644, "x")} },
			reason:  "parent directory",
		},
		"nested parent escape": {
			entries: func(sandbox) []zipEntry { return []zipEntry{zfile("a/../../sentinel/pwned", 0o644, "x")} },
			reason:  "parent directory",
		},
		"backslash traversal": {
			entries: func(sandbox) []zipEntry { return []zipEntry{zfile(`..\sentinel\pwned`, 0o644, "x")} },
			reason:  "backslash",
		},
		"symlink to /etc": {
			entries: func(sandbox) []zipEntry { return []zipEntry{zsymlink("etc", "/etc")} },
			reason:  "absolute",
		},
		"dotdot symlink then write through it": {
			entries: func(sandbox) []zipEntry {
				return []zipEntry{zsymlink("s", "../sentinel"), zfile("s/pwned", 0o644, "x")}
			},
			reason: "leads outside",
		},
		"write through an inside symlink": {
			entries: func(sandbox) []zipEntry {
				return []zipEntry{zfile("real/f", 0o644, "x"), zsymlink("s", "real"), zfile("s/g", 0o644, "x")}
			},
			reason: "through symlink",
		},
		"char device": {
			entries: func(sandbox) []zipEntry {
				return []zipEntry{{name: "null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}}
			},
			reason: "device",
		},
		"fifo": {
			entries: func(sandbox) []zipEntry { return []zipEntry{{name: "pipe", mode: fs.ModeNamedPipe | 0o666}} },
			reason:  "fifo",
		},
		"too many entries": {
			entries: func(sandbox) []zipEntry {
				return []zipEntry{zfile("1", 0o644, ""), zfile("2", 0o644, ""), zfile("3", 0o644, ""), zfile("4", 0o644, "")}
			},
			lim:    archive.Limits{MaxEntries: 3},
			reason: "more than the limit of 3",
		},
		"zip bomb": {
			entries: func(sandbox) []zipEntry {
				return []zipEntry{{name: "zeros", mode: 0o644, body: bytes.NewReader(make([]byte, 50*mib))}}
			},
			lim:    archive.Limits{MaxBytes: mib},
			reason: "total limit",
		},
		"lying size header": {
			// The header claims 10 bytes, under every limit; the data
			// inflates to 2 MiB.
			entries: func(sandbox) []zipEntry {
				return []zipEntry{{name: "liar", mode: 0o644, body: bytes.NewReader(make([]byte, 2*mib)), lieSize: 10}}
			},
			lim:    archive.Limits{MaxFileBytes: mib},
			reason: "does not match its header",
		},
		"huge declared size": {
			entries: func(sandbox) []zipEntry {
				return []zipEntry{{name: "huge", mode: 0o644, body: strings.NewReader("small"), lieSize: 1 << 40}}
			},
			reason: "per-file limit",
		},
	}
}

func TestExtractZipRefuses(t *testing.T) {
	for name, tc := range zipRefusals() {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			data := makeZip(t, tc.entries(s)...)
			err := archive.ExtractZip(context.Background(), bytes.NewReader(data), int64(len(data)), s.dest, tc.lim)
			require.Error(t, err)
			require.ErrorIs(t, err, archive.ErrUnsafe)
			require.Contains(t, err.Error(), tc.reason)
			var ue *archive.UnsafeError
			require.ErrorAs(t, err, &ue)
			require.NotEmpty(t, ue.Entry)
			s.checkUntouched(t)
		})
	}
}

func TestExtractTarGzMalformed(t *testing.T) {
	// A header promising more data than the stream holds is an error (not
	// a refusal: nothing unsafe happened) and writes nothing outside dest.
	data := makeTarGz(t, tfile("f", 0o644, strings.Repeat("x", 10000)))
	s := newSandbox(t)
	err := archive.ExtractTarGz(context.Background(), bytes.NewReader(data[:len(data)/2]), s.dest, archive.Limits{})
	require.Error(t, err)
	s.checkUntouched(t)

	err = archive.ExtractTarGz(context.Background(), strings.NewReader("not gzip"), s.dest, archive.Limits{})
	require.Error(t, err)
	s.checkUntouched(t)
}

func TestExtractStripsSpecialBits(t *testing.T) {
	check := func(t *testing.T, dest string) {
		fi, err := os.Stat(filepath.Join(dest, "suid"))
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o755), fi.Mode())
		fi, err = os.Stat(filepath.Join(dest, "unreadable"))
		require.NoError(t, err)
		require.Equal(t, fs.FileMode(0o604), fi.Mode(), "owner gains read/write, nothing else changes")
		fi, err = os.Stat(filepath.Join(dest, "sticky"))
		require.NoError(t, err)
		require.True(t, fi.IsDir())
		require.Zero(t, fi.Mode()&(fs.ModeSticky|fs.ModeSetgid))
	}
	t.Run("tar", func(t *testing.T) {
		s := newSandbox(t)
		sticky := tdir("sticky/")
		sticky.hdr.Mode = 0o1777 | 0o2000
		data := makeTarGz(t, tfile("suid", 0o4755|0o2000, "#!/bin/sh\n"), tfile("unreadable", 0o004, "x"), sticky)
		require.NoError(t, archive.ExtractTarGz(context.Background(), bytes.NewReader(data), s.dest, archive.Limits{}))
		check(t, s.dest)
		s.checkUntouched(t)
	})
	t.Run("zip", func(t *testing.T) {
		s := newSandbox(t)
		data := makeZip(t,
			zfile("suid", fs.ModeSetuid|fs.ModeSetgid|0o755, "#!/bin/sh\n"),
			zfile("unreadable", 0o004, "x"),
			zipEntry{name: "sticky/", mode: fs.ModeDir | fs.ModeSticky | 0o777})
		require.NoError(t, archive.ExtractZip(context.Background(), bytes.NewReader(data), int64(len(data)), s.dest, archive.Limits{}))
		check(t, s.dest)
		s.checkUntouched(t)
	})
}

func TestExtractAllowed(t *testing.T) {
	s := newSandbox(t)
	data := makeTarGz(t,
		tdir("./"),
		tfile("./a/b/file", 0o644, "hello"),
		thardlink("a/hard", "a/b/file"),
		tsymlink("a/link", "b/file"),
		tsymlink("a/b/up", "../hard"),
		tsymlink("dangling", "not/there"),
		tdir("a/b/"), // a repeated directory entry is harmless
	)
	require.NoError(t, archive.ExtractTarGz(context.Background(), bytes.NewReader(data), s.dest, archive.Limits{}))
	for _, p := range []string{"a/b/file", "a/hard", "a/link", "a/b/up"} {
		b, err := os.ReadFile(filepath.Join(s.dest, p))
		require.NoError(t, err, p)
		require.Equal(t, "hello", string(b), p)
	}
	s.checkUntouched(t)
}

func TestExtractContextCancelled(t *testing.T) {
	s := newSandbox(t)
	data := makeTarGz(t, tfile("f", 0o644, "x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := archive.ExtractTarGz(ctx, bytes.NewReader(data), s.dest, archive.Limits{})
	require.ErrorIs(t, err, context.Canceled)
	require.Empty(t, dirNames(t, s.dest))
}

// buildTree makes a source tree exercising every kind of entry WriteTarGz
// supports.
func buildTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	must := func(err error) { t.Helper(); require.NoError(t, err) }
	must(os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "lib/deep/er"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "empty"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "private"), 0o700))
	must(os.WriteFile(filepath.Join(src, "bin/tool"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "lib/deep/er/data.txt"), []byte("nested"), 0o644))
	must(os.WriteFile(filepath.Join(src, "private/secret"), []byte("s"), 0o600))
	must(os.WriteFile(filepath.Join(src, "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 300000), 0o644))
	must(os.WriteFile(filepath.Join(src, "zero"), nil, 0o644))
	must(os.Symlink("../lib/deep/er/data.txt", filepath.Join(src, "bin/data")))
	must(os.Symlink("lib", filepath.Join(src, "liblink")))
	// Modes are set explicitly so the umask does not decide the test.
	for p, m := range map[string]fs.FileMode{"bin": 0o755, "lib": 0o755, "lib/deep": 0o755, "lib/deep/er": 0o755, "empty": 0o755, "private": 0o700, "bin/tool": 0o755} {
		must(os.Chmod(filepath.Join(src, p), m))
	}
	return src
}

type node struct {
	mode    fs.FileMode
	content string // file content or symlink target
}

func snapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		require.NoError(t, err)
		n := node{mode: fi.Mode()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			n.mode = fs.ModeSymlink // link permissions are meaningless on Linux
			n.content, err = os.Readlink(p)
			require.NoError(t, err)
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			n.content = string(b)
		}
		out[filepath.ToSlash(rel)] = n
		return nil
	})
	require.NoError(t, err)
	return out
}

func TestWriteTarGzRoundTrip(t *testing.T) {
	src := buildTree(t)
	var buf bytes.Buffer
	require.NoError(t, archive.WriteTarGz(context.Background(), &buf, src))

	s := newSandbox(t)
	require.NoError(t, archive.ExtractTarGz(context.Background(), bytes.NewReader(buf.Bytes()), s.dest, archive.Limits{}))
	require.Equal(t, snapshot(t, src), snapshot(t, s.dest))
	s.checkUntouched(t)

	// Packing is deterministic, so identical trees dedupe in the store.
	var again bytes.Buffer
	require.NoError(t, archive.WriteTarGz(context.Background(), &again, s.dest))
	require.Equal(t, buf.Bytes(), again.Bytes())

	// Extract sniffs the format from the file.
	p := filepath.Join(t.TempDir(), "out.tar.gz")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))
	dest2 := t.TempDir()
	require.NoError(t, archive.Extract(context.Background(), p, dest2, archive.Limits{}))
	require.Equal(t, snapshot(t, src), snapshot(t, dest2))
}

func TestWriteTarGzRefuses(t *testing.T) {
	cases := map[string]struct {
		link   string
		target string
		reason string
	}{
		"absolute symlink":        {link: "abs", target: "/etc/passwd", reason: "absolute"},
		"escaping symlink":        {link: "sub/up", target: "../../outside", reason: "leads outside"},
		"escape through own link": {link: "x", target: "dot/../outside", reason: "leads outside"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			src := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(src, "sub"), 0o755))
			require.NoError(t, os.Symlink(".", filepath.Join(src, "dot")))
			require.NoError(t, os.Symlink(tc.target, filepath.Join(src, tc.link)))
			var buf bytes.Buffer
			err := archive.WriteTarGz(context.Background(), &buf, src)
			require.ErrorIs(t, err, archive.ErrUnsafe)
			require.Contains(t, err.Error(), tc.reason)
			require.Contains(t, err.Error(), tc.link)
		})
	}
}

func TestExtractSniffsZip(t *testing.T) {
	data := makeZip(t, zfile("dir/f", 0o755, "zipped"), zsymlink("l", "dir/f"))
	p := filepath.Join(t.TempDir(), "a.zip")
	require.NoError(t, os.WriteFile(p, data, 0o644))
	s := newSandbox(t)
	require.NoError(t, archive.Extract(context.Background(), p, s.dest, archive.Limits{}))
	b, err := os.ReadFile(filepath.Join(s.dest, "l"))
	require.NoError(t, err)
	require.Equal(t, "zipped", string(b))
	s.checkUntouched(t)

	bad := filepath.Join(t.TempDir(), "x")
	require.NoError(t, os.WriteFile(bad, []byte("plain text"), 0o644))
	err = archive.Extract(context.Background(), bad, t.TempDir(), archive.Limits{})
	require.True(t, errors.Is(err, archive.ErrUnknownFormat), "%v", err)
}
