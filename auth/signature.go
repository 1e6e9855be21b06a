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
)

// Signature proves who asked for a request. It travels with the request
// into the workflow and its history; it is no secret. It covers one
// transaction id and everything of the request that changes what runs, and
// it expires: the manager refuses it after Expires, and refuses a second
// run of the transaction id it signs (activities.Manager), so it is good
// once.
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
	// Expires ends the signature's use; signatures made before expiries
	// have none and are refused.
	Expires time.Time `json:"expires,omitempty"`
	Value   string    `json:"value"`
}

// SignatureTTL is how long a signature made now stays good: enough for a
// start to reach Temporal, short enough that a copied signature is soon
// worthless. The manager's signature_max_age bounds it too.
const SignatureTTL = 10 * time.Minute

// ErrBadSignature: the signature does not check out.
var ErrBadSignature = errors.New("request signature rejected")

// Signer names who signs, the way the manager finds it in a verified
// signature: a token's key id, or the user and realm the gateway vouched
// for. It scopes request ids (workflows.RequestTransactionID).
func (s Signature) Signer() string {
	if s.Method == "gateway" {
		return GatewaySigner(Principal{Name: s.User, Realm: s.Realm})
	}
	return TokenSigner(s.KeyID)
}

// TokenSigner is Signer for the token with key id keyID.
func TokenSigner(keyID string) string { return "token:" + keyID }

// GatewaySigner is Signer for a principal the gateway vouches for.
func GatewaySigner(p Principal) string {
	realm := p.Realm
	if realm == "" {
		realm = DefaultRealm
	}
	return "gateway:" + p.Name + "@" + realm
}

func signed(s Signature, payload []byte) []byte {
	// JSON, so no role name can pass for a separator; nil and empty sign
	// alike because omitempty drops both.
	roles := s.Roles
	if roles == nil {
		roles = []string{}
	}
	rs, _ := json.Marshal(roles)
	var msg string
	switch {
	case !s.Expires.IsZero():
		msg = fmt.Sprintf("relman-request-v3\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n", s.Method, s.KeyID, s.User, s.Realm, rs,
			s.Time.UTC().Format(time.RFC3339Nano), s.Expires.UTC().Format(time.RFC3339Nano))
	case s.Realm == "":
		msg = fmt.Sprintf("relman-request-v1\n%s\n%s\n%s\n%s\n", s.Method, s.KeyID, s.User, s.Time.UTC().Format(time.RFC3339Nano))
	default:
		msg = fmt.Sprintf("relman-request-v2\n%s\n%s\n%s\n%s\n%s\n%s\n", s.Method, s.KeyID, s.User, s.Realm, rs, s.Time.UTC().Format(time.RFC3339Nano))
	}
	return append([]byte(msg), payload...)
}

// SignWithToken signs payload with a user's token, good for SignatureTTL.
func SignWithToken(key ed25519.PrivateKey, payload []byte, now time.Time) Signature {
	s := Signature{Method: "token", KeyID: KeyID(key.Public().(ed25519.PublicKey)), Time: now.UTC(), Expires: now.UTC().Add(SignatureTTL)}
	s.Value = base64.StdEncoding.EncodeToString(ed25519.Sign(key, signed(s, payload)))
	return s
}

// SignAsGateway vouches for a principal the gateway has authenticated, with
// its realm and roles, for SignatureTTL.
func SignAsGateway(secret []byte, p Principal, payload []byte, now time.Time) Signature {
	realm := p.Realm
	if realm == "" {
		realm = DefaultRealm
	}
	s := Signature{Method: "gateway", User: p.Name, Realm: realm, Roles: slices.Clone(p.Roles), Time: now.UTC(), Expires: now.UTC().Add(SignatureTTL)}
	m := hmac.New(sha256.New, secret)
	m.Write(signed(s, payload))
	s.Value = base64.StdEncoding.EncodeToString(m.Sum(nil))
	return s
}

// Verify checks a signature over payload, at now: made within maxAge of
// now (clocks differ) and not expired. It returns who signed it.
func (f *File) Verify(secret []byte, s Signature, payload []byte, now time.Time, maxAge time.Duration) (Principal, error) {
	if s.Expires.IsZero() {
		return Principal{}, fmt.Errorf("%w: it has no expiry, so an older relman client made it; upgrade the client", ErrBadSignature)
	}
	if now.After(s.Expires) {
		return Principal{}, fmt.Errorf("%w: it expired at %s; sign the request again", ErrBadSignature, s.Expires.Format(time.RFC3339))
	}
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
		return Principal{Name: name, Roles: f.Users[name].Roles, Realm: DefaultRealm}, nil
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
		return Principal{Name: s.User, Roles: u.Roles, Realm: DefaultRealm}, nil
	}
	if !ValidRealm(s.Realm) || s.User == "" {
		return Principal{}, ErrBadSignature
	}
	p := Principal{Name: s.User, Roles: slices.Clone(s.Roles), Realm: s.Realm}
	if s.Realm != DefaultRealm {
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
