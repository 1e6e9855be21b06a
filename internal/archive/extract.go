package archive

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSymlinkTarget bounds symlink targets read from zip entry bodies, which,
// unlike tar link names, have no format-imposed limit.
const maxSymlinkTarget = 4096

// maxLinkHops mirrors the kernel's limit on symlinks followed in one lookup.
const maxLinkHops = 40

// Extract sniffs whether the file at path is a gzip'd tar or a zip and
// extracts it into dest, as ExtractTarGz or ExtractZip would.
func Extract(ctx context.Context, path, dest string, lim Limits) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	n, err := io.ReadFull(f, magic[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("extract %s: %w", path, err)
	}
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return ExtractTarGz(ctx, f, dest, lim)
	case n == 4 && (string(magic[:]) == "PK\x03\x04" || string(magic[:]) == "PK\x05\x06"):
		// PK\x05\x06 is an empty zip: just an end-of-directory record.
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("extract %s: %w", path, err)
		}
		return ExtractZip(ctx, f, fi.Size(), dest, lim)
	default:
		return fmt.Errorf("extract %s: %w (starts with %x)", path, ErrUnknownFormat, magic[:n])
	}
}

// ExtractTarGz extracts the gzip'd tar read from r into dest, an existing
// (normally empty) directory. Nothing is ever written outside dest. On error
// dest may hold a partial extraction, which the caller should discard, but
// never a symlink that leads out of it.
func ExtractTarGz(ctx context.Context, r io.Reader, dest string, lim Limits) (err error) {
	x, err := newExtractor(ctx, dest, lim)
	if err != nil {
		return err
	}
	defer func() { err = x.finish(err) }()

	zr, err := gzip.NewReader(bufio.NewReaderSize(r, copyBufferSize))
	if err != nil {
		return fmt.Errorf("extract tar.gz: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract tar.gz: %w", err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract tar.gz: %w", err)
		}
		if err := x.countEntry(hdr.Name); err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeReg:
			err = x.file(hdr.Name, mode, tr, hdr.Size)
		case tar.TypeDir:
			err = x.dir(hdr.Name, mode)
		case tar.TypeSymlink:
			err = x.symlink(hdr.Name, hdr.Linkname)
		case tar.TypeLink:
			err = x.hardlink(hdr.Name, hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			err = unsafeEntry(hdr.Name, "device and fifo entries are not allowed")
		case tar.TypeXGlobalHeader:
			// Metadata for the entries that follow; nothing to write.
		default:
			err = unsafeEntry(hdr.Name, "unsupported entry type %q", hdr.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

// ExtractZip extracts the zip in ra (size bytes long) into dest, with the
// same guarantees as ExtractTarGz.
func ExtractZip(ctx context.Context, ra io.ReaderAt, size int64, dest string, lim Limits) (err error) {
	zr, err := zip.NewReader(ra, size)
	// Non-local names are reported here only under a GODEBUG setting; they
	// are refused entry by entry below either way, with a better message.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("extract zip: %w", err)
	}
	x, err := newExtractor(ctx, dest, lim)
	if err != nil {
		return err
	}
	defer func() { err = x.finish(err) }()

	// The central directory gives the count up front, so an oversized
	// archive is refused before anything is written.
	if len(zr.File) > x.lim.MaxEntries {
		return unsafeEntry(zr.File[x.lim.MaxEntries].Name, "archive has %d entries, more than the limit of %d", len(zr.File), x.lim.MaxEntries)
	}
	for _, f := range zr.File {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("extract zip: %w", err)
		}
		if err := x.countEntry(f.Name); err != nil {
			return err
		}
		if err := x.zipEntry(f); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) zipEntry(f *zip.File) error {
	mode := f.Mode()
	if f.UncompressedSize64 > math.MaxInt64 {
		return unsafeEntry(f.Name, "declared size %d is out of range", f.UncompressedSize64)
	}
	switch {
	case mode.IsDir():
		return x.dir(f.Name, mode.Perm())
	case mode&fs.ModeSymlink != 0:
		if f.UncompressedSize64 > maxSymlinkTarget {
			return unsafeEntry(f.Name, "symlink target longer than %d bytes", maxSymlinkTarget)
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("extract zip entry %q: %w", f.Name, err)
		}
		defer rc.Close()
		target, err := io.ReadAll(io.LimitReader(zipContent{rc, f.Name}, maxSymlinkTarget+1))
		if err != nil {
			return fmt.Errorf("extract zip entry %q: %w", f.Name, err)
		}
		if len(target) > maxSymlinkTarget {
			return unsafeEntry(f.Name, "symlink target longer than %d bytes", maxSymlinkTarget)
		}
		return x.symlink(f.Name, string(target))
	case mode.IsRegular():
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("extract zip entry %q: %w", f.Name, err)
		}
		defer rc.Close()
		return x.file(f.Name, mode.Perm(), zipContent{rc, f.Name}, int64(f.UncompressedSize64))
	default:
		return unsafeEntry(f.Name, "device, fifo and socket entries are not allowed (mode %v)", mode)
	}
}

// zipContent reports an entry whose data disagrees with its header (more
// bytes than declared, wrong checksum) as unsafe: such an archive was built to
// mislead, not damaged by accident.
type zipContent struct {
	r    io.Reader
	name string
}

func (z zipContent) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) {
		err = &UnsafeError{Entry: z.name, Reason: "content does not match its header", Err: err}
	}
	return n, err
}

