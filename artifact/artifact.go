// Package artifact is relman's content-addressed artifact store: build outputs
// are stored under the sha256 of their bytes in a gocloud.dev/blob bucket
// (file://, s3:// or mem://), so that workers on different machines can hand
// artifacts to each other by reference, identical outputs are stored once, and
// every read is verified against the reference that named it.
//
// Artifacts can be many gigabytes, so nothing here holds a whole artifact in
// memory: uploads and downloads stream through fixed-size buffers.
package artifact

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs
	_ "gocloud.dev/blob/memblob"  // mem:// URLs
	_ "gocloud.dev/blob/s3blob"   // s3:// URLs
	"gocloud.dev/gcerrors"
)

// keyPrefix is the only part of the bucket that references may address;
// temporary uploads live under tmpPrefix, outside anything a Ref can name.
const (
	keyPrefix = "sha256/"
	tmpPrefix = "tmp/"
)

// copyBufferSize is large because artifacts are large and most backends are
// remote: fewer, bigger reads and writes cost less than many small ones.
const copyBufferSize = 1 << 20

var (
	// ErrCorrupt is wrapped by every error reporting that stored bytes do not
	// match the reference they were read by.
	ErrCorrupt = errors.New("artifact corrupt")
	// ErrNotFound is wrapped when a reference names an artifact the store
	// does not hold.
	ErrNotFound = errors.New("artifact not found")
	// ErrInvalidRef is wrapped when a reference is malformed; such a
	// reference is refused before the store is touched.
	ErrInvalidRef = errors.New("invalid artifact ref")
)

