package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/harness/testcert"
)

// syncBuf is a buffer the server goroutine writes while the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The codec server refuses to serve plain HTTP beyond loopback unless told
// TLS ends in front of it, and with a certificate it serves HTTPS that a
// client trusting the CA reaches, token and all.
func TestCodecServerServesTLSBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "payload.keys")
	f, err := os.Create(keys)
	require.NoError(t, err)
	require.Equal(t, ExitOK, Execute(context.Background(), []string{"codec-key", "k1"}, Options{Stdout: f, Stderr: io.Discard}))
	require.NoError(t, f.Close())
	token := filepath.Join(dir, "codec.token")
	require.NoError(t, os.WriteFile(token, []byte("s3cret-token-0123456789\n"), 0o600))

	_, stderr, code := run(t, "codec-server", "--encryption-key-file", keys, "--token-file", token, "--listen-address", "0.0.0.0", "--port", "0")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "would serve plain HTTP on 0.0.0.0")
	assert.Contains(t, stderr, "--tls-cert and --tls-key, or --insecure")
	_, stderr, code = run(t, "codec-server", "--encryption-key-file", keys, "--token-file", token, "--tls-cert", "x.pem", "--port", "0")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "--tls-cert and --tls-key go together")

	cert := testcert.Make(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuf
	done := make(chan int)
	go func() {
		done <- Execute(ctx, []string{"codec-server", "--encryption-key-file", keys, "--token-file", token,
			"--port", "0", "--tls-cert", cert.Cert, "--tls-key", cert.Key}, Options{Stdout: &out, Stderr: io.Discard})
	}()
	var url string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`codec server on (https://\S+) `).FindStringSubmatch(out.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 10*time.Second, 20*time.Millisecond)
	pem, err := os.ReadFile(cert.CA)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodPost, url+"/decode", strings.NewReader(`{"payloads":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer s3cret-token-0123456789")
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	cancel()
	assert.Equal(t, ExitOK, <-done)
}
