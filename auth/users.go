// One users file holds every user with a bcrypt password hash, roles, and
// API tokens. A token is the seed of an ed25519 key: the file stores only the
// public key, a one-way function of the token, so the file never holds a
// secret. The XML-RPC gateway checks a password or a token; the CLI never
// sends its token anywhere: it signs each request with it, and the manager
// checks the signature, so a client that forges a requester name gets
// nowhere and no secret reaches a workflow history.

package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/relman/relman/internal/secretfile"
)

// TokenPrefix starts every relman API token.
const TokenPrefix = "relman_"

// User is one entry of the users file.
type User struct {
	PasswordHash string   `yaml:"password_hash,omitempty"`
	Roles        []string `yaml:"roles"`
	Tokens       []Token  `yaml:"tokens,omitempty"`
}

// Token is what the users file keeps of an API token: its public key.
type Token struct {
	ID        string    `yaml:"id"`
	PublicKey string    `yaml:"public_key"`
	Created   time.Time `yaml:"created"`
}

// File is the users file.
type File struct {
	Users map[string]*User `yaml:"users"`
	path  string
}

var userName = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]{0,62}$`)

// ValidUserName reports whether name can be a user.
func ValidUserName(name string) bool { return userName.MatchString(name) }

// Load reads a users file; a missing file is an empty one, so the first
// `relman user add` can create it.
func Load(path string) (*File, error) {
	f := &File{Users: map[string]*User{}, path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	if f.Users == nil {
		f.Users = map[string]*User{}
	}
	for name := range f.Users {
		if !ValidUserName(name) {
			return nil, fmt.Errorf("users file %s: user name %q must be lowercase letters, digits, '.', '_', '@' or '-'", path, name)
		}
	}
	return f, nil
}

// Save writes the file readable by its owner only, through a rename so a
// crash never leaves half a file.
func (f *File) Save() error {
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	return secretfile.Write(f.path, b)
}

// SetPassword adds or updates a user with a bcrypt hash of password.
func (f *File) SetPassword(name, password string, roles []string) error {
	if !ValidUserName(name) {
		return fmt.Errorf("user name %q must be lowercase letters, digits, '.', '_', '@' or '-'", name)
	}
	if len(password) < 8 {
		return errors.New("a password needs at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	u := f.user(name)
	u.PasswordHash = string(h)
	if roles != nil {
		u.Roles = roles
	}
	return nil
}

func (f *File) user(name string) *User {
	u, ok := f.Users[name]
	if !ok {
		u = &User{}
		f.Users[name] = u
	}
	return u
}

// NewToken makes an API token for a user and records its public key. The
// token itself is returned once and stored nowhere.
func (f *File) NewToken(name string, roles []string) (string, Token, error) {
	if !ValidUserName(name) {
		return "", Token{}, fmt.Errorf("user name %q must be lowercase letters, digits, '.', '_', '@' or '-'", name)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", Token{}, err
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	t := Token{ID: KeyID(pub), PublicKey: base64.StdEncoding.EncodeToString(pub), Created: time.Now().UTC().Truncate(time.Second)}
	u := f.user(name)
	if roles != nil {
		u.Roles = roles
	}
	u.Tokens = append(u.Tokens, t)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(seed), t, nil
}

// KeyID names a public key without revealing anything: the first 16 hex
// digits of its sha256.
func KeyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return fmt.Sprintf("%x", s[:8])
}

// ParseToken returns the signing key of a token.
func ParseToken(token string) (ed25519.PrivateKey, error) {
	s, ok := strings.CutPrefix(strings.TrimSpace(token), TokenPrefix)
	if !ok {
		return nil, fmt.Errorf("a relman token starts with %q", TokenPrefix)
	}
	seed, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("the relman token is malformed; create a new one with `relman token create`")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// dummyHash keeps a login for an unknown user as slow as one with a wrong
// password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("relman-no-such-user"), bcrypt.DefaultCost)

// Password checks a user name and password.
func (f *File) Password(name, password string) (Principal, error) {
	u, ok := f.Users[name]
	if !ok || u.PasswordHash == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return Principal{}, ErrDenied
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return Principal{}, ErrDenied
	}
	return Principal{Name: name, Roles: u.Roles, Realm: DefaultRealm}, nil
}

// TokenPrincipal checks an API token sent as a credential (XML-RPC).
func (f *File) TokenPrincipal(token string) (Principal, error) {
	key, err := ParseToken(token)
	if err != nil {
		return Principal{}, ErrDenied
	}
	return f.keyPrincipal(key.Public().(ed25519.PublicKey))
}

func (f *File) keyPrincipal(pub ed25519.PublicKey) (Principal, error) {
	want := base64.StdEncoding.EncodeToString(pub)
	names := make([]string, 0, len(f.Users))
	for n := range f.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, t := range f.Users[n].Tokens {
			if subtle.ConstantTimeCompare([]byte(t.PublicKey), []byte(want)) == 1 {
				return Principal{Name: n, Roles: f.Users[n].Roles, Realm: DefaultRealm}, nil
			}
		}
	}
	return Principal{}, ErrDenied
}

// lookupKey finds a token's public key by its id.
func (f *File) lookupKey(id string) (string, ed25519.PublicKey, bool) {
	for n, u := range f.Users {
		for _, t := range u.Tokens {
			if t.ID == id {
				b, err := base64.StdEncoding.DecodeString(t.PublicKey)
				if err != nil || len(b) != ed25519.PublicKeySize {
					return "", nil, false
				}
				return n, ed25519.PublicKey(b), true
			}
		}
	}
	return "", nil, false
}
