package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Signature proves who asked for a request. It travels with the request
// into the workflow and its history; it is no secret, and it signs one
// transaction id, which Temporal never lets start twice.
type Signature struct {
	// Method is "token" (a user's API token signed it) or "gateway" (the
	// manager's XML-RPC gateway authenticated the user and signed it).
	Method string    `json:"method"`
	KeyID  string    `json:"key_id,omitempty"`
	User   string    `json:"user,omitempty"`
	Time   time.Time `json:"time"`
	Value  string    `json:"value"`
}

// ErrBadSignature: the signature does not check out.
var ErrBadSignature = errors.New("request signature rejected")

func signed(s Signature, payload []byte) []byte {
	msg := fmt.Sprintf("relman-request-v1\n%s\n%s\n%s\n%s\n", s.Method, s.KeyID, s.User, s.Time.UTC().Format(time.RFC3339Nano))
	return append([]byte(msg), payload...)
}

// SignWithToken signs payload with a user's token.
func SignWithToken(key ed25519.PrivateKey, payload []byte, now time.Time) Signature {
	s := Signature{Method: "token", KeyID: KeyID(key.Public().(ed25519.PublicKey)), Time: now.UTC()}
	s.Value = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signed(s, payload)))
	return s
}

// SignAsGateway vouches for a user the gateway has authenticated.
func SignAsGateway(secret []byte, user string, payload []byte, now time.Time) Signature {
	s := Signature{Method: "gateway", User: user, Time: now.UTC()}
	m := hmac.New(sha256.New, secret)
	m.Write(signed(s, payload))
	s.Value = base64.StdEncoding.EncodeToString(m.Sum(nil))
	return s
}

// Verify checks a signature over payload made within maxAge of now and
// returns who signed it.
func (f *File) Verify(secret []byte, s Signature, payload []byte, now time.Time, maxAge time.Duration) (Principal, error) {
	if d := now.Sub(s.Time); d > maxAge || d < -maxAge {
		return Principal{}, fmt.Errorf("%w: signed at %s, more than %s from now; check the client's clock", ErrBadSignature, s.Time.Format(time.RFC3339), maxAge)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Value)
	if err != nil {
		return Principal{}, ErrBadSignature
	}
	switch s.Method {
	case "token":
		name, pub, ok := f.lookupKey(s.KeyID)
		if !ok || !ed25519.Verify(pub, signed(s, payload), sig) {
			return Principal{}, ErrBadSignature
		}
		return Principal{Name: name, Roles: f.Users[name].Roles}, nil
	case "gateway":
		if len(secret) == 0 {
			return Principal{}, ErrBadSignature
		}
		m := hmac.New(sha256.New, secret)
		m.Write(signed(s, payload))
		if !hmac.Equal(m.Sum(nil), sig) {
			return Principal{}, ErrBadSignature
		}
		u, ok := f.Users[s.User]
		if !ok {
			return Principal{}, ErrBadSignature
		}
		return Principal{Name: s.User, Roles: u.Roles}, nil
	}
	return Principal{}, ErrBadSignature
}

// LoadSecret reads the gateway's signing secret, making one on first use.
// Managers that share a queue must share this file.
func LoadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("secret file %s holds fewer than 32 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadSecret(path)
		}
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}