// extractor holds the state of one extraction. All filesystem access goes
// through root, so even a mistake in the checks below cannot reach outside
// dest; the checks exist to refuse clearly and to keep dest free of links
// that would mislead whoever reads it later.
type extractor struct {
	ctx     context.Context
	root    *os.Root
	lim     Limits
	entries int
	total   int64
	files   map[string]bool // regular files extracted, the only valid hard link targets
	links   []string        // symlinks created, re-checked once the tree is complete
}

func newExtractor(ctx context.Context, dest string, lim Limits) (*extractor, error) {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, fmt.Errorf("extract: open destination: %w", err)
	}
	return &extractor{ctx: ctx, root: root, lim: lim.withDefaults(), files: map[string]bool{}}, nil
}

// finish re-checks every symlink against the finished tree. A link checked
// on creation can still escape once later entries exist (a link through
// "s/.." where s is later made a symlink to "."), so escaping links are
// removed here even when extraction already failed.
func (x *extractor) finish(err error) error {
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range x.links {
		target, rerr := x.root.Readlink(l)
		if rerr != nil {
			continue // replaced or never fully created; nothing to re-check
		}
		if reason := x.linkEscapes(path.Dir(l), target); reason != "" {
			if rmErr := x.root.Remove(l); rmErr != nil {
				errs = append(errs, fmt.Errorf("remove escaping symlink %q: %w", l, rmErr))
			}
			if err == nil {
				errs = append(errs, unsafeEntry(l, "%s", reason))
			}
		}
	}
	if cerr := x.root.Close(); cerr != nil {
		errs = append(errs, fmt.Errorf("close destination: %w", cerr))
	}
	return errors.Join(errs...)
}

func (x *extractor) countEntry(name string) error {
	x.entries++
	if x.entries > x.lim.MaxEntries {
		return unsafeEntry(name, "more than %d entries", x.lim.MaxEntries)
	}
	return nil
}

