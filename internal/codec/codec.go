// Package codec encrypts every Temporal payload relman writes (workflow
// inputs, results, activity arguments, queries) with AES-256-GCM, so a
// history read straight from Temporal's database shows ciphertext. Keys have
// ids: the first key of the key file encrypts, every key decrypts, so keys
// rotate by adding a new first line. `relman codec-server` lets the Web UI
// decode payloads for people who hold the key file.
package codec

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/relman/relman/internal/secretfile"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

const (
	// Encoding marks an encrypted payload.
	Encoding = "binary/encrypted"
	// MetaKeyID names the key that encrypted a payload.
	MetaKeyID = "encryption-key-id"
)

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Codec is an AES-256-GCM payload codec.
type Codec struct {
	active string
	keys   map[string]cipher.AEAD
}

// LoadKeys reads a key file: one key a line as `id:base64-of-32-bytes`;
// blank lines and lines starting with # are skipped; the first key encrypts.
// warn (may be nil) hears of a key file others can read.
func LoadKeys(path string, warn func(string)) (*Codec, error) {
	b, err := secretfile.Read(path, warn)
	if err != nil {
		return nil, fmt.Errorf("encryption key file: %w", err)
	}
	c := &Codec{keys: map[string]cipher.AEAD{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, enc, ok := strings.Cut(line, ":")
		if !ok || !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("encryption key file %s:%d: want id:base64key", path, n)
		}
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("encryption key file %s:%d: key %s is not 32 bytes of base64", path, n, id)
		}
		if _, dup := c.keys[id]; dup {
			return nil, fmt.Errorf("encryption key file %s:%d: key id %s twice", path, n, id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		c.keys[id] = aead
		if c.active == "" {
			c.active = id
		}
	}
	if c.active == "" {
		return nil, fmt.Errorf("encryption key file %s holds no key; make one with `relman codec-key`", path)
	}
	return c, nil
}

// NewKeyLine makes a key file line with a fresh random key.
func NewKeyLine(id string) (string, error) {
	if !keyIDPattern.MatchString(id) {
		return "", fmt.Errorf("key id %q: use letters, digits, '.', '_' or '-'", id)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	return id + ":" + base64.StdEncoding.EncodeToString(k), nil
}

// Encode encrypts each payload whole (metadata and data) with the active key.
func (c *Codec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	aead := c.keys[c.active]
	for i, p := range ps {
		plain, err := p.Marshal()
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding), MetaKeyID: []byte(c.active)},
			Data:     aead.Seal(nonce, nonce, plain, []byte(c.active)),
		}
	}
	return out, nil
}

// Decode decrypts payloads this codec encrypted and passes others through.
func (c *Codec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != Encoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetaKeyID])
		aead, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("payload encrypted with key %q, which the key file lacks", id)
		}
		d := p.GetData()
		if len(d) < aead.NonceSize() {
			return nil, errors.New("encrypted payload too short")
		}
		plain, err := aead.Open(nil, d[:aead.NonceSize()], d[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("payload does not decrypt with key %q: %w", id, err)
		}
		var q commonpb.Payload
		if err := q.Unmarshal(plain); err != nil {
			return nil, err
		}
		out[i] = &q
	}
	return out, nil
}

// DataConverter wraps the default converter with the codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// LoadTokens reads the codec server's token file: one bearer token a line
// (blank lines and lines starting with # skipped), each at least 16
// characters, so a token can be added before the old one is removed.
func LoadTokens(path string, warn func(string)) ([]string, error) {
	b, err := secretfile.Read(path, warn)
	if err != nil {
		return nil, fmt.Errorf("codec token file: %w", err)
	}
	var out []string
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < 16 {
			return nil, fmt.Errorf("codec token file %s:%d: a token needs at least 16 characters; make one with `openssl rand -hex 32`", path, n+1)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("codec token file %s holds no token; put one in it, e.g. from `openssl rand -hex 32`", path)
	}
	return out, nil
}

// Handler serves the codec (POST /encode, /decode) to callers that send
// one of tokens as a bearer token (Authorization: Bearer T; the Temporal
// CLI sends it with --codec-auth, the Web UI as its access token), with
// CORS for the UI's origins. Anything else gets 401 and decodes nothing:
// whoever can call the codec can read every payload.
func (c *Codec) Handler(origins []string, tokens []string) http.Handler {
	h := converter.NewPayloadCodecHTTPHandler(c)
	allowed := map[string]bool{}
	for _, o := range origins {
		allowed[strings.TrimRight(o, "/")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			if !allowed[o] {
				http.Error(w, "origin not allowed", http.StatusForbidden)
				return
			}
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type,X-Namespace,Authorization")
			w.Header().Set("Access-Control-Allow-Methods", "POST,OPTIONS")
			w.Header().Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				// A browser's preflight carries no credentials; it
				// learns only what it may send.
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		if !bearerOK(r.Header.Get("Authorization"), tokens) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="relman codec"`)
			http.Error(w, "a bearer token is required (Authorization: Bearer TOKEN, from the codec server's --token-file)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearerOK compares in constant time against every token, so the answer
// time says nothing about how much of a token was right.
func bearerOK(header string, tokens []string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || got == "" {
		return false
	}
	found := 0
	for _, t := range tokens {
		found |= subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(t))
	}
	return found == 1
}
