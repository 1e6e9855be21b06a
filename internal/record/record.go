// Package record keeps closed-transaction records: what relman keeps of a
// transaction so that it outlives Temporal's retention. When a Release or
// Rollback ends, the manager writes its detail and timeline (a
// transaction.Record) into its artifact store, content-addressed under
// sha256/ like an artifact, and one small index document under
// transactions/<namespace>/<id>.json that names it. The index is signed with the
// manager's records key (ed25519), so neither the record nor its index can
// be changed, or the pair replaced, by anyone who can write to the store
// but lacks the key: a record that does not verify is reported as such and
// never shown as the transaction.
//
// Records hold what the transaction's history holds, nothing secret:
// passwords and tokens never reach a transaction (see auth/signature.go), and
// the record is scrubbed of URL passwords and relman tokens besides.
package record

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/relman/relman/artifact"
	"github.com/relman/relman/auth"
	"github.com/relman/relman/internal/secretfile"
	"github.com/relman/relman/internal/transaction"
)

// version is the record format; a reader refuses a version it does not know.
const version = 1

// signedPrefix is signed before the index body, so that a signature of
// anything else relman signs can never pass for a record's.
const signedPrefix = "relman closed-transaction record v1\n"

// maxRecordSize bounds what a reader reads of a record: a 1,000-host
// release's record is about a megabyte.
const maxRecordSize = 64 << 20

// LoadKey reads the manager's records key from path, making it on first
// use (32 random bytes, mode 0600, as the gateway's secret). The signing
// key is derived from it, so the file is the one thing to keep and share
// between managers on one queue.
func LoadKey(path string, warn func(string)) (ed25519.PrivateKey, error) {
	secret, err := secretfile.LoadOrCreate(path, 32, warn)
	if err != nil {
		return nil, fmt.Errorf("records key %s: %w", path, err)
	}
	seed := sha256.Sum256(append([]byte("relman records key\x00"), secret...))
	return ed25519.NewKeyFromSeed(seed[:]), nil
}

// KeyID names a records key by its public key, for logs and the index.
func KeyID(key ed25519.PrivateKey) string {
	return auth.KeyID(key.Public().(ed25519.PublicKey))
}

// Keeper writes and reads one manager's records of the transactions of
// one Temporal namespace.
type Keeper struct {
	store     artifact.Store
	key       ed25519.PrivateKey
	keyID     string
	namespace string
	now       func() time.Time
}

// New returns a Keeper of namespace ns's records in store, signing with
// key.
func New(store artifact.Store, key ed25519.PrivateKey, ns string) *Keeper {
	return &Keeper{store: store, key: key, keyID: KeyID(key), namespace: ns, now: time.Now}
}

// KeyID is the id of the key the keeper signs with.
func (k *Keeper) KeyID() string { return k.keyID }

// Store is the artifact store the keeper writes to.
func (k *Keeper) Store() artifact.Store { return k.store }

// index is the document under transactions/<namespace>/<id>.json. Body is kept as the
// bytes that were signed.
type index struct {
	Body      json.RawMessage `json:"body"`
	KeyID     string          `json:"key_id"`
	Signature []byte          `json:"signature"`
}

// body is what the index says: which object is the record, and the row a
// list shows, so that listing needs no record read.
type body struct {
	Version     int                `json:"version"`
	Namespace   string             `json:"namespace"`
	Transaction string             `json:"transaction"`
	Record      artifact.Ref       `json:"record"`
	Row         transaction.Listed `json:"row"`
}

// Written says where a record went.
type Written struct {
	Key    string
	Record artifact.Ref
	// Existed: the transaction had a record already (written once); it was
	// left as it was.
	Existed bool
}

// ErrIndexTaken: the index key of a transaction already holds a document
// that does not verify; the keeper will not write over it.
var ErrIndexTaken = errors.New("record index taken")

