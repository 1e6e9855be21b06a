package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var orderNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testOrder() (Order, OrderExpect) {
	o := Order{
		ID: "o1", Namespace: "ns", Queue: "relman-manager", Transaction: "t1", RunID: "r1",
		Host: "h1", Env: "prod", Target: "web", Action: "install", SHA256: "abc123",
		Expires: orderNow.Add(time.Hour),
	}
	return o, OrderExpect{
		Namespace: "ns", Queue: "relman-manager", Transaction: "t1", Host: "h1",
		Env: "prod", Target: "web", Action: "install", SHA256: "ABC123",
	}
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

func refusedField(t *testing.T, err error) string {
	t.Helper()
	var oe *OrderError
	require.True(t, errors.As(err, &oe), "want an OrderError, got %v", err)
	return oe.Field
}

func TestOrderSignVerify(t *testing.T) {
	pub, priv := newKey(t)
	other, _ := newKey(t)
	o, want := testOrder()
	s, err := SignOrder(priv, o)
	require.NoError(t, err)
	assert.Equal(t, OrderKeyID(pub), s.KeyID)

	// The signing key among several trusted (rotation) verifies.
	require.NoError(t, VerifyOrder(&s, []ed25519.PublicKey{other, pub}, want, orderNow))

	// Only untrusted keys, or none: refused.
	assert.Equal(t, "signature", refusedField(t, VerifyOrder(&s, []ed25519.PublicKey{other}, want, orderNow)))
	assert.Equal(t, "trust", refusedField(t, VerifyOrder(&s, nil, want, orderNow)))
	// Unsigned: refused.
	assert.Equal(t, "order", refusedField(t, VerifyOrder(nil, []ed25519.PublicKey{pub}, want, orderNow)))
	assert.Equal(t, "order", refusedField(t, VerifyOrder(&SignedOrder{Order: o}, []ed25519.PublicKey{pub}, want, orderNow)))

	// Expired: refused at and after Expires.
	assert.Equal(t, "expires", refusedField(t, VerifyOrder(&s, []ed25519.PublicKey{pub}, want, o.Expires)))
	assert.Equal(t, "expires", refusedField(t, VerifyOrder(&s, []ed25519.PublicKey{pub}, want, o.Expires.Add(time.Second))))
}

func TestOrderTamperedFieldsRefused(t *testing.T) {
	pub, priv := newKey(t)
	o, want := testOrder()
	s, err := SignOrder(priv, o)
	require.NoError(t, err)
	trusted := []ed25519.PublicKey{pub}

	// Each signed field changed after signing breaks the signature.
	tamper := map[string]func(*Order){
		"id":          func(o *Order) { o.ID = "o2" },
		"namespace":   func(o *Order) { o.Namespace = "x" },
		"queue":       func(o *Order) { o.Queue = "x" },
		"transaction": func(o *Order) { o.Transaction = "x" },
		"run_id":      func(o *Order) { o.RunID = "x" },
		"host":        func(o *Order) { o.Host = "h2" },
		"env":         func(o *Order) { o.Env = "x" },
		"target":      func(o *Order) { o.Target = "x" },
		"action":      func(o *Order) { o.Action = "rollback" },
		"sha256":      func(o *Order) { o.SHA256 = "def" },
		"to":          func(o *Order) { o.To = "x" },
		"expires":     func(o *Order) { o.Expires = o.Expires.Add(time.Hour) },
	}
	for name, f := range tamper {
		t.Run("signed/"+name, func(t *testing.T) {
			c := s
			f(&c.Order)
			assert.Equal(t, "signature", refusedField(t, VerifyOrder(&c, trusted, want, orderNow)))
		})
	}
	sig, _ := base64.StdEncoding.DecodeString(s.Signature)
	sig[0] ^= 1
	c := s
	c.Signature = base64.StdEncoding.EncodeToString(sig)
	assert.Equal(t, "signature", refusedField(t, VerifyOrder(&c, trusted, want, orderNow)))

	// A genuine order used for something it was not signed for: refused,
	// naming the field.
	mismatch := map[string]func(*OrderExpect){
		"namespace":   func(w *OrderExpect) { w.Namespace = "other" },
		"queue":       func(w *OrderExpect) { w.Queue = "other" },
		"transaction": func(w *OrderExpect) { w.Transaction = "other" },
		"host":        func(w *OrderExpect) { w.Host = "h2" },
		"env":         func(w *OrderExpect) { w.Env = "other" },
		"target":      func(w *OrderExpect) { w.Target = "other" },
		"action":      func(w *OrderExpect) { w.Action = "rollback" },
		"sha256":      func(w *OrderExpect) { w.SHA256 = "def" },
		"to":          func(w *OrderExpect) { w.To = "tx-0" },
	}
	for field, f := range mismatch {
		t.Run("expect/"+field, func(t *testing.T) {
			w := want
			f(&w)
			assert.Equal(t, field, refusedField(t, VerifyOrder(&s, trusted, w, orderNow)))
		})
	}
}

func TestOrderLedgerReplay(t *testing.T) {
	l := Ledger{Dir: filepath.Join(t.TempDir(), "orders")}
	exp := orderNow.Add(time.Hour)
	require.NoError(t, l.Claim("o1", "run1/act5", exp))
	// A retry of the same activity may use it again.
	require.NoError(t, l.Claim("o1", "run1/act5", exp))
	// Any other activity (a replayed order) is refused.
	assert.Equal(t, "id", refusedField(t, l.Claim("o1", "run2/act5", exp)))
	assert.Equal(t, "id", refusedField(t, l.Claim("o1", "run1/act6", exp)))
	// Ids cannot escape the ledger dir.
	assert.Equal(t, "id", refusedField(t, l.Claim("../x", "run1/act5", exp)))
	// Another order is independent.
	require.NoError(t, l.Claim("o2", "run2/act5", orderNow.Add(2*time.Hour)))

	// Pruning forgets the orders expired by then, and only those.
	n, err := l.Prune(orderNow.Add(90 * time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, "id", refusedField(t, l.Claim("o2", "run9/act1", orderNow.Add(2*time.Hour))), "o2 is still remembered")
	require.NoError(t, l.Claim("o1", "run7/act1", exp), "o1 was forgotten; its expiry refuses it before the ledger is asked")
	n, err = Ledger{Dir: filepath.Join(t.TempDir(), "none")}.Prune(orderNow)
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestParseManagerKey(t *testing.T) {
	pub, _ := newKey(t)
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(pub),
		base64.RawURLEncoding.EncodeToString(pub) + "\n",
	} {
		k, err := ParseManagerKey(s)
		require.NoError(t, err)
		assert.Equal(t, pub, k)
	}
	_, err := ParseManagerKey("bm90IGEga2V5")
	assert.Error(t, err)
}

func TestLoadOrderKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf", "orders.key")
	k1, err := LoadOrderKey(path, nil)
	require.NoError(t, err)
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k2, err := LoadOrderKey(path, nil)
	require.NoError(t, err)
	assert.Equal(t, k1, k2, "the second start reads the key the first made")
	pub, err := ParseManagerKey(EncodeManagerKey(k1.Public().(ed25519.PublicKey)))
	require.NoError(t, err)
	assert.Equal(t, k1.Public(), pub)
}

// The manager writes its public key beside its key for installers, one
// base64 line readable by all, and rewrites it when the key changes.
func TestWriteOrderPublicKey(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "orders.key")
	pub, _ := newKey(t)
	path, err := WriteOrderPublicKey(keyFile, pub)
	require.NoError(t, err)
	assert.Equal(t, keyFile+".pub", path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, EncodeManagerKey(pub)+"\n", string(b))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	got, err := ReadManagerKeyFile(path)
	require.NoError(t, err)
	assert.Equal(t, pub, got)

	other, _ := newKey(t)
	require.NoError(t, os.Chmod(path, 0o600))
	_, err = WriteOrderPublicKey(keyFile, other)
	require.NoError(t, err)
	got, err = ReadManagerKeyFile(path)
	require.NoError(t, err)
	assert.Equal(t, other, got)
	fi, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())

	require.NoError(t, os.WriteFile(path, []byte("junk\n"), 0o644))
	_, err = ReadManagerKeyFile(path)
	assert.ErrorContains(t, err, path)
	_, err = ReadManagerKeyFile(path + ".missing")
	assert.ErrorContains(t, err, path+".missing")
}
