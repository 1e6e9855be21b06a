package workers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/relman/relman/config"
)

// status is what /livez and /readyz answer. A role is ready once its
// workers poll their queues and, for builders and hosts, its registration
// holds; it stops being ready while its registration cannot be renewed or
// its artifact store is not usable.
type status struct {
	mu   sync.Mutex
	ok   bool
	why  string
	once bool
	url  string
	// store says why the artifact store is not usable; empty when it is.
	store string
}

// setReady marks the role ready and reports whether it is the first time.
func (s *status) setReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ok, s.why = true, ""
	first := !s.once
	s.once = true
	return first
}

func (s *status) notReady(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ok, s.why = false, why
}

func (s *status) storeBroken(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store = why
}

func (s *status) storeOK() { s.storeBroken("") }

func (s *status) get() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.store != "":
		return false, s.store
	case !s.ok && s.why == "":
		return false, "starting"
	}
	return s.ok, s.why
}

// serveStatus answers GET /livez (the process serves) and GET /readyz (200
// when ready, else 503 saying why) on addr, for supervisors and probes.
func (r *role) serveStatus(addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status_address %s: %w", addr, err)
	}
	r.status.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := r.status.get()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, why)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: config.DefaultStatusReadHeaderTimeout}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Warn("status server stopped", "error", err)
		}
	}()
	r.log.Info("status served", "url", r.status.url)
	if r.opts.StatusURL != nil {
		r.opts.StatusURL(r.status.url)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), config.DefaultStatusStopTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