// Write stores rec once: the record, then its signed index. A transaction
// that has a record keeps it; writing again (a retried activity) reports
// Existed.
func (k *Keeper) Write(ctx context.Context, rec transaction.Record) (Written, error) {
	rec.Version = version
	rec.Recorded = k.now().UTC()
	b, err := scrubbed(rec)
	if err != nil {
		return Written{}, fmt.Errorf("record of %s: %w", rec.Transaction, err)
	}
	key := artifact.RecordKey(k.namespace, rec.Transaction)
	var clean transaction.Record
	if err := json.Unmarshal(b, &clean); err != nil {
		return Written{}, fmt.Errorf("record of %s: %w", rec.Transaction, err)
	}
	if _, ref, err := k.read(ctx, rec.Transaction); err == nil {
		return Written{Key: key, Existed: true, Record: ref}, nil
	} else if errors.Is(err, transaction.ErrUnverified) {
		return Written{}, fmt.Errorf("%w: %v", ErrIndexTaken, err)
	} else if !errors.Is(err, transaction.ErrNoRecord) {
		return Written{}, err
	}
	ref, err := k.store.Put(ctx, bytes.NewReader(b))
	if err != nil {
		return Written{}, fmt.Errorf("record of %s: %w", rec.Transaction, err)
	}
	bb, err := json.Marshal(body{Version: version, Namespace: k.namespace, Transaction: rec.Transaction, Record: ref, Row: clean.Listed()})
	if err != nil {
		return Written{}, err
	}
	idx := index{Body: bb, KeyID: k.keyID, Signature: ed25519.Sign(k.key, signed(bb))}
	wrote, err := k.store.PutIndexOnce(ctx, key, idx)
	if err != nil {
		return Written{}, fmt.Errorf("record of %s: %w", rec.Transaction, err)
	}
	if !wrote {
		// Another writer got there between the look and the write.
		_, ref, err := k.read(ctx, rec.Transaction)
		if err != nil {
			return Written{}, fmt.Errorf("%w: %v", ErrIndexTaken, err)
		}
		return Written{Key: key, Existed: true, Record: ref}, nil
	}
	return Written{Key: key, Record: ref}, nil
}

func signed(b []byte) []byte { return append([]byte(signedPrefix), b...) }

// Record reads the record of txid and verifies it: the index's signature,
// then the record's bytes against the sha256 the index names. It makes the
// Keeper a transaction.Records.
func (k *Keeper) Record(ctx context.Context, txid string) (*transaction.Record, error) {
	rec, _, err := k.read(ctx, txid)
	return rec, err
}

func (k *Keeper) read(ctx context.Context, txid string) (*transaction.Record, artifact.Ref, error) {
	key := artifact.RecordKey(k.namespace, txid)
	b, err := k.index(ctx, txid, key)
	if err != nil {
		return nil, artifact.Ref{}, err
	}
	r, err := k.store.Open(ctx, b.Record)
	if errors.Is(err, artifact.ErrNotFound) {
		return nil, b.Record, unverified(txid, "its index names %s, which the store does not hold (deleted?); the index alone is not the transaction", b.Record.Key)
	}
	if err != nil {
		return nil, b.Record, fmt.Errorf("record of %s: %w", txid, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxRecordSize))
	if errors.Is(err, artifact.ErrCorrupt) {
		return nil, b.Record, unverified(txid, "its content was changed after the manager wrote it (%v)", err)
	}
	if err != nil {
		return nil, b.Record, fmt.Errorf("record of %s: %w", txid, err)
	}
	var rec transaction.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, b.Record, unverified(txid, "its content is not a record: %v", err)
	}
	if rec.Version != version {
		return nil, b.Record, fmt.Errorf("record of %s has format version %d; this relman reads version %d: upgrade relman", txid, rec.Version, version)
	}
	if rec.Transaction != txid || rec.Detail.Transaction != txid {
		return nil, b.Record, unverified(txid, "its content is the record of %s", rec.Transaction)
	}
	if !sameRow(rec.Listed(), b.Row) {
		return nil, b.Record, unverified(txid, "its content and its index disagree")
	}
	return &rec, b.Record, nil
}

