package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// backend opens a fresh store for one test, returning it with a function that
// replaces the raw bytes stored under a key, bypassing the store.
type backend func(t *testing.T) (Store, func(key string, data []byte))

func viaBucket(t *testing.T, s Store) func(string, []byte) {
	return func(key string, data []byte) {
		require.NoError(t, s.(*store).bucket.WriteAll(context.Background(), key, data, nil))
	}
}

// clusterBackends are added by the tests behind the cluster build tag,
// which run every store test against a real S3 server too.
var clusterBackends = map[string]backend{}

func backends() map[string]backend {
	m := map[string]backend{}
	for name, b := range clusterBackends {
		m[name] = b
	}
	for name, b := range localBackends() {
		m[name] = b
	}
	return m
}

func localBackends() map[string]backend {
	return map[string]backend{
		"file": func(t *testing.T) (Store, func(string, []byte)) {
			dir := filepath.Join(t.TempDir(), "store")
			s, err := OpenStore(context.Background(), "file://"+dir)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			// Corrupt the file on disk, as a failing disk or a stray
			// writer to the shared directory would.
			return s, func(key string, data []byte) {
				p := filepath.Join(dir, filepath.FromSlash(key))
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, data, 0o644))
			}
		},
		"mem": func(t *testing.T) (Store, func(string, []byte)) {
			s, err := OpenStore(context.Background(), "mem://")
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s, viaBucket(t, s)
		},
		"s3": func(t *testing.T) (Store, func(string, []byte)) {
			mem := s3mem.New()
			require.NoError(t, mem.CreateBucket("artifacts"))
			srv := httptest.NewServer(gofakes3.New(mem).Server())
			t.Cleanup(srv.Close)
			t.Setenv("AWS_ACCESS_KEY_ID", "test")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
			// Keep the SDK away from any real profile on the machine.
			t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
			q := url.Values{}
			q.Set("endpoint", srv.URL)
			q.Set("region", "us-east-1")
			q.Set("use_path_style", "true")
			s, err := OpenStore(context.Background(), "s3://artifacts?"+q.Encode())
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s, viaBucket(t, s)
		},
	}
}

func refOf(data []byte) Ref {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	return Ref{Key: "sha256/" + h, SHA256: h, Size: int64(len(data))}
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func readAll(t *testing.T, s Store, ref Ref) ([]byte, error) {
	t.Helper()
	rc, err := s.Open(context.Background(), ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "artifact.bin")
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	for name, open := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Run("put round trip", func(t *testing.T) {
				s, _ := open(t)
				data := testData(3<<20 + 17) // spans several copy buffers
				ref, err := s.Put(ctx, bytes.NewReader(data))
				require.NoError(t, err)
				require.Equal(t, refOf(data), ref)
				got, err := readAll(t, s, ref)
				require.NoError(t, err)
				require.True(t, bytes.Equal(data, got))
			})

			t.Run("put empty", func(t *testing.T) {
				s, _ := open(t)
				ref, err := s.Put(ctx, bytes.NewReader(nil))
				require.NoError(t, err)
				require.Equal(t, refOf(nil), ref)
				got, err := readAll(t, s, ref)
				require.NoError(t, err)
				require.Empty(t, got)
			})

			t.Run("put file round trip and dedup", func(t *testing.T) {
				s, _ := open(t)
				data := testData(1<<20 + 5)
				p := writeFile(t, data)
				ref, err := s.PutFile(ctx, p)
				require.NoError(t, err)
				require.Equal(t, refOf(data), ref)
				again, err := s.PutFile(ctx, p)
				require.NoError(t, err)
				require.Equal(t, ref, again)
				viaPut, err := s.Put(ctx, bytes.NewReader(data))
				require.NoError(t, err)
				require.Equal(t, ref, viaPut)
				got, err := readAll(t, s, ref)
				require.NoError(t, err)
				require.True(t, bytes.Equal(data, got))
			})

			t.Run("put leaves no temporary objects", func(t *testing.T) {
				s, _ := open(t)
				_, err := s.Put(ctx, strings.NewReader("hello"))
				require.NoError(t, err)
				_, err = s.Put(ctx, strings.NewReader("hello"))
				require.NoError(t, err)
				it := s.(*store).bucket.List(nil)
				var keys []string
				for {
					obj, err := it.Next(ctx)
					if err == io.EOF {
						break
					}
					require.NoError(t, err)
					if !obj.IsDir {
						keys = append(keys, obj.Key)
					}
				}
				require.Equal(t, []string{refOf([]byte("hello")).Key}, keys)
			})

			t.Run("corrupted object", func(t *testing.T) {
				s, overwrite := open(t)
				data := testData(4096)
				ref, err := s.PutFile(ctx, writeFile(t, data))
				require.NoError(t, err)
				bad := bytes.Clone(data)
				bad[100] ^= 0xff
				overwrite(ref.Key, bad)

				_, err = readAll(t, s, ref)
				require.ErrorIs(t, err, ErrCorrupt)
				var ce *CorruptError
				require.ErrorAs(t, err, &ce)
				require.Equal(t, ref.SHA256, ce.WantSHA256)
				require.Equal(t, refOf(bad).SHA256, ce.GotSHA256)
				require.Equal(t, ce.WantSize, ce.GotSize)
				require.Contains(t, err.Error(), ref.SHA256)
				require.Contains(t, err.Error(), refOf(bad).SHA256)
			})

			t.Run("truncated object", func(t *testing.T) {
				s, overwrite := open(t)
				data := testData(4096)
				ref, err := s.Put(ctx, bytes.NewReader(data))
				require.NoError(t, err)
				overwrite(ref.Key, data[:1000])

				_, err = readAll(t, s, ref)
				require.ErrorIs(t, err, ErrCorrupt)
				var ce *CorruptError
				require.ErrorAs(t, err, &ce)
				require.Equal(t, int64(4096), ce.WantSize)
				require.Equal(t, int64(1000), ce.GotSize)
				require.Contains(t, err.Error(), ref.SHA256)
				require.Contains(t, err.Error(), refOf(data[:1000]).SHA256)

				// A later put of the same content repairs the object,
				// because the stored size no longer matches.
				_, err = s.PutFile(ctx, writeFile(t, data))
				require.NoError(t, err)
				got, err := readAll(t, s, ref)
				require.NoError(t, err)
				require.True(t, bytes.Equal(data, got))
			})

			t.Run("missing", func(t *testing.T) {
				s, _ := open(t)
				_, err := s.Open(ctx, refOf([]byte("never stored")))
				require.ErrorIs(t, err, ErrNotFound)
			})

			t.Run("malformed refs", func(t *testing.T) {
				s, overwrite := open(t)
				// Something a traversal might reach if keys were trusted.
				overwrite("tmp/secret", []byte("secret"))
				good := refOf([]byte("x"))
				refs := map[string]Ref{
					"traversal":        {Key: "../etc/passwd", SHA256: good.SHA256},
					"short hex":        {Key: "sha256/xyz", SHA256: "xyz"},
					"temporary key":    {Key: "tmp/secret", SHA256: good.SHA256},
					"upper hex":        {Key: "sha256/" + strings.ToUpper(good.SHA256), SHA256: strings.ToUpper(good.SHA256)},
					"key/sha mismatch": {Key: good.Key, SHA256: refOf([]byte("y")).SHA256, Size: 1},
					"trailing path":    {Key: good.Key + "/../../tmp/secret", SHA256: good.SHA256},
					"negative size":    {Key: good.Key, SHA256: good.SHA256, Size: -1},
					"empty":            {},
				}
				for name, ref := range refs {
					t.Run(name, func(t *testing.T) {
						rc, err := s.Open(ctx, ref)
						require.ErrorIs(t, err, ErrInvalidRef)
						require.Nil(t, rc)
					})
				}
			})
		})
	}
}