// cleanName turns an archive entry name into a path relative to dest, or
// explains why it cannot be one.
func cleanName(name string) (string, string) {
	switch {
	case name == "":
		return "", "empty name"
	case strings.ContainsRune(name, 0):
		return "", "NUL byte in name"
	case strings.Contains(name, `\`):
		// Legal in a Unix file name, but archives made on Windows use it
		// as a separator, and "..\\" must not become a traversal there.
		return "", "backslash in name"
	case strings.HasPrefix(name, "/"):
		return "", "absolute path"
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", "parent directory (..) component"
		}
	}
	p := path.Clean(name)
	if p != "." && !filepath.IsLocal(p) {
		return "", "not a local path"
	}
	return p, ""
}

func (x *extractor) name(name string) (string, error) {
	p, reason := cleanName(name)
	if reason != "" {
		return "", unsafeEntry(name, "%s", reason)
	}
	return p, nil
}

// entryName is x.name of an entry of kind (file, symlink, hard link) that
// may not name the destination itself.
func (x *extractor) entryName(entry, kind string) (string, error) {
	name, err := x.name(entry)
	if err == nil && name == "." {
		return "", unsafeEntry(entry, "%s entry names the destination itself", kind)
	}
	return name, err
}

// mkParents creates the directories above name. An existing symlink on the
// way is refused rather than followed: writing through a link the archive
// planted is how a duplicate entry overwrites something it should not.
func (x *extractor) mkParents(entry, name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(dir, "/") {
		cur = path.Join(cur, c)
		fi, err := x.root.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			if err := x.root.Mkdir(cur, 0o755); err != nil {
				return fmt.Errorf("extract %q: %w", entry, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("extract %q: %w", entry, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return unsafeEntry(entry, "path goes through symlink %q", cur)
		}
		if !fi.IsDir() {
			return unsafeEntry(entry, "parent %q is not a directory", cur)
		}
	}
	return nil
}

func (x *extractor) dir(entry string, mode fs.FileMode) error {
	name, err := x.name(entry)
	if err != nil || name == "." {
		return err
	}
	if err := x.mkParents(entry, name); err != nil {
		return err
	}
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(name, 0o700); err != nil {
			return fmt.Errorf("extract %q: %w", entry, err)
		}
	case err != nil:
		return fmt.Errorf("extract %q: %w", entry, err)
	case !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0:
		return unsafeEntry(entry, "directory entry collides with an earlier non-directory entry")
	}
	// The owner always keeps full access so later entries can be written
	// into the directory and the caller can delete the tree.
	perm := mode&fs.ModePerm | 0o700
	if mode&fs.ModePerm == 0 {
		perm = 0o755
	}
	if err := x.root.Chmod(name, perm); err != nil {
		return fmt.Errorf("extract %q: %w", entry, err)
	}
	return nil
}

func (x *extractor) file(entry string, mode fs.FileMode, r io.Reader, declared int64) error {
	name, err := x.entryName(entry, "file")
	if err != nil {
		return err
	}
	// Header sizes give an early, cheap refusal; the real limit is enforced
	// on the bytes copied below, since headers can lie.
	if declared > x.lim.MaxFileBytes {
		return unsafeEntry(entry, "declares %d bytes, more than the per-file limit of %d", declared, x.lim.MaxFileBytes)
	}
	if declared > x.lim.MaxBytes-x.total {
		return unsafeEntry(entry, "declares %d bytes, which would exceed the total limit of %d", declared, x.lim.MaxBytes)
	}
	if err := x.mkParents(entry, name); err != nil {
		return err
	}
	// O_EXCL refuses duplicates, including an earlier symlink by this name
	// (dangling or not), which O_CREAT alone would follow.
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return unsafeEntry(entry, "duplicate entry")
	}
	if err != nil {
		return fmt.Errorf("extract %q: %w", entry, err)
	}
	allowed := min(x.lim.MaxFileBytes, x.lim.MaxBytes-x.total)
	n, err := copyBuffered(f, io.LimitReader(ctxReader{x.ctx, r}, allowed+1))
	x.total += n
	if err == nil && n > allowed {
		err = unsafeEntry(entry, "content exceeds the size limit (%d bytes per file, %d in total)", x.lim.MaxFileBytes, x.lim.MaxBytes)
	}
	if err == nil {
		// Only the permission bits: setuid, setgid and sticky bits from an
		// archive are never honoured. The owner can always read and write
		// so the tree can be processed and cleaned up.
		err = f.Chmod(mode&fs.ModePerm | 0o600)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		var ue *UnsafeError
		if errors.As(err, &ue) {
			return err
		}
		return fmt.Errorf("extract %q: %w", entry, err)
	}
	x.files[name] = true
	return nil
}

func (x *extractor) symlink(entry, target string) error {
	name, err := x.entryName(entry, "symlink")
	if err != nil {
		return err
	}
	if strings.ContainsRune(target, 0) {
		return unsafeEntry(entry, "NUL byte in symlink target")
	}
	if reason := x.linkEscapes(path.Dir(name), target); reason != "" {
		return unsafeEntry(entry, "%s", reason)
	}
	if err := x.mkParents(entry, name); err != nil {
		return err
	}
	if err := x.root.Symlink(target, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return unsafeEntry(entry, "duplicate entry")
		}
		return fmt.Errorf("extract %q: %w", entry, err)
	}
	x.links = append(x.links, name)
	return nil
}

func (x *extractor) hardlink(entry, linkname string) error {
	name, err := x.entryName(entry, "hard link")
	if err != nil {
		return err
	}
	target, reason := cleanName(linkname)
	if reason != "" {
		return unsafeEntry(entry, "hard link target %q: %s", linkname, reason)
	}
	// Only a file this extraction wrote is known to be inside dest and to
	// be a plain file; anything else could alias a file outside.
	if !x.files[target] {
		return unsafeEntry(entry, "hard link target %q is not an earlier regular file in the archive", linkname)
	}
	if err := x.mkParents(entry, name); err != nil {
		return err
	}
	if err := x.root.Link(target, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return unsafeEntry(entry, "duplicate entry")
		}
		return fmt.Errorf("extract %q: %w", entry, err)
	}
	x.files[name] = true
	return nil
}

// linkEscapes explains why a symlink in dir with the given target would lead
// outside root, or returns "" if it stays inside.
func (x *extractor) linkEscapes(dir, target string) string {
	return symlinkEscapes(x.root, dir, target)
}

// symlinkEscapes resolves target from dir (both relative to root) the way
// the kernel would, following symlinks already in root, and explains why the
// result would leave root, or returns "". A purely lexical check is not
// enough: "s/../x" escapes when s is a link to ".". Components that do not
// exist yet are resolved lexically.
func symlinkEscapes(root *os.Root, dir, target string) string {
	if target == "" {
		return "empty symlink target"
	}
	if strings.HasPrefix(target, "/") {
		return fmt.Sprintf("symlink target %q is absolute", target)
	}
	var stack []string
	if dir != "." && dir != "" {
		stack = strings.Split(dir, "/")
	}
	pending := strings.Split(target, "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return fmt.Sprintf("symlink target %q leads outside the destination", target)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		cur := strings.Join(stack, "/")
		fi, err := root.Lstat(cur)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		hops++
		if hops > maxLinkHops {
			return fmt.Sprintf("symlink target %q: too many levels of symlinks", target)
		}
		next, err := root.Readlink(cur)
		if err != nil {
			return fmt.Sprintf("symlink target %q: read link %q: %v", target, cur, err)
		}
		if next == "" || strings.HasPrefix(next, "/") {
			return fmt.Sprintf("symlink target %q leads through %q, which is absolute or empty", target, cur)
		}
		stack = stack[:len(stack)-1]
		pending = append(strings.Split(next, "/"), pending...)
	}
	return ""
}
