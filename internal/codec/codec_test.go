package codec

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

func keyFile(t *testing.T, ids ...string) string {
	t.Helper()
	var lines []byte
	for _, id := range ids {
		l, err := NewKeyLine(id)
		require.NoError(t, err)
		lines = append(lines, l+"\n"...)
	}
	p := filepath.Join(t.TempDir(), "keys")
	require.NoError(t, os.WriteFile(p, lines, 0o600))
	return p
}

func TestRoundTripAndRotation(t *testing.T) {
	p := keyFile(t, "k1")
	c, err := LoadKeys(p, nil)
	require.NoError(t, err)
	dc := c.DataConverter()
	pl, err := dc.ToPayload(map[string]string{"project": "secret-project"})
	require.NoError(t, err)
	assert.Equal(t, Encoding, string(pl.Metadata[converter.MetadataEncoding]))
	assert.Equal(t, "k1", string(pl.Metadata[MetaKeyID]))
	assert.NotContains(t, string(pl.Data), "secret-project")
	var back map[string]string
	require.NoError(t, dc.FromPayload(pl, &back))
	assert.Equal(t, "secret-project", back["project"])

	// Rotation: a new first key encrypts; the old one still decrypts.
	old, _ := os.ReadFile(p)
	nl, err := NewKeyLine("k2")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, append([]byte(nl+"\n"), old...), 0o600))
	c2, err := LoadKeys(p, nil)
	require.NoError(t, err)
	require.NoError(t, c2.DataConverter().FromPayload(pl, &back))
	pl2, err := c2.DataConverter().ToPayload("x")
	require.NoError(t, err)
	assert.Equal(t, "k2", string(pl2.Metadata[MetaKeyID]))

	// Another key file cannot read it, and says which key it needs.
	other, err := LoadKeys(keyFile(t, "k9"), nil)
	require.NoError(t, err)
	err = other.DataConverter().FromPayload(pl, &back)
	assert.ErrorContains(t, err, `"k1"`)

	// Tampering is detected.
	bad := &commonpb.Payload{Metadata: pl.Metadata, Data: append([]byte{}, pl.Data...)}
	bad.Data[len(bad.Data)-1] ^= 1
	_, err = c.Decode([]*commonpb.Payload{bad})
	assert.Error(t, err)

	// Plain payloads pass through (histories from before encryption).
	plain, _ := converter.GetDefaultDataConverter().ToPayload("old")
	outp, err := c.Decode([]*commonpb.Payload{plain})
	require.NoError(t, err)
	assert.Equal(t, plain, outp[0])
}

func TestBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"empty":     "# nothing\n",
		"short key": "k1:c2hvcnQ=\n",
		"no id":     "c2hvcnQ=\n",
		"twice":     func() string { l, _ := NewKeyLine("a"); return l + "\n" + l + "\n" }(),
	} {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		_, err := LoadKeys(p, nil)
		assert.Error(t, err, name)
	}
}

const testToken = "0123456789abcdef0123456789abcdef"

// decodeRequest is a /decode call of the UI's shape for one payload.
func decodeRequest(t *testing.T, c *Codec, url string) *http.Request {
	t.Helper()
	pl, err := c.DataConverter().ToPayload("hello")
	require.NoError(t, err)
	body, _ := json.Marshal(map[string]any{"payloads": []any{map[string]any{
		"metadata": map[string]string{"encoding": "YmluYXJ5L2VuY3J5cHRlZA==", MetaKeyID: "azE="},
		"data":     pl.Data,
	}}})
	req, _ := http.NewRequest(http.MethodPost, url+"/decode", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func TestCodecServerCORS(t *testing.T) {
	c, err := LoadKeys(keyFile(t, "k1"), nil)
	require.NoError(t, err)
	srv := httptest.NewServer(c.Handler([]string{"http://localhost:8233"}, []string{testToken}))
	defer srv.Close()
	req := decodeRequest(t, c, srv.URL)
	req.Header.Set("Origin", "http://localhost:8233")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "http://localhost:8233", resp.Header.Get("Access-Control-Allow-Origin"))
	var got struct {
		Payloads []struct {
			Data []byte `json:"data"`
		} `json:"payloads"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.Len(t, got.Payloads, 1)
	assert.Equal(t, `"hello"`, string(got.Payloads[0].Data))

	req = decodeRequest(t, c, srv.URL)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp2.StatusCode)
}

// TestCodecServerNeedsToken: without the bearer token, with a wrong one,
// or with no Origin header at all (a script, not a browser), nothing is
// decoded.
func TestCodecServerNeedsToken(t *testing.T) {
	c, err := LoadKeys(keyFile(t, "k1"), nil)
	require.NoError(t, err)
	srv := httptest.NewServer(c.Handler([]string{"http://localhost:8233"}, []string{testToken}))
	defer srv.Close()
	for name, tc := range map[string]struct {
		origin, auth string
		want         int
	}{
		"no origin, no token":    {"", "", http.StatusUnauthorized},
		"UI origin, no token":    {"http://localhost:8233", "", http.StatusUnauthorized},
		"wrong token":            {"", "Bearer " + testToken[:31] + "X", http.StatusUnauthorized},
		"token without Bearer":   {"", testToken, http.StatusUnauthorized},
		"right token, no origin": {"", "Bearer " + testToken, http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			req := decodeRequest(t, c, srv.URL)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
			if tc.want != http.StatusOK {
				assert.NotContains(t, string(b), "hello", "nothing decoded")
				assert.Contains(t, string(b), "bearer token is required")
			}
		})
	}
	// The browser's preflight carries no token and learns only the rules.
	req, _ := http.NewRequest(http.MethodOptions, srv.URL+"/decode", nil)
	req.Header.Set("Origin", "http://localhost:8233")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
}

func TestLoadTokens(t *testing.T) {
	for name, tc := range map[string]struct {
		body string
		want []string
		err  string
	}{
		"two tokens":  {"# rotate\n" + testToken + "\n\n" + testToken + "2\n", []string{testToken, testToken + "2"}, ""},
		"empty":       {"# nothing\n", nil, "holds no token"},
		"short token": {"abc\n", nil, "at least 16 characters"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "token")
			require.NoError(t, os.WriteFile(p, []byte(tc.body), 0o600))
			got, err := LoadTokens(p, nil)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
