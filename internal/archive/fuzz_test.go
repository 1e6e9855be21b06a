package archive_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/relman/relman/internal/archive"
	"github.com/stretchr/testify/require"
)

// fuzzLimits are small so that each input is cheap and the limits
// themselves get exercised.
var fuzzLimits = archive.Limits{MaxBytes: 1 << 20, MaxEntries: 64, MaxFileBytes: 256 << 10}

// fuzzSandbox extracts into a fresh dest whose parent must afterwards still
// hold nothing but dest.
func fuzzSandbox(t *testing.T) (parent, dest string) {
	parent = t.TempDir()
	dest = filepath.Join(parent, "dest")
	require.NoError(t, os.Mkdir(dest, 0o755))
	return parent, dest
}

func checkFuzzResult(t *testing.T, parent, dest string) {
	require.Equal(t, []string{"dest"}, dirNames(t, parent))
	checkDestSane(t, dest)
}

func FuzzExtractTarGz(f *testing.F) {
	for _, tc := range tarRefusals() {
		f.Add(makeTarGz(f, tc.entries(fakeSandbox)...))
	}
	f.Add(makeTarGz(f,
		tfile("a/b/file", 0o4755, "hello"),
		thardlink("a/hard", "a/b/file"),
		tsymlink("a/link", "b/file"),
		tdir("empty/"),
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, dest := fuzzSandbox(t)
		_ = archive.ExtractTarGz(context.Background(), bytes.NewReader(data), dest, fuzzLimits)
		checkFuzzResult(t, parent, dest)
	})
}

func FuzzExtractZip(f *testing.F) {
	for _, tc := range zipRefusals() {
		f.Add(makeZip(f, tc.entries(fakeSandbox)...))
	}
	f.Add(makeZip(f,
		zfile("a/b/file", 0o755, "hello"),
		zsymlink("a/link", "b/file"),
		zipEntry{name: "empty/", mode: 0o755 | os.ModeDir},
	))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, dest := fuzzSandbox(t)
		_ = archive.ExtractZip(context.Background(), bytes.NewReader(data), int64(len(data)), dest, fuzzLimits)
		checkFuzzResult(t, parent, dest)
	})
}
