package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// makeData writes about size bytes under dir: half random bytes (they do
// not compress) and half repetitive log-like text (compresses about 10x),
// in files of at most 16 MiB, alternating.
func makeData(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := max(4, int(size/(16<<20)))
	files += files % 2
	per := size / int64(files)
	rng := rand.New(rand.NewChaCha8([32]byte{'r', 'e', 'l', 'm', 'a', 'n'}))
	for i := range files {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%4))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		var err error
		if i%2 == 0 {
			err = writeRandom(filepath.Join(sub, fmt.Sprintf("blob-%03d.bin", i)), per, rng)
		} else {
			err = writeText(filepath.Join(sub, fmt.Sprintf("log-%03d.txt", i)), per, i)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeRandom(path string, n int64, rng *rand.Rand) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(int64(len(buf)), n)
		for i := 0; i < int(k); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < int(k); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:k]); err != nil {
			f.Close()
			return err
		}
		n -= k
	}
	return f.Close()
}

func writeText(path string, n int64, seed int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	paths := []string{"/api/v1/items", "/api/v1/users", "/static/app.js", "/healthz", "/api/v2/orders"}
	var written int64
	for i := 0; written < n; i++ {
		line := fmt.Sprintf("2025-01-%02d 12:%02d:%02d INFO req=%08d path=%s/%d status=%d took=%dms\n",
			1+i%28, (i/60)%60, i%60, seed*1000003+i, paths[i%len(paths)], i%997, 200+(i%7)*50, i%113)
		if int64(len(line)) > n-written {
			line = line[:n-written]
		}
		k, err := w.WriteString(line)
		if err != nil {
			f.Close()
			return err
		}
		written += int64(k)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// makeRepo makes the git repository every bench project builds from: the
// no-op project's one tiny target (app/) and nothing else.
func makeRepo(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "app", "index.html"), []byte("<h1>bench</h1>\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("relman bench project\n"), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.name=bench", "-c", "user.email=bench@relman.invalid", "commit", "-q", "-m", "bench"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, out)
		}
	}
	return nil
}

// machine describes where the bench ran, without this machine's paths.
type machine struct {
	CPUs     int
	Model    string
	MemTotal string
	Kernel   string
	Go       string
	Temporal string
	Load     string
	Date     string
}

func describeMachine(temporalBin string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02 15:04 MST")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	if out, err := exec.Command(temporalBin, "--version").Output(); err == nil {
		m.Temporal = strings.TrimSpace(string(out))
	}
	return m
}
