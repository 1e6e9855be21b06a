// Package secretfile reads and writes the files that hold relman's secrets:
// the gateway's signing secret, the builders' build-record key, payload
// encryption keys, API tokens and the codec-server's token. Every such file
// relman writes is readable by its owner only (0600), and reading one that
// the group or others may read warns, naming the file and the chmod that
// fixes it: a secret others can read is no secret, but refusing to start
// over it would take a release system down for a file mode.
package secretfile

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Mode is the mode of every secret file relman writes.
const Mode fs.FileMode = 0o600

// Warning is the sentence to log about a secret file with mode m, or ""
// when only its owner may read it.
func Warning(path string, m fs.FileMode) string {
	if m.Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("secret file %s can be read by group or others (mode %04o); run chmod 600 %s", path, m.Perm(), path)
}

// Read reads the secret file at path. When group or others may read it,
// warn (if not nil) gets the sentence saying so.
func Read(path string, warn func(string)) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if w := Warning(path, st.Mode()); w != "" && warn != nil {
		warn(w)
	}
	return io.ReadAll(f)
}

// Check warns (through warn) when group or others may read the secret
// file at path: for files another library reads (TLS keys), and for files
// read often where one warning at start is enough (the users file). A
// file that is not there is left for its reader to report.
func Check(path string, warn func(string)) {
	if path == "" || warn == nil {
		return
	}
	if st, err := os.Stat(path); err == nil {
		if w := Warning(path, st.Mode()); w != "" {
			warn(w)
		}
	}
}

// LoadOrCreate reads the secret at path, or on first use makes one of size
// random bytes there (0600, its directory 0700). Processes that race to
// make it end up sharing the one that was written first.
func LoadOrCreate(path string, size int, warn func(string)) ([]byte, error) {
	b, err := Read(path, warn)
	if err == nil {
		if len(b) < size {
			return nil, fmt.Errorf("secret file %s holds fewer than %d bytes; remove it to have a new one made", path, size)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, Mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreate(path, size, warn)
		}
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return b, f.Close()
}

// Write writes data to path, readable by its owner only, through a rename
// so a crash never leaves half a secret.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(Mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Protect makes f readable by its owner only when it is a regular file:
// `relman codec-key k1 > payload.keys` then leaves a 0600 file whatever the
// shell's umask. A terminal or a pipe is left as it is.
func Protect(f *os.File) error {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if err := f.Chmod(Mode); err != nil {
		return fmt.Errorf("make %s readable by its owner only: %w", f.Name(), err)
	}
	return nil
}
