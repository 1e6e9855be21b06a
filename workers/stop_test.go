package workers_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relman/relman/config"
	"github.com/relman/relman/internal/devserver"
	"github.com/relman/relman/workers"
)

// stopBound is a generous bound on a role's stop (the aim is well under a
// second): far enough above it that a loaded machine does not fail the
// test, far enough below the seconds a stop took when it waited on
// Temporal.
const stopBound = 5 * time.Second

// gone is how long Temporal is away before the stop.
const gone = 3 * time.Second

// stopIn cancels the role's context and returns how long Run took to end.
func stopIn(t *testing.T, cancel context.CancelFunc, done <-chan error) time.Duration {
	t.Helper()
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the role did not stop within a minute")
	}
	return time.Since(start)
}

// TestStopWhenTemporalIsGone: a manager and an installer that served, then
// lost Temporal, stop promptly at the end of their context; and so does a
// role that never reached Temporal.
func TestStopWhenTemporalIsGone(t *testing.T) {
	bin, err := devserver.Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	port, err := devserver.FreePort()
	require.NoError(t, err)
	address := "127.0.0.1:" + strconv.Itoa(port)

	t.Run("never there", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		statusURL := make(chan string, 1)
		done := make(chan error, 1)
		go func() {
			done <- workers.Run(ctx, installerConfig(t, address, "unarchive"), workers.Options{Stderr: io.Discard, StatusURL: func(u string) { statusURL <- u }})
		}()
		<-statusURL
		time.Sleep(500 * time.Millisecond)
		took := stopIn(t, cancel, done)
		t.Logf("stopped in %s", took)
		assert.Less(t, took, stopBound)
	})

	t.Run("gone after start", func(t *testing.T) {
		s, err := devserver.Start(context.Background(), devserver.Options{Bin: bin, Port: port, LogLevel: "error"})
		require.NoError(t, err)
		defer s.Stop(20 * time.Second)
		m := &config.Manager{
			Service:       config.Service{Version: 1, Temporal: config.Temporal{Address: s.Address}},
			Gateway:       config.Gateway{Off: true},
			Auth:          config.Auth{Anonymous: true},
			OrdersKeyFile: filepath.Join(t.TempDir(), "orders.key"),
			Environments:  map[string]config.Environment{"test": {}},
			Projects:      map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
		}
		m.Default()
		mctx, mcancel := context.WithCancel(context.Background())
		defer mcancel()
		ictx, icancel := context.WithCancel(context.Background())
		defer icancel()
		ready := make(chan workers.Serving, 2)
		mdone, idone := make(chan error, 1), make(chan error, 1)
		go func() {
			mdone <- workers.Run(mctx, m, workers.Options{Stderr: io.Discard, Ready: func(s workers.Serving) { ready <- s }})
		}()
		go func() {
			idone <- workers.Run(ictx, installerConfig(t, s.Address, "unarchive"), workers.Options{Stderr: io.Discard, Ready: func(s workers.Serving) { ready <- s }})
		}()
		for range 2 {
			select {
			case <-ready:
			case <-time.After(2 * time.Minute):
				t.Fatal("the roles never became ready")
			}
		}
		require.NoError(t, s.Stop(20*time.Second))
		// Long enough for the workers' polls and the lease renewals to
		// fail and back off.
		time.Sleep(gone)
		took := stopIn(t, icancel, idone)
		t.Logf("installer stopped in %s", took)
		assert.Less(t, took, stopBound, "installer")
		took = stopIn(t, mcancel, mdone)
		t.Logf("manager stopped in %s", took)
		assert.Less(t, took, stopBound, "manager")
	})
	t.Run("partitioned", func(t *testing.T) {
		s, err := devserver.Start(context.Background(), devserver.Options{Bin: bin, Port: port, LogLevel: "error"})
		require.NoError(t, err)
		defer s.Stop(20 * time.Second)
		p := newPartition(t, s.Address)
		m := &config.Manager{
			Service:       config.Service{Version: 1, Temporal: config.Temporal{Address: p.Address()}},
			Gateway:       config.Gateway{Off: true},
			Auth:          config.Auth{Anonymous: true},
			OrdersKeyFile: filepath.Join(t.TempDir(), "orders.key"),
			Environments:  map[string]config.Environment{"test": {}},
			Projects:      map[string]config.ProjectDef{"shop": {Targets: []string{"web"}}},
		}
		m.Default()
		mctx, mcancel := context.WithCancel(context.Background())
		defer mcancel()
		ictx, icancel := context.WithCancel(context.Background())
		defer icancel()
		ready := make(chan workers.Serving, 2)
		mdone, idone := make(chan error, 1), make(chan error, 1)
		go func() {
			mdone <- workers.Run(mctx, m, workers.Options{Stderr: io.Discard, Ready: func(s workers.Serving) { ready <- s }})
		}()
		go func() {
			idone <- workers.Run(ictx, installerConfig(t, p.Address(), "unarchive"), workers.Options{Stderr: io.Discard, Ready: func(s workers.Serving) { ready <- s }})
		}()
		for range 2 {
			select {
			case <-ready:
			case <-time.After(2 * time.Minute):
				t.Fatal("the roles never became ready")
			}
		}
		// Temporal goes silent: connections stay open, nothing answers.
		p.Cut()
		time.Sleep(time.Second)
		took := stopIn(t, icancel, idone)
		t.Logf("installer stopped in %s", took)
		assert.Less(t, took, stopBound, "installer")
		took = stopIn(t, mcancel, mdone)
		t.Logf("manager stopped in %s", took)
		assert.Less(t, took, stopBound, "manager")
	})
}

// partition forwards TCP to a server until Cut; then it holds every
// connection open and forwards nothing, as a network partition does.
type partition struct {
	ln  net.Listener
	mu  sync.Mutex
	cut bool
}

func newPartition(t *testing.T, upstream string) *partition {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &partition{ln: ln}
	var held []net.Conn
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			held = append(held, c)
			cut := p.cut
			p.mu.Unlock()
			if cut {
				continue
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			held = append(held, u)
			p.mu.Unlock()
			go p.copy(u, c)
			go p.copy(c, u)
		}
	}()
	return p
}

func (p *partition) Address() string { return p.ln.Addr().String() }

// Cut stops forwarding; connections stay open.
func (p *partition) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
}

func (p *partition) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			// Swallow it, and everything after.
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}
