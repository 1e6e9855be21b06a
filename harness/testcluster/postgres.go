package testcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Postgres is a PostgreSQL server of its own: its own data directory, its
// own port on 127.0.0.1, run from Debian's binaries without touching the
// system's clusters.
type Postgres struct {
	Port     int
	User     string
	Password string

	bindir string
	// home holds the data directory, the password file and the socket; it
	// is separate from the cluster's directory because PostgreSQL refuses
	// to run as root, and the user it runs as must be able to reach it.
	home string
	cred *syscall.Credential
	proc *process
}

// postgresBinDir finds the directory of initdb and postgres:
// $RELMAN_PG_BINDIR, then the newest /usr/lib/postgresql/*/bin (Debian keeps
// them off PATH), then PATH.
func postgresBinDir() (string, error) {
	if d := os.Getenv("RELMAN_PG_BINDIR"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL's initdb not found: run `make prereqs-cluster` (Debian's postgresql package) or set RELMAN_PG_BINDIR")
}

// postgresCredential is the user to run PostgreSQL as: nobody else when we
// are not root, else the postgres user the Debian package creates.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user: install Debian's postgresql package (make prereqs-cluster): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// StartPostgres initialises a new database cluster with one superuser and
// starts it on a free port below 32768; its log is logPath.
func StartPostgres(ctx context.Context, logPath string) (*Postgres, error) {
	bindir, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	port, err := lowPort()
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "relman-postgres-")
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Port: port, User: "temporal", Password: "temporal-test", bindir: bindir, home: home, cred: cred}
	if err := pg.init(ctx, logPath); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	pg.proc = &process{name: "postgres", log: logPath, newCmd: func() *exec.Cmd {
		cmd := exec.Command(filepath.Join(bindir, "postgres"),
			"-D", pg.dataDir(),
			"-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories="+home,
			// Four Temporal services with 20 connections each, the sql
			// tool and the tests' own checks: more than the default 100.
			"-c", "max_connections=300",
		)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd
	}}
	if err := pg.Start(ctx); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	return pg, nil
}

func (pg *Postgres) dataDir() string { return filepath.Join(pg.home, "data") }

// Address is host:port of the server.
func (pg *Postgres) Address() string { return "127.0.0.1:" + strconv.Itoa(pg.Port) }

func (pg *Postgres) init(ctx context.Context, logPath string) error {
	pwfile := filepath.Join(pg.home, "pwfile")
	if err := os.WriteFile(pwfile, []byte(pg.Password+"\n"), 0o600); err != nil {
		return err
	}
	if pg.cred != nil {
		for _, p := range []string{pg.home, pwfile} {
			if err := os.Chown(p, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
				return err
			}
		}
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(pg.bindir, "initdb"),
		"-D", pg.dataDir(),
		"-U", pg.User,
		"--pwfile", pwfile,
		"--auth", "scram-sha-256",
		"--encoding", "UTF8",
		"--no-instructions",
	)
	cmd.Dir = pg.home
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb failed (%v); see %s", err, logPath)
	}
	return nil
}

// Start runs the server (again) and waits until it accepts connections.
func (pg *Postgres) Start(ctx context.Context) error {
	if err := pg.proc.start(); err != nil {
		return err
	}
	for {
		cmd := exec.CommandContext(ctx, filepath.Join(pg.bindir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port))
		if cmd.Run() == nil {
			return nil
		}
		select {
		case <-pg.proc.exited():
			return fmt.Errorf("postgres exited at start (%v); see %s", pg.proc.exitError(), pg.proc.log)
		case <-ctx.Done():
			pg.proc.kill()
			return fmt.Errorf("postgres on %s not ready: %w; see %s", pg.Address(), ctx.Err(), pg.proc.log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop shuts the server down (fast mode: SIGINT) and removes its files.
func (pg *Postgres) Stop() error {
	err := pg.proc.stop(syscall.SIGINT, 30*time.Second)
	if rerr := os.RemoveAll(pg.home); rerr != nil && err == nil {
		err = rerr
	}
	return err
}
