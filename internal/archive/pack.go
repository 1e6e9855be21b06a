package archive

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"
)

// epoch is the modification time of every packed entry. Fixed times make the
// archive a function of the tree's contents alone, so rebuilding identical
// outputs yields an identical archive and the content-addressed store keeps
// one copy.
var epoch = time.Unix(0, 0)

// WriteTarGz writes the contents of dir as a gzip'd tar to w: paths relative
// to dir in sorted order, regular files with only their permission bits,
// directories, and symlinks whose target is relative and stays inside dir.
// Any other symlink or file type is an error wrapping ErrUnsafe, since the
// archive could not be extracted faithfully and safely elsewhere.
func WriteTarGz(ctx context.Context, w io.Writer, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	defer root.Close()

	// BestSpeed: archives are transient hand-offs between build steps, read
	// once or twice and then garbage; compression sits on the critical path
	// of every build, where speed pays more than the last few percent of size.
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	tw := tar.NewWriter(zw)

	// WalkDir visits each directory's entries in lexical order and does not
	// follow symlinks, which gives the deterministic order we want.
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		return packEntry(root, tw, p, d)
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}

func packEntry(root *os.Root, tw *tar.Writer, p string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: p, ModTime: epoch, Mode: int64(info.Mode().Perm())}
	switch mode := info.Mode(); {
	case mode&fs.ModeSymlink != 0:
		target, err := root.Readlink(p)
		if err != nil {
			return err
		}
		if reason := symlinkEscapes(root, path.Dir(p), target); reason != "" {
			return unsafeEntry(p, "%s", reason)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
		hdr.Mode = 0o777
		return tw.WriteHeader(hdr)
	case mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	case mode.IsRegular():
		hdr.Typeflag = tar.TypeReg
		hdr.Size = info.Size()
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		n, err := copyBuffered(tw, io.LimitReader(f, hdr.Size))
		if err != nil {
			return err
		}
		if n != hdr.Size {
			return fmt.Errorf("%s shrank from %d to %d bytes while being packed", p, hdr.Size, n)
		}
		return nil
	default:
		return unsafeEntry(p, "unsupported file type %v", mode.Type())
	}
}
