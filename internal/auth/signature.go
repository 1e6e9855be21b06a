package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	authapi "github.com/relman/relman/auth"
)

// Signature proves who asked for a request. It travels with the request
// into the workflow and its history; it is no secret, and it signs one
// transaction id, which Temporal never lets start twice.
type Signature struct {
	// Method is "token" (a user's API token signed it) or "gateway" (the
	// manager's XML-RPC gateway authenticated the user and signed it).
	Method string `json:"method"`
	KeyID  string `json:"key_id,omitempty"`
	User   string `json:"user,omitempty"`
	// Realm and Roles are who the gateway found the user to be, after the
	// credentials' role narrowed them. They are signed, so the manager takes
	// them from a valid gateway signature for users it cannot look up
	// itself (LDAP). Signatures made before realms have neither.
	Realm string    `json:"realm,omitempty"`
	Roles []string  `json:"roles,omitempty"`
	Time  time.Time `json:"time"`
	Value string    `json:"value"`
}

// ErrBadSignature: the signature does not check out.
var ErrBadSignature = errors.New("request signature rejected")

func signed(s Signature, payload []byte) []byte {
	if s.Realm == "" {
		msg := fmt.Sprintf("relman-request-v1\n%s\n%s\n%s\n%s\n", s.Method, s.KeyID, s.User, s.Time.UTC().Format(time.RFC3339Nano))
		return append([]byte(msg), payload...)
	}
	// JSON, so no role name can pass for a separator; nil and empty sign
	// alike because omitempty drops both.
	roles := s.Roles
	if roles == nil {
		roles = []string{}
	}
	rs, _ := json.Marshal(roles)
	msg := fmt.Sprintf("relman-request-v2\n%s\n%s\n%s\n%s\n%s\n%s\n", s.Method, s.KeyID, s.User, s.Realm, rs, s.Time.UTC().Format(time.RFC3339Nano))
	return append([]byte(msg), payload...)
}

// SignWithToken signs payload with a user's token.
func SignWithToken(key ed25519.PrivateKey, payload []byte, now time.Time) Signature {
	s := Signature{Method: "token", KeyID: KeyID(key.Public().(ed25519.PublicKey)), Time: now.UTC()}
	s.Value = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signed(s, payload)))
	return s
}

// SignAsGateway vouches for a principal the gateway has authenticated, with
// its realm and roles.
func SignAsGateway(secret []byte, p Principal, payload []byte, now time.Time) Signature {
	realm := p.Realm
	if realm == "" {
		realm = authapi.DefaultRealm
	}
	s := Signature{Method: "gateway", User: p.Name, Realm: realm, Roles: slices.Clone(p.Roles), Time: now.UTC()}
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
		return Principal{Name: name, Roles: f.Users[name].Roles, Realm: authapi.DefaultRealm}, nil
	case "gateway":
		if len(secret) == 0 {
			return Principal{}, ErrBadSignature
		}
		m := hmac.New(sha256.New, secret)
		m.Write(signed(s, payload))
		if !hmac.Equal(m.Sum(nil), sig) {
			return Principal{}, ErrBadSignature
		}
		return f.gatewayPrincipal(s)
	}
	return Principal{}, ErrBadSignature
}

// gatewayPrincipal is who a valid gateway signature vouches for. Users of
// the users file must still be in it with the signed roles, so removing a
// user or a role takes effect at once; users of other realms are taken as
// signed, since the manager has no way to look them up.
func (f *File) gatewayPrincipal(s Signature) (Principal, error) {
	if s.Realm == "" {
		u, ok := f.Users[s.User]
		if !ok {
			return Principal{}, ErrBadSignature
		}
		return Principal{Name: s.User, Roles: u.Roles, Realm: authapi.DefaultRealm}, nil
	}
	if !authapi.ValidRealm(s.Realm) || s.User == "" {
		return Principal{}, ErrBadSignature
	}
	p := Principal{Name: s.User, Roles: slices.Clone(s.Roles), Realm: s.Realm}
	if s.Realm != authapi.DefaultRealm {
		return p, nil
	}
	u, ok := f.Users[s.User]
	if !ok {
		return Principal{}, fmt.Errorf("%w: user %s is no longer in the users file", ErrBadSignature, s.User)
	}
	for _, r := range s.Roles {
		if !slices.Contains(u.Roles, r) {
			return Principal{}, fmt.Errorf("%w: user %s no longer has role %q", ErrBadSignature, s.User, r)
		}
	}
	return p, nil
}
