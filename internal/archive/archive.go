// Package archive packs build outputs into tar.gz files and unpacks tar.gz and
// zip files safely.
//
// Archives reach relman from builds and from upstream downloads, neither of
// which is trusted to be well-formed, so extraction treats every archive as
// hostile: entries are confined to the destination through os.Root, paths,
// links and special files that could reach outside it are refused, and sizes
// are enforced on the bytes actually written rather than on what headers claim.
package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrUnsafe is wrapped by every refusal to extract or pack an entry.
var ErrUnsafe = errors.New("unsafe archive entry")

// ErrUnknownFormat is returned by Extract for files that are neither gzip'd
// tar nor zip.
var ErrUnknownFormat = errors.New("unknown archive format")

// UnsafeError names the refused entry and the reason; it wraps ErrUnsafe.
type UnsafeError struct {
	Entry  string
	Reason string
	Err    error // underlying cause, if any
}

func (e *UnsafeError) Error() string {
	msg := fmt.Sprintf("unsafe archive entry %q: %s", e.Entry, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *UnsafeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrUnsafe, e.Err}
	}
	return []error{ErrUnsafe}
}

func unsafeEntry(entry, format string, args ...any) error {
	return &UnsafeError{Entry: entry, Reason: fmt.Sprintf(format, args...)}
}

// Limits bounds what one extraction may write. Zero fields take the defaults.
type Limits struct {
	MaxBytes     int64 // total bytes of file content; default 8 GiB
	MaxEntries   int   // entries of any kind; default 100000
	MaxFileBytes int64 // bytes of a single file; default 4 GiB
}

const (
	defaultMaxBytes     = 8 << 30
	defaultMaxEntries   = 100000
	defaultMaxFileBytes = 4 << 30
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = defaultMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = defaultMaxEntries
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = defaultMaxFileBytes
	}
	return l
}

// copyBufferSize is large because build outputs are large: fewer syscalls
// and fewer trips through the decompressor per byte.
const copyBufferSize = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

func copyBuffered(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	// Hide ReadFrom/WriteTo so the large buffer is the one actually used.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
}

// ctxReader lets a multi-gigabyte entry be abandoned when the context ends,
// not only between entries.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