// Ref names an artifact. Key is always "sha256/" followed by SHA256, which is
// kept separately so callers need not parse keys.
type Ref struct {
	Key    string `json:"key"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// RefFor builds the reference for content with the given hex sha256 and size.
func RefFor(sha256Hex string, size int64) Ref {
	return Ref{Key: keyPrefix + sha256Hex, SHA256: sha256Hex, Size: size}
}

// Validate reports whether r can be used to address the store. Refs often
// arrive in requests from other processes, so a Key that could name anything
// other than a content-addressed object (a temporary upload, a path with "..")
// must never reach the bucket.
func (r Ref) Validate() error {
	hexPart, ok := strings.CutPrefix(r.Key, keyPrefix)
	if !ok || !isLowerHex64(hexPart) {
		return fmt.Errorf("%w: key %q is not sha256/<64 lowercase hex>", ErrInvalidRef, r.Key)
	}
	if r.SHA256 != hexPart {
		return fmt.Errorf("%w: key %q does not match sha256 %q", ErrInvalidRef, r.Key, r.SHA256)
	}
	if r.Size < 0 {
		return fmt.Errorf("%w: negative size %d for %q", ErrInvalidRef, r.Size, r.Key)
	}
	return nil
}

func isLowerHex64(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CorruptError reports an artifact whose stored bytes differ from its Ref.
type CorruptError struct {
	Key        string
	WantSHA256 string
	GotSHA256  string
	WantSize   int64
	GotSize    int64
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("artifact %s corrupt: want sha256 %s (%d bytes), got sha256 %s (%d bytes)",
		e.Key, e.WantSHA256, e.WantSize, e.GotSHA256, e.GotSize)
}

// Unwrap lets errors.Is(err, ErrCorrupt) match without callers knowing the type.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Store is a content-addressed artifact store. It is safe for concurrent use.
type Store interface {
	// PutFile hashes the file at path, then uploads it under sha256/<hex>,
	// skipping the upload when an object of the same size is already there.
	PutFile(ctx context.Context, path string) (Ref, error)
	// Put streams r into the store, hashing as it goes, for callers that do
	// not have a file to hash up front.
	Put(ctx context.Context, r io.Reader) (Ref, error)
	// Open returns a streaming reader of the artifact that verifies size and
	// sha256 as it is read: at EOF it returns a *CorruptError (wrapping
	// ErrCorrupt) instead of io.EOF if either differs. A missing artifact is
	// an error wrapping ErrNotFound.
	Open(ctx context.Context, ref Ref) (io.ReadCloser, error)
	// Has reports whether the artifact is stored with the ref's size.
	Has(ctx context.Context, ref Ref) (bool, error)
	// PutIndex and GetIndex store and read a small JSON document under a
	// builds/<project>/<name>.json key (see IndexKey) or a
	// transactions/<namespace>/<id>.json key (see RecordKey); GetIndex reports false
	// when the key holds nothing.
	PutIndex(ctx context.Context, key string, v any) error
	GetIndex(ctx context.Context, key string, v any) (bool, error)
	// PutIndexOnce is PutIndex for documents written once: it leaves what
	// is under key alone and reports false when something is there.
	PutIndexOnce(ctx context.Context, key string, v any) (bool, error)
	// ListIndex lists the index documents under prefix (IndexPrefix or
	// RecordPrefix), with their modification times.
	ListIndex(ctx context.Context, prefix string) ([]IndexEntry, error)
	// URL returns the store URL, normalised (a directory path becomes an
	// absolute file:// URL) so it can be handed to another process.
	URL() string
	Close() error
}

type store struct {
	bucket *blob.Bucket
	url    string
	// s3 is set for s3:// stores: it classifies their errors and sizes
	// their uploads.
	s3 *s3Store
}

// OpenStore opens the store at url: "file:///abs/dir", "file://./rel/dir", a
// plain directory path, "s3://bucket?endpoint=...&region=...&use_path_style=true"
// or "mem://". Directories are created when missing.
func OpenStore(ctx context.Context, rawURL string) (Store, error) {
	canonical, openURL, err := normaliseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", redact(rawURL), err)
	}
	if strings.HasPrefix(openURL, "s3://") {
		s3s, err := openS3(ctx, openURL)
		if err != nil {
			return nil, fmt.Errorf("open store %q: %w", redact(rawURL), err)
		}
		return &store{bucket: s3s.blob, url: canonical, s3: s3s}, nil
	}
	b, err := blob.OpenBucket(ctx, openURL)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", redact(rawURL), err)
	}
	return &store{bucket: b, url: canonical}, nil
}

// redact hides a password in a store URL before it goes into an error:
// errors end up in workflow histories and logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// normaliseURL returns the URL to report from URL() and the URL to open the
// bucket with, which carries fileblob defaults the caller did not choose.
func normaliseURL(raw string) (canonical, open string, err error) {
	if raw == "" {
		return "", "", errors.New("empty store url")
	}
	if !strings.Contains(raw, "://") {
		// A bare directory path: the common case for a local store.
		return fileURL(raw, nil)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("parse url: %w", err)
	}
	if u.Scheme != "file" {
		return raw, raw, nil
	}
	dir := u.Path
	if u.Host == "." {
		dir = "." + u.Path
	} else if u.Host != "" && u.Host != "localhost" {
		return "", "", fmt.Errorf("file url with host %q: only local paths are supported", u.Host)
	}
	return fileURL(dir, u.Query())
}

func fileURL(dir string, q url.Values) (canonical, open string, err error) {
	if dir == "" {
		return "", "", errors.New("file url without a path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("resolve %q: %w", dir, err)
	}
	if q == nil {
		q = url.Values{}
	}
	c := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	canonical = c.String()

	oq := url.Values{}
	for k, v := range q {
		oq[k] = v
	}
	setDefault := func(k, v string) {
		if oq.Get(k) == "" {
			oq.Set(k, v)
		}
	}
	setDefault("create_dir", "true")
	// Folders the store makes are closed to other users (owner and group
	// only): builds and closed-transaction records are not for every
	// account on the machine. Roles that share a store share a group.
	setDefault("dir_file_mode", "0750")
	// Temporary files next to the final path keep the rename on one
	// filesystem: the store directory is often a mount that os.TempDir is not.
	setDefault("no_tmp_dir", "true")
	// Content addressing makes metadata worthless, and sidecar .attrs files
	// would double the file count of a shared directory.
	setDefault("metadata", "skip")
	o := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: oq.Encode()}
	return canonical, o.String(), nil
}

func (s *store) URL() string { return s.url }

func (s *store) Close() error {
	if err := s.bucket.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	// Hide any ReadFrom/WriteTo so the pooled buffer is actually used rather
	// than whatever (possibly tiny) buffer the other side would pick.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

func newWriterOptions() *blob.WriterOptions {
	// Setting the content type stops the bucket from buffering the first
	// bytes to sniff one, which is meaningless for opaque artifacts.
	return &blob.WriterOptions{ContentType: "application/octet-stream"}
}

// writerOptions are the options of an upload of size bytes (-1: unknown).
func (s *store) writerOptions(size int64) *blob.WriterOptions {
	if s.s3 != nil {
		return s.s3.writerOptions(size)
	}
	return newWriterOptions()
}

// fail reports err from the bucket: a remote store's refusal or absence as
// the *StoreError that already says everything, anything else behind
// prefix.
func (s *store) fail(prefix, op string, err error) error {
	if cerr := s.classify(op, err); cerr != err {
		return cerr
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// classify gives errors of remote stores their kind (ErrRefused,
// ErrUnreachable) and the store's name; op says what was asked.
func (s *store) classify(op string, err error) error {
	if s.s3 == nil || err == nil {
		return err
	}
	return s.s3.classify(op, err)
}

// Check makes one cheap authenticated request to the store at rawURL and
// returns nil if the store can be used: for s3:// a list of at most one key
// (credentials, bucket and list permission), for file:// that the directory
// is there or can be made. Roles call it at start so that a wrong key or a
// store that is down shows up before the first release; its error wraps
// ErrRefused or ErrUnreachable and names the store and the bucket.
func Check(ctx context.Context, rawURL string) error {
	s, err := OpenStore(ctx, rawURL)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.(*store).check(ctx)
}

func (s *store) check(ctx context.Context) error {
	if s.s3 != nil {
		return s.s3.check(ctx)
	}
	if _, err := s.bucket.IsAccessible(ctx); err != nil {
		return fmt.Errorf("artifact store %s cannot be used: %w", s.url, err)
	}
	return nil
}

// intact reads a stored artifact through the verifying reader: an object
// of the right size whose bytes went bad is then overwritten by the upload
// instead of being trusted forever.
func (s *store) intact(ctx context.Context, ref Ref) bool {
	r, err := s.Open(ctx, ref)
	if err != nil {
		return false
	}
	defer r.Close()
	_, err = copyBuffered(io.Discard, r)
	return err == nil
}

func (s *store) PutFile(ctx context.Context, path string) (Ref, error) {
	f, err := os.Open(path)
	if err != nil {
		return Ref{}, fmt.Errorf("put file: %w", err)
	}
	defer f.Close()

	h := sha256.New()
	size, err := copyBuffered(h, f)
	if err != nil {
		return Ref{}, fmt.Errorf("put file: hash %s: %w", path, err)
	}
	ref := RefFor(hex.EncodeToString(h.Sum(nil)), size)

	if ok, err := s.has(ctx, ref); err != nil {
		return Ref{}, err
	} else if ok && s.intact(ctx, ref) {
		return ref, nil
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Ref{}, fmt.Errorf("put file: rewind %s: %w", path, err)
	}
	// The file may change between hashing and uploading; hashing again on
	// the way out means such a change aborts the upload instead of storing
	// bytes under a key that does not describe them.
	if s.s3 != nil {
		if err := s.s3.upload(ctx, ref, f); err != nil {
			if errors.Is(err, errChanged) {
				return Ref{}, fmt.Errorf("put file: %s %w", path, err)
			}
			return Ref{}, err
		}
		return ref, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, ref.Key, newWriterOptions())
	if err != nil {
		return Ref{}, s.fail("put file "+path, "write "+ref.Key, err)
	}
	h2 := sha256.New()
	n, err := copyBuffered(io.MultiWriter(w, h2), f)
	if err == nil && (n != ref.Size || hex.EncodeToString(h2.Sum(nil)) != ref.SHA256) {
		err = fmt.Errorf("%s changed while being uploaded", path)
	}
	if err != nil {
		cancel() // a cancelled context makes Close discard the partial object
		_ = w.Close()
		return Ref{}, s.fail("put file "+path, "write "+ref.Key, err)
	}
	if err := w.Close(); err != nil {
		return Ref{}, s.fail("put file "+path, "write "+ref.Key, err)
	}
	return ref, nil
}

func (s *store) Put(ctx context.Context, r io.Reader) (ref Ref, err error) {
	tmpKey, err := newTempKey()
	if err != nil {
		return Ref{}, fmt.Errorf("put: %w", err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, tmpKey, s.writerOptions(-1))
	if err != nil {
		return Ref{}, s.fail("put", "write "+tmpKey, err)
	}
	h := sha256.New()
	size, err := copyBuffered(io.MultiWriter(w, h), r)
	if err != nil {
		cancel()
		_ = w.Close()
		return Ref{}, s.fail("put", "write "+tmpKey, err)
	}
	if err := w.Close(); err != nil {
		return Ref{}, s.fail("put", "write "+tmpKey, err)
	}
	defer func() {
		// The temporary object must go even when the caller's context is
		// already done, or failed puts would accumulate in the bucket.
		if derr := s.bucket.Delete(context.WithoutCancel(ctx), tmpKey); derr != nil && err == nil {
			err = s.fail("put: remove temporary "+tmpKey, "delete "+tmpKey, derr)
		}
	}()

	ref = RefFor(hex.EncodeToString(h.Sum(nil)), size)
	if ok, err := s.has(ctx, ref); err != nil {
		return Ref{}, err
	} else if ok {
		return ref, nil
	}
	if err := s.bucket.Copy(ctx, ref.Key, tmpKey, nil); err != nil {
		return Ref{}, s.fail("put: copy to "+ref.Key, "copy "+tmpKey+" to "+ref.Key, err)
	}
	return ref, nil
}

func newTempKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("temporary key: %w", err)
	}
	return tmpPrefix + hex.EncodeToString(b[:]), nil
}

// has reports whether ref is already stored. Only the size is compared: the
// key already pins the content, and a same-sized object under it can only
// differ through corruption, which Open detects on every read anyway.
func (s *store) has(ctx context.Context, ref Ref) (bool, error) {
	attrs, err := s.bucket.Attributes(ctx, ref.Key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return false, nil
	}
	if err != nil {
		return false, s.fail("stat "+ref.Key, "stat "+ref.Key, err)
	}
	return attrs.Size == ref.Size, nil
}

func (s *store) Open(ctx context.Context, ref Ref) (io.ReadCloser, error) {
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	r, err := s.bucket.NewReader(ctx, ref.Key, nil)
	if err != nil {
		// Before NotFound: a missing bucket is also a 404.
		if cerr := s.classify("read "+ref.Key, err); cerr != err {
			return nil, cerr
		}
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("open artifact %s: %w: %w", ref.Key, ErrNotFound, err)
		}
		return nil, fmt.Errorf("open artifact %s: %w", ref.Key, err)
	}
	v := &verifyingReader{r: r}
	v.check = checkingReader{r: r, ref: ref, h: sha256.New(), mismatch: func(got string, n int64) error {
		return &CorruptError{Key: ref.Key, WantSHA256: ref.SHA256, GotSHA256: got, WantSize: ref.Size, GotSize: n}
	}}
	return v, nil
}

// verifyingReader checks the bytes against the Ref only at EOF: it has to
// stream, so a caller will have consumed corrupt bytes by then and must treat
// any error from Read as "discard everything read".
type verifyingReader struct {
	r     *blob.Reader
	check checkingReader // reads r; a *CorruptError at EOF on a mismatch
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.check.Read(p)
	if err == nil || err == io.EOF || err == v.check.err {
		return n, err
	}
	return n, fmt.Errorf("read artifact %s: %w", v.check.ref.Key, err)
}

// checkingReader reads r and, instead of io.EOF, returns mismatch's error
// (sticky) when the bytes read were not those of ref.
type checkingReader struct {
	r        io.Reader
	ref      Ref
	h        hash.Hash
	n        int64
	err      error
	mismatch func(gotSHA256 string, gotSize int64) error
}

func (c *checkingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(c.h.Sum(nil)); c.n != c.ref.Size || got != c.ref.SHA256 {
			c.err = c.mismatch(got, c.n)
			return n, c.err
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error {
	if err := v.r.Close(); err != nil {
		return fmt.Errorf("close artifact %s: %w", v.check.ref.Key, err)
	}
	return nil
}
