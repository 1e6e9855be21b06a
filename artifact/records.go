package artifact

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Closed-transaction records (internal/record) live beside the artifacts:
// the record itself content-addressed under sha256/ like any artifact, and
// one small index document per transaction under RecordPrefix that names
// it, by Temporal namespace: transaction ids are unique in a namespace
// only, and one store may serve several. Namespaces and transaction ids
// (uuids, or request ids of letters, digits, '.', '_', ':', '-') never
// hold a '/', so a key cannot leave its place.
const (
	// RecordPrefix holds the index of closed-transaction records.
	RecordPrefix = "transactions/"
	// IndexPrefix holds the build-once indexes (IndexKey).
	IndexPrefix = indexPrefix
)

var recordKeyRE = regexp.MustCompile(`^transactions/[A-Za-z0-9][A-Za-z0-9._-]{0,254}/[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\.json$`)

// RecordKey is the index key of the closed-transaction record of
// transaction txid in namespace ns: transactions/<ns>/<txid>.json.
func RecordKey(ns, txid string) string { return RecordPrefix + ns + "/" + txid + ".json" }

// IndexEntry is one index document ListIndex found.
type IndexEntry struct {
	Key     string
	ModTime time.Time
	Size    int64
}

// PutIndexOnce stores v as JSON under key unless something is there. The
// write itself is conditional where the backend can (IfNotExist), so two
// writers racing for one key leave the first document.
func (s *store) PutIndexOnce(ctx context.Context, key string, v any) (bool, error) {
	if err := validIndexKey(key); err != nil {
		return false, err
	}
	if ok, err := s.bucket.Exists(ctx, key); err != nil {
		return false, fmt.Errorf("put index %s: %w", key, err)
	} else if ok {
		return false, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("put index %s: %w", key, err)
	}
	err = s.bucket.WriteAll(ctx, key, b, &blob.WriterOptions{ContentType: "application/json", IfNotExist: true})
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("put index %s: %w", key, err)
	}
	return true, nil
}

// ListIndex lists the index documents under prefix, which must be
// IndexPrefix or RecordPrefix (or a longer prefix inside one of them).
func (s *store) ListIndex(ctx context.Context, prefix string) ([]IndexEntry, error) {
	if !strings.HasPrefix(prefix, RecordPrefix) && !strings.HasPrefix(prefix, IndexPrefix) {
		return nil, fmt.Errorf("%w: list prefix %q is outside %s and %s", ErrInvalidRef, prefix, RecordPrefix, IndexPrefix)
	}
	var out []IndexEntry
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		if obj.IsDir || validIndexKey(obj.Key) != nil {
			continue
		}
		out = append(out, IndexEntry{Key: obj.Key, ModTime: obj.ModTime, Size: obj.Size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