func TestOpenStoreURLs(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	t.Chdir(base)

	cases := map[string]struct {
		url     string
		wantURL string
		dir     string
	}{
		"absolute file url": {url: "file://" + filepath.Join(base, "a"), wantURL: "file://" + filepath.Join(base, "a"), dir: filepath.Join(base, "a")},
		"relative file url": {url: "file://./b/c", wantURL: "file://" + filepath.Join(base, "b/c"), dir: filepath.Join(base, "b/c")},
		"bare relative":     {url: "d", wantURL: "file://" + filepath.Join(base, "d"), dir: filepath.Join(base, "d")},
		"bare absolute":     {url: filepath.Join(base, "e"), wantURL: "file://" + filepath.Join(base, "e"), dir: filepath.Join(base, "e")},
		"mem":               {url: "mem://", wantURL: "mem://"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := OpenStore(ctx, tc.url)
			require.NoError(t, err)
			defer s.Close()
			require.Equal(t, tc.wantURL, s.URL())
			ref, err := s.Put(ctx, strings.NewReader("content"))
			require.NoError(t, err)
			if tc.dir == "" {
				return
			}
			got, err := os.ReadFile(filepath.Join(tc.dir, filepath.FromSlash(ref.Key)))
			require.NoError(t, err)
			require.Equal(t, "content", string(got))
			// No metadata sidecars: the directory holds exactly the artifact.
			entries, err := os.ReadDir(filepath.Join(tc.dir, "sha256"))
			require.NoError(t, err)
			require.Len(t, entries, 1)
			// Other users cannot reach the objects: the folders the store
			// made are owner and group only.
			fi, err := os.Stat(filepath.Join(tc.dir, "sha256"))
			require.NoError(t, err)
			require.Zero(t, fi.Mode().Perm()&0o007, "store folder mode %v", fi.Mode().Perm())

			// Reopening by the reported URL reaches the same store.
			s2, err := OpenStore(ctx, s.URL())
			require.NoError(t, err)
			defer s2.Close()
			b, err := readAll(t, s2, ref)
			require.NoError(t, err)
			require.Equal(t, "content", string(b))
		})
	}

	_, err := OpenStore(ctx, "")
	require.Error(t, err)
	_, err = OpenStore(ctx, "nope://x")
	require.Error(t, err)
}

func TestCorruptErrorIs(t *testing.T) {
	var err error = &CorruptError{Key: "sha256/x"}
	require.True(t, errors.Is(err, ErrCorrupt))
}

// A corrupted object of the right size is replaced by the next PutFile of
// the same content, not trusted.
func TestPutFileRepairsCorruptObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenStore(ctx, "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := filepath.Join(t.TempDir(), "a")
	if err := os.WriteFile(src, bytes.Repeat([]byte("relman"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := s.PutFile(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, filepath.FromSlash(ref.Key))
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 0xff
	if err := os.WriteFile(obj, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutFile(ctx, src); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("object still corrupt after PutFile: %v", err)
	}
}
