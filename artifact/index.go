package artifact

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"

	"gocloud.dev/gcerrors"
)

// indexPrefix holds small JSON documents that describe builds (build once:
// builds/<project>/<commit>-<config hash>.json). They are not content
// addressed, so they live outside sha256/ and only keys that match
// indexKeyRE can be read or written.
const indexPrefix = "builds/"

// maxIndexSize bounds what GetIndex reads: an index is a few KiB.
const maxIndexSize = 1 << 20

var indexKeyRE = regexp.MustCompile(`^builds/[a-z0-9][a-z0-9._-]{0,62}/[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$`)

// IndexKey is the key of a build index: builds/<project>/<name>.json.
func IndexKey(project, name string) string {
	return indexPrefix + project + "/" + name + ".json"
}

func validIndexKey(key string) error {
	if recordKeyRE.MatchString(key) {
		return nil
	}
	if !indexKeyRE.MatchString(key) || strings.Contains(key, "..") {
		return fmt.Errorf("%w: index key %q is not builds/<project>/<name>.json", ErrInvalidRef, key)
	}
	return nil
}

// PutIndex stores v as JSON under key (builds/...), replacing what was there.
func (s *store) PutIndex(ctx context.Context, key string, v any) error {
	if err := validIndexKey(key); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put index %s: %w", key, err)
	}
	if err := s.bucket.WriteAll(ctx, key, b, nil); err != nil {
		return s.fail("put index "+key, "write "+key, err)
	}
	return nil
}

// GetIndex reads the JSON under key into v. It reports false, with no
// error, when there is nothing under key.
func (s *store) GetIndex(ctx context.Context, key string, v any) (bool, error) {
	if err := validIndexKey(key); err != nil {
		return false, err
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		// Before NotFound: a missing bucket is also a 404.
		if cerr := s.classify("read "+key, err); cerr != err {
			return false, cerr
		}
		if gcerrors.Code(err) == gcerrors.NotFound {
			return false, nil
		}
		return false, fmt.Errorf("get index %s: %w", key, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(r, maxIndexSize+1)); err != nil {
		return false, fmt.Errorf("get index %s: %w", key, err)
	}
	if buf.Len() > maxIndexSize {
		return false, fmt.Errorf("get index %s: larger than %d bytes", key, maxIndexSize)
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return false, fmt.Errorf("get index %s: %w", key, err)
	}
	return true, nil
}

// Has reports whether the artifact ref names is stored with its size.
func (s *store) Has(ctx context.Context, ref Ref) (bool, error) {
	if err := ref.Validate(); err != nil {
		return false, err
	}
	return s.has(ctx, ref)
}