// sameRow compares rows as they are stored, times included.
func sameRow(a, b transaction.Listed) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// index reads and verifies the index document of txid.
func (k *Keeper) index(ctx context.Context, txid, key string) (*body, error) {
	var idx index
	ok, err := k.store.GetIndex(ctx, key, &idx)
	if err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syn) || errors.As(err, &typ) {
			return nil, unverified(txid, "its index %s is not an index document", key)
		}
		return nil, fmt.Errorf("record of %s: %w", txid, err)
	}
	if !ok {
		return nil, fmt.Errorf("no closed-transaction record of %s in %s: %w", txid, k.store.URL(), transaction.ErrNoRecord)
	}
	if idx.KeyID != k.keyID {
		return nil, &unverifiedError{msg: fmt.Sprintf("the closed-transaction record of %s does not verify: it is signed with key %s, and this manager signs with %s (managers on one queue need the same records_key_file); it is not shown",
			txid, idx.KeyID, k.keyID), otherKey: true}
	}
	if !ed25519.Verify(k.key.Public().(ed25519.PublicKey), signed(idx.Body), idx.Signature) {
		return nil, unverified(txid, "its index was changed after the manager signed it")
	}
	var b body
	if err := json.Unmarshal(idx.Body, &b); err != nil {
		return nil, unverified(txid, "its signed index does not parse: %v", err)
	}
	if b.Version != version {
		return nil, fmt.Errorf("record of %s has format version %d; this relman reads version %d: upgrade relman", txid, b.Version, version)
	}
	if b.Transaction != txid || b.Row.Transaction != txid || b.Namespace != k.namespace {
		return nil, unverified(txid, "its index was signed for transaction %s of namespace %s", b.Transaction, b.Namespace)
	}
	if err := b.Record.Validate(); err != nil {
		return nil, unverified(txid, "its index names no record: %v", err)
	}
	return &b, nil
}

func unverified(txid, format string, args ...any) error {
	return &unverifiedError{msg: fmt.Sprintf("the closed-transaction record of %s does not verify: %s; it is not shown",
		txid, fmt.Sprintf(format, args...))}
}

// unverifiedError is transaction.ErrUnverified with the reason as its whole
// message; otherKey marks a record signed with a key this manager does not
// have (errOtherKey).
type unverifiedError struct {
	msg      string
	otherKey bool
}

func (e *unverifiedError) Error() string { return e.msg }
func (e *unverifiedError) Is(target error) bool {
	return target == transaction.ErrUnverified || e.otherKey && target == errOtherKey
}

// errOtherKey: the record is signed with another key than this manager's.
var errOtherKey = errors.New("record signed with another key")

// List returns the rows of the records that match f, newest first (by
// when the record was written), reading one index document per row, and
// the ids of records left out because their index does not verify.
func (k *Keeper) List(ctx context.Context, f transaction.Filter) ([]transaction.Listed, []string, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 20
	}
	prefix := artifact.RecordPrefix + k.namespace + "/"
	entries, err := k.store.ListIndex(ctx, prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("list closed-transaction records: %w", err)
	}
	sort.SliceStable(entries, func(i, j int) bool {
		if !entries[i].ModTime.Equal(entries[j].ModTime) {
			return entries[i].ModTime.After(entries[j].ModTime)
		}
		return entries[i].Key > entries[j].Key
	})
	rows := []transaction.Listed{}
	var bad []string
	for _, e := range entries {
		if len(rows) == limit {
			break
		}
		txid := strings.TrimSuffix(strings.TrimPrefix(e.Key, prefix), ".json")
		b, err := k.index(ctx, txid, e.Key)
		if errors.Is(err, errOtherKey) {
			// Another manager's record (a manager on another queue sharing
			// the store): not this manager's to vouch for, nor a forgery.
			continue
		}
		if errors.Is(err, transaction.ErrUnverified) {
			bad = append(bad, txid)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if matches(b.Row, f) {
			rows = append(rows, b.Row)
		}
	}
	return rows, bad, nil
}

func matches(r transaction.Listed, f transaction.Filter) bool {
	return (f.Project == "" || r.Project == f.Project) &&
		(f.Env == "" || r.Env == f.Env) &&
		(f.Status == "" || strings.EqualFold(r.Status, f.Status)) &&
		(f.Requester == "" || r.Requester == f.Requester)
}

var _ transaction.Records = (*Keeper)(nil)

// secretPatterns are what must never be in a record, even were it in a
// step's output: a password in a URL and a relman token.
var secretPatterns = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]*@`), "${1}:xxxxx@"},
	{regexp.MustCompile(regexp.QuoteMeta(auth.TokenPrefix) + `[A-Za-z0-9_-]{20,}`), auth.TokenPrefix + "xxxxx"},
}

// scrubbed is the record as JSON with every string scrubbed of secrets.
func scrubbed(rec transaction.Record) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(scrub(v))
}

func scrub(v any) any {
	switch v := v.(type) {
	case string:
		for _, p := range secretPatterns {
			v = p.re.ReplaceAllString(v, p.repl)
		}
		return v
	case map[string]any:
		for k, e := range v {
			v[k] = scrub(e)
		}
	case []any:
		for i := range v {
			v[i] = scrub(v[i])
		}
	}
	return v
}
