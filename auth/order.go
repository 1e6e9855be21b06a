package auth

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relman/relman/internal/secretfile"
)

// Order is what a manager allows one installer to do once: install (or roll
// back, or health-check) one artifact for one target on one host, for one
// transaction, until it expires. The manager's workflows sign it with a key
// the manager's worker holds in memory (never in a payload); the signed
// order travels in the installer's activity input, and the installer checks
// it before touching anything.
type Order struct {
	// ID names the order, unique per order the manager signs; an
	// installer runs it for one activity only (see Ledger).
	ID          string `json:"id"`
	Namespace   string `json:"namespace"`
	Queue       string `json:"queue"` // the manager's task queue
	Transaction string `json:"transaction"`
	RunID       string `json:"run_id"`
	Host        string `json:"host"`
	Env         string `json:"env"`
	Target      string `json:"target"`
	Action      string `json:"action"` // "install" (with its health check) or "rollback"
	SHA256      string `json:"sha256"`
	// To is the transaction a rollback switches to ("" for the release
	// before the current one, and for other actions).
	To      string    `json:"to,omitempty"`
	Expires time.Time `json:"expires"`
}

// SignedOrder is an Order and the manager's ed25519 signature over its
// canonical JSON. It is no secret.
type SignedOrder struct {
	Order     Order  `json:"order"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // base64
}

// OrderKeyID names a public key: the first 8 bytes of it, base64, enough to
// tell the trusted keys apart in an error.
func OrderKeyID(pub ed25519.PublicKey) string {
	if len(pub) < 8 {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(pub[:8])
}

func orderPayload(o Order) ([]byte, error) {
	o.Expires = o.Expires.UTC()
	b, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	return append([]byte("relman-order-v1\n"), b...), nil
}

// SignOrder signs o with the manager's order key.
func SignOrder(key ed25519.PrivateKey, o Order) (SignedOrder, error) {
	if len(key) != ed25519.PrivateKeySize {
		return SignedOrder{}, errors.New("order key: not an ed25519 private key")
	}
	if o.ID == "" {
		return SignedOrder{}, errors.New("order has no id")
	}
	o.Expires = o.Expires.UTC()
	p, err := orderPayload(o)
	if err != nil {
		return SignedOrder{}, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return SignedOrder{
		Order:     o,
		KeyID:     OrderKeyID(pub),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, p)),
	}, nil
}

// OrderExpect is what an installer knows to be true of the order it is
// about to run: its own namespace, host and the managers' queue, and the
// action, target and artifact the activity input asks for.
type OrderExpect struct {
	Namespace   string
	Queue       string
	Transaction string
	Host        string
	Env         string
	Target      string
	Action      string
	SHA256      string
	To          string
}

// OrderError says why an installer refused an order, and what to do.
type OrderError struct {
	Field string
	Msg   string
}

func (e *OrderError) Error() string {
	return "order refused: " + e.Field + ": " + e.Msg
}

func refuse(field, format string, a ...any) error {
	return &OrderError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// VerifyOrder checks s was signed by one of trusted, binds exactly what
// want says, and has not expired at now. It does not check replay: see
// Ledger.
func VerifyOrder(s *SignedOrder, trusted []ed25519.PublicKey, want OrderExpect, now time.Time) error {
	if s == nil || s.Signature == "" {
		return refuse("order", "no signed order: this host runs only orders a manager it trusts signed (trust.manager_keys, trust.manager_key_files); this activity was scheduled by something else (check who has access to the namespace), or by a manager from before signed orders (upgrade it and start a new transaction)")
	}
	if len(trusted) == 0 {
		return refuse("trust", "this installer trusts no manager key: set trust.manager_keys to what relman manager-key --config manager.yaml prints, or trust.manager_key_files to the manager's orders.key.pub")
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil {
		return refuse("signature", "not base64: %v", err)
	}
	p, err := orderPayload(s.Order)
	if err != nil {
		return refuse("order", "%v", err)
	}
	ok := false
	for _, k := range trusted {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, p, sig) {
			ok = true
			break
		}
	}
	if !ok {
		ids := make([]string, 0, len(trusted))
		for _, k := range trusted {
			ids = append(ids, OrderKeyID(k))
		}
		return refuse("signature", "signed by an unknown key (key id %q; this host trusts %s): if it is your manager's, add its public key (relman manager-key, or its orders.key.pub) to trust.manager_keys or trust.manager_key_files; otherwise check who scheduled this activity", s.KeyID, strings.Join(ids, ", "))
	}
	o := s.Order
	for _, c := range []struct{ field, got, want string }{
		{"namespace", o.Namespace, want.Namespace},
		{"queue", o.Queue, want.Queue},
		{"transaction", o.Transaction, want.Transaction},
		{"host", o.Host, want.Host},
		{"env", o.Env, want.Env},
		{"target", o.Target, want.Target},
		{"action", o.Action, want.Action},
		{"sha256", strings.ToLower(o.SHA256), strings.ToLower(want.SHA256)},
		{"to", o.To, want.To},
	} {
		if c.got != c.want {
			return refuse(c.field, "the order is for %q, this activity is for %q: the order was signed for something else", c.got, c.want)
		}
	}
	if o.ID == "" || strings.ContainsAny(o.ID, "/\\") || o.ID == "." || o.ID == ".." {
		return refuse("id", "bad order id %q", o.ID)
	}
	if !now.Before(o.Expires) {
		return refuse("expires", "the order expired at %s: start a new transaction", o.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// Ledger remembers, in an installer's work dir, which orders it has run and
// for which activity. An order is good for one activity: its first use
// records the activity (workflow run id and activity id); Temporal's retries
// of that activity carry the same ids and may use the order again, while any
// other activity presenting it (a replayed order) is refused. Entries may be
// removed once their order has expired.
type Ledger struct {
	Dir string
}

// Claim records order id as used by activity, or refuses it if another
// activity used it first. The entry is kept until the order expires
// (its file's modification time; Prune drops it then): an expired order
// is refused before the ledger is asked.
func (l Ledger) Claim(id, activity string, expires time.Time) error {
	if id == "" || strings.ContainsAny(id, "/\\") || id == "." || id == ".." {
		return refuse("id", "bad order id %q", id)
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return err
	}
	p := filepath.Join(l.Dir, id)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, werr := f.WriteString(activity)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Chtimes(p, expires, expires)
		}
		return werr
	}
	if !errors.Is(err, os.ErrExist) {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if string(b) != activity {
		return refuse("id", "order %s was already used by another activity (%s): a replayed order; start a new transaction", id, string(b))
	}
	return nil
}

// Prune removes the entries of orders expired before now, which no check
// lets through any more, and says how many it removed.
func (l Ledger) Prune(now time.Time) (int, error) {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(now) {
			continue
		}
		if os.Remove(filepath.Join(l.Dir, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}

// ParseManagerKey reads a trusted manager public key: base64 (standard or
// URL) of the 32-byte ed25519 key, as `relman manager-key` prints it.
func ParseManagerKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), nil
		}
	}
	return nil, fmt.Errorf("manager key %q: not base64 of a 32-byte ed25519 public key", s)
}

// LoadOrderKey reads the manager's order-signing key (a 32-byte ed25519
// seed) from path, or on first use makes one there, owner-only. warn gets
// a sentence when others may read the file.
func LoadOrderKey(path string, warn func(string)) (ed25519.PrivateKey, error) {
	seed, err := secretfile.LoadOrCreate(path, ed25519.SeedSize, warn)
	if err != nil {
		return nil, fmt.Errorf("orders key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize]), nil
}

// EncodeManagerKey is the base64 form of a manager's public key that
// installers list in trust.manager_keys.
func EncodeManagerKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// OrderPublicKeyFile is where a manager whose order key is in keyFile
// writes its public key for installers (trust.manager_key_files):
// keyFile + ".pub".
func OrderPublicKeyFile(keyFile string) string {
	return keyFile + ".pub"
}

// WriteOrderPublicKey writes pub beside the manager's order key, as one
// base64 line readable by all (mode 0644), unless the file already says
// exactly that. It replaces the file in one rename, so an installer
// reading it at that moment sees the old key or the new one, never half.
func WriteOrderPublicKey(keyFile string, pub ed25519.PublicKey) (string, error) {
	path := OrderPublicKeyFile(keyFile)
	want := EncodeManagerKey(pub) + "\n"
	if b, err := os.ReadFile(path); err == nil && string(b) == want {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o644 {
			return path, nil
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return path, fmt.Errorf("orders public key: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(want)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return path, fmt.Errorf("orders public key %s: %w", path, err)
	}
	return path, nil
}

// ReadManagerKeyFile reads a trusted manager public key from a file such
// as WriteOrderPublicKey writes.
func ReadManagerKeyFile(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust.manager_key_files: %w", err)
	}
	k, err := ParseManagerKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("trust.manager_key_files: %s: not a manager public key (one base64 line, as the manager writes beside its orders_key_file): %v", path, err)
	}
	return k, nil
}
