//go:build cluster

package artifact

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/relman/relman/harness/testcluster"
)

// One SeaweedFS for the whole package: it takes seconds to start, and
// every test gets a bucket of its own on it.
var seaweed struct {
	once sync.Once
	dir  string
	s3   *testcluster.S3
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if seaweed.s3 != nil {
		_ = seaweed.s3.Stop()
	}
	if seaweed.dir != "" {
		os.RemoveAll(seaweed.dir)
	}
	os.Exit(code)
}

func seaweedFS(t *testing.T) *testcluster.S3 {
	t.Helper()
	seaweed.once.Do(func() {
		seaweed.dir, seaweed.err = os.MkdirTemp("", "relman-seaweedfs-")
		if seaweed.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		seaweed.s3, seaweed.err = testcluster.StartS3(ctx, testcluster.FindTools("").Weed, seaweed.dir, "relman-artifacts")
	})
	require.NoError(t, seaweed.err)
	return seaweed.s3
}

// newBucket makes an empty bucket and gives the test the keys, the way a
// role gets them: in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func newBucket(t *testing.T) (*testcluster.S3, string) {
	s := seaweedFS(t)
	name := "t-" + strings.ToLower(hex.EncodeToString(randBytes(6)))
	require.NoError(t, s.CreateBucket(context.Background(), name))
	isolateAWS(t, s.AccessKeyID, s.SecretAccessKey)
	return s, name
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func init() {
	clusterBackends["seaweedfs"] = func(t *testing.T) (Store, func(string, []byte)) {
		s3, bucket := newBucket(t)
		s, err := OpenStore(context.Background(), s3.StoreURLFor(bucket))
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s, viaBucket(t, s)
	}
}

// countingProxy stands between the store and SeaweedFS and counts the
// requests, so a test can see that a refusal is not retried. The Host
// header goes through unchanged, so signatures still verify.
func countingProxy(t *testing.T, endpoint string) (string, *atomic.Int32) {
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	var n atomic.Int32
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

// TestSeaweedFSRefusals: what an operator gets wrong, against a real S3
// server with authentication on. Each is refused in one request, with an
// error that names the store, the bucket and what was refused, and never
// the secret.
func TestSeaweedFSRefusals(t *testing.T) {
	tests := map[string]struct {
		keyID, secret func(*testcluster.S3) string
		bucket        func(string) string
		code          string
	}{
		"wrong secret key": {
			keyID:  func(s *testcluster.S3) string { return s.AccessKeyID },
			secret: func(*testcluster.S3) string { return "wrong-secret-key-0123456789" },
			code:   "SignatureDoesNotMatch",
		},
		"unknown access key": {
			keyID:  func(*testcluster.S3) string { return "AKIDNOTKNOWNHERE" },
			secret: func(s *testcluster.S3) string { return s.SecretAccessKey },
			code:   "InvalidAccessKeyId",
		},
		"no such bucket": {
			keyID:  func(s *testcluster.S3) string { return s.AccessKeyID },
			secret: func(s *testcluster.S3) string { return s.SecretAccessKey },
			bucket: func(string) string { return "no-such-bucket" },
			code:   "NoSuchBucket",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s3, bucket := newBucket(t)
			if tc.bucket != nil {
				bucket = tc.bucket(bucket)
			}
			isolateAWS(t, tc.keyID(s3), tc.secret(s3))
			endpoint, requests := countingProxy(t, s3.Endpoint())
			u := s3URL(bucket, endpoint)

			err := Check(context.Background(), u)
			require.ErrorIs(t, err, ErrRefused)
			var se *StoreError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.code, se.Code)
			msg := err.Error()
			for _, part := range []string{"s3://" + bucket, "bucket " + bucket, "refused to list sha256/", tc.code} {
				require.Contains(t, msg, part)
			}
			require.NotContains(t, msg, s3.SecretAccessKey)
			require.EqualValues(t, 1, requests.Load(), "requests for one refused check")
			t.Logf("Check: %v", err)

			st, err := OpenStore(context.Background(), u)
			require.NoError(t, err)
			defer st.Close()
			_, err = st.PutFile(context.Background(), writeFile(t, testData(1000)))
			require.ErrorIs(t, err, ErrRefused)
			_, err = st.Open(context.Background(), refOf(testData(10)))
			require.ErrorIs(t, err, ErrRefused)
			t.Logf("Open: %v", err)
		})
	}
}

