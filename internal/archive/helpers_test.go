package archive_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sandbox is a temporary parent holding the extraction destination and a
// sentinel directory beside it that escaping entries aim at.
type sandbox struct {
	parent, dest, sentinel string
}

const sentinelContent = "untouched"

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	parent := t.TempDir()
	s := sandbox{parent: parent, dest: filepath.Join(parent, "dest"), sentinel: filepath.Join(parent, "sentinel")}
	require.NoError(t, os.Mkdir(s.dest, 0o755))
	require.NoError(t, os.Mkdir(s.sentinel, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(s.sentinel, "keep"), []byte(sentinelContent), 0o644))
	require.NoError(t, os.Chmod(filepath.Join(s.sentinel, "keep"), 0o644))
	return s
}

// fakeSandbox gives seed archives absolute paths that exist nowhere, so that
// fuzzing never aims at a real directory even if a check were broken.
var fakeSandbox = sandbox{parent: "/nonexistent-relman", dest: "/nonexistent-relman/dest", sentinel: "/nonexistent-relman/sentinel"}

// checkUntouched asserts that nothing outside dest changed.
func (s sandbox) checkUntouched(t testing.TB) {
	t.Helper()
	require.Equal(t, []string{"dest", "sentinel"}, dirNames(t, s.parent))
	require.Equal(t, []string{"keep"}, dirNames(t, s.sentinel))
	fi, err := os.Lstat(filepath.Join(s.sentinel, "keep"))
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular())
	require.Equal(t, fs.FileMode(0o644), fi.Mode().Perm())
	b, err := os.ReadFile(filepath.Join(s.sentinel, "keep"))
	require.NoError(t, err)
	require.Equal(t, sentinelContent, string(b))
	checkDestSane(t, s.dest)
}

// checkDestSane asserts dest holds only directories, regular files without
// special mode bits, and symlinks that do not lead outside it.
func checkDestSane(t testing.TB, dest string) {
	t.Helper()
	realDest, err := filepath.EvalSymlinks(dest)
	require.NoError(t, err)
	err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			require.NoError(t, err)
			require.False(t, filepath.IsAbs(target), "absolute symlink %s -> %s", p, target)
			if resolved, err := filepath.EvalSymlinks(p); err == nil {
				rel, err := filepath.Rel(realDest, resolved)
				require.NoError(t, err)
				require.True(t, filepath.IsLocal(rel) || rel == ".", "symlink %s -> %s resolves outside dest to %s", p, target, resolved)
			}
		case mode.IsDir(), mode.IsRegular():
			require.Zero(t, mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), "special mode bits on %s: %v", p, mode)
		default:
			t.Errorf("unexpected file type at %s: %v", p, mode)
		}
		return nil
	})
	require.NoError(t, err)
}

func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

type tarEntry struct {
	hdr  tar.Header
	body io.Reader // nil for no body
}

func tfile(name string, mode int64, body string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: strings.NewReader(body)}
}

func tzeros(name string, size int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size}, body: io.LimitReader(zeroReader{}, size)}
}

func tdir(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func tsymlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func thardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}}
}

func tspecial(name string, typ byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: 1, Devminor: 3}}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func makeTarGz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := e.hdr
		require.NoError(t, tw.WriteHeader(&hdr))
		if e.body != nil {
			_, err := io.Copy(tw, e.body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

type zipEntry struct {
	name string
	mode fs.FileMode
	body io.Reader
	// lieSize, when set, is written as the uncompressed size in place of
	// the real one.
	lieSize uint64
}

func zfile(name string, mode fs.FileMode, body string) zipEntry {
	return zipEntry{name: name, mode: mode, body: strings.NewReader(body)}
}

func zsymlink(name, target string) zipEntry {
	return zipEntry{name: name, mode: fs.ModeSymlink | 0o777, body: strings.NewReader(target)}
}

func makeZip(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		if e.lieSize != 0 {
			writeLyingZipEntry(t, zw, e)
			continue
		}
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		fh.SetMode(e.mode)
		w, err := zw.CreateHeader(fh)
		require.NoError(t, err)
		if e.body != nil {
			_, err = io.Copy(w, e.body)
			require.NoError(t, err)
		}
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// writeLyingZipEntry stores e with a correct checksum but a false
// uncompressed size, which zip.Writer would never produce by itself.
func writeLyingZipEntry(t testing.TB, zw *zip.Writer, e zipEntry) {
	t.Helper()
	data, err := io.ReadAll(e.body)
	require.NoError(t, err)
	var comp bytes.Buffer
	fw, err := flate.NewWriter(&comp, flate.BestCompression)
	require.NoError(t, err)
	_, err = fw.Write(data)
	require.NoError(t, err)
	require.NoError(t, fw.Close())
	fh := &zip.FileHeader{
		Name:               e.name,
		Method:             zip.Deflate,
		CRC32:              crc32.ChecksumIEEE(data),
		CompressedSize64:   uint64(comp.Len()),
		UncompressedSize64: e.lieSize,
	}
	fh.SetMode(e.mode)
	w, err := zw.CreateRaw(fh)
	require.NoError(t, err)
	_, err = w.Write(comp.Bytes())
	require.NoError(t, err)
}