// TestSeaweedFSDown kills the store: every call fails at once with an
// error naming the store and the bucket; once the store is back, what it
// held before is there and intact.
func TestSeaweedFSDown(t *testing.T) {
	s3, bucket := newBucket(t)
	u := s3.StoreURLFor(bucket)
	st, err := OpenStore(context.Background(), u)
	require.NoError(t, err)
	defer st.Close()
	data := testData(1 << 20)
	ref, err := st.PutFile(context.Background(), writeFile(t, data))
	require.NoError(t, err)

	s3.Kill()
	restarted := false
	defer func() {
		if !restarted {
			// Later tests share the server.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = s3.Start(ctx)
		}
	}()
	start := time.Now()
	err = Check(context.Background(), u)
	require.ErrorIs(t, err, ErrUnreachable)
	for _, part := range []string{"s3://" + bucket, "bucket " + bucket, "unreachable", "connection refused"} {
		require.Contains(t, err.Error(), part)
	}
	_, err = st.Open(context.Background(), ref)
	require.ErrorIs(t, err, ErrUnreachable)
	_, err = st.PutFile(context.Background(), writeFile(t, testData(5000)))
	require.ErrorIs(t, err, ErrUnreachable)
	t.Logf("three calls to a store that is down failed in %s: %v", time.Since(start).Round(time.Millisecond), err)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, s3.Start(ctx))
	restarted = true
	require.NoError(t, Check(ctx, u))
	got, err := readAll(t, st, ref)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
}

// TestSeaweedFSMultipartQuiet moves an artifact big enough to go up in
// parts and reads it back: relman's sha256 verifies it, and the SDK says
// nothing about skipping its own multipart checksum validation.
func TestSeaweedFSMultipartQuiet(t *testing.T) {
	s3, bucket := newBucket(t)
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)

	st, err := OpenStore(context.Background(), s3.StoreURLFor(bucket))
	require.NoError(t, err)
	defer st.Close()
	data := testData(40 << 20)
	ref, err := st.PutFile(context.Background(), writeFile(t, data))
	require.NoError(t, err)
	got, err := readAll(t, st, ref)
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got))
	require.NotContains(t, logs.String(), "Skipped validation")
}

// rssChildEnv makes the test binary the measured process of
// TestSeaweedFSLargeArtifactRSS instead of a test run.
const rssChildEnv = "RELMAN_ARTIFACT_RSS_CHILD"

// TestSeaweedFSLargeArtifactRSS uploads a 1 GiB artifact (a builder's
// PutFile) in one process and downloads it with verification (an
// installer's Open) in another, and reads each process's peak RSS. Both
// must stay under 100 MiB. RELMAN_ARTIFACT_RSS_SIZE changes the size.
func TestSeaweedFSLargeArtifactRSS(t *testing.T) {
	if mode := os.Getenv(rssChildEnv); mode != "" {
		rssChild(t, mode)
		return
	}
	s3, bucket := newBucket(t)
	size := int64(1 << 30)
	if v := os.Getenv("RELMAN_ARTIFACT_RSS_SIZE"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err)
		size = n
	}
	file := filepath.Join(t.TempDir(), "big.bin")
	writeRandomFile(t, file, size)
	refFile := filepath.Join(t.TempDir(), "ref.json")

	for _, mode := range []string{"upload", "download"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSeaweedFSLargeArtifactRSS$", "-test.v")
		cmd.Env = append(os.Environ(), rssChildEnv+"="+mode, "RELMAN_RSS_STORE="+s3.StoreURLFor(bucket), "RELMAN_RSS_FILE="+file, "RELMAN_RSS_REF="+refFile)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		took := time.Since(start)
		var base, peak int64
		sc := bufio.NewScanner(bytes.NewReader(out))
		found := false
		for sc.Scan() {
			if _, err := fmt.Sscanf(strings.TrimSpace(sc.Text()), "rss-kib %d %d", &base, &peak); err == nil {
				found = true
			}
		}
		require.True(t, found, "no rss line from the %s process:\n%s", mode, out)
		// A figure for the docs, not an assertion on time.
		t.Logf("%s of %d MiB: peak RSS %.1f MiB (%.1f MiB before it started), %s", mode, size>>20, float64(peak)/1024, float64(base)/1024, took.Round(time.Millisecond))
		require.Less(t, peak, int64(100<<10), "%s peak RSS over 100 MiB", mode)
	}
}

func writeRandomFile(t *testing.T, path string, size int64) {
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	// Random bytes, so no layer can shrink them; ChaCha8 makes 1 GiB in
	// about a second.
	r := mrand.NewChaCha8([32]byte{1})
	_, err = io.CopyN(f, r, size)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func rssChild(t *testing.T, mode string) {
	ctx := context.Background()
	st, err := OpenStore(ctx, os.Getenv("RELMAN_RSS_STORE"))
	require.NoError(t, err)
	defer st.Close()
	base := peakRSS(t)
	switch mode {
	case "upload":
		ref, err := st.PutFile(ctx, os.Getenv("RELMAN_RSS_FILE"))
		require.NoError(t, err)
		b, err := json.Marshal(ref)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(os.Getenv("RELMAN_RSS_REF"), b, 0o644))
	case "download":
		var ref Ref
		b, err := os.ReadFile(os.Getenv("RELMAN_RSS_REF"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &ref))
		r, err := st.Open(ctx, ref)
		require.NoError(t, err)
		n, err := io.Copy(io.Discard, r)
		require.NoError(t, err)
		require.NoError(t, r.Close())
		require.Equal(t, ref.Size, n)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	fmt.Printf("rss-kib %d %d\n", base, peakRSS(t))
}

// peakRSS is VmHWM from /proc/self/status, in KiB.
func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
