package xmlrpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relman/relman/config"
)

// Fault codes. Positive codes are relman's own; negative ones are those of
// the XML-RPC fault code interoperability spec
// (xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php).
const (
	// CodeUnknownProject: request_action named a project the manager's
	// config does not define.
	CodeUnknownProject = 1
	// CodeUnknownTransaction: no transaction has the id.
	CodeUnknownTransaction = 2
	// CodeCredentialsRejected: the credentials are not acceptable.
	CodeCredentialsRejected = 3
	// CodeBadRequest: request_data is wrong: an unknown key, a key of the
	// wrong type, a bad action, an install with no env, several source
	// selectors.
	CodeBadRequest = 4
	// CodeInternal: relman could not do what was asked (Temporal is
	// unreachable, say); retrying later may work.
	CodeInternal = 5
	// CodeForbidden: the user is known but the manager's policy does not
	// allow what they asked.
	CodeForbidden = 6

	// CodeParseError: the body is not well-formed XML.
	CodeParseError = -32700
	// CodeUnsupportedEncoding: the body declares an encoding other than
	// UTF-8, US-ASCII or ISO-8859-1.
	CodeUnsupportedEncoding = -32701
	// CodeInvalidRequest: well-formed XML that is not an XML-RPC call
	// (unknown type tag, bad scalar, nesting past MaxDepth, body too large).
	CodeInvalidRequest = -32600
	// CodeMethodNotFound: no such method.
	CodeMethodNotFound = -32601
	// CodeInvalidParams: the call's params have the wrong number or
	// XML-RPC types for the method.
	CodeInvalidParams = -32602
	// CodeInternalError: the server failed while answering (a bug).
	CodeInternalError = -32603
)

// Fault is an XML-RPC fault: a method's error as clients see it.
type Fault struct {
	Code    int
	Message string
}

func (f *Fault) Error() string { return fmt.Sprintf("fault %d: %s", f.Code, f.Message) }

// Faultf makes a fault.
func Faultf(code int, format string, args ...any) *Fault {
	return &Fault{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Method is one callable method. Func gets the decoded params; an error
// that is not a *Fault is sent as CodeInternal with its text.
type Method struct {
	Func func(ctx context.Context, params []any) (any, error)
	// Help is system.methodHelp's answer.
	Help string
	// Signatures are system.methodSignature's answer: each lists the
	// return type, then the param types, in XML-RPC type names.
	Signatures [][]string
}

// DefaultMaxBody caps a request body.
const DefaultMaxBody = 1 << 20

// drainLimit bounds how much of an oversized body is read and discarded.
const drainLimit = 8 << 20

// DefaultCallTimeout bounds one method call.
const DefaultCallTimeout = config.DefaultGatewayCallTimeout

// Server answers XML-RPC calls over HTTP POST on "/" and "/RPC2" (Python's
// ServerProxy posts to /RPC2 when the URL has no path). It offers
// system.listMethods, system.methodHelp and system.methodSignature as
// Python's SimpleXMLRPCServer does.
type Server struct {
	// MaxBody caps a request body; larger bodies get a CodeInvalidRequest
	// fault. Zero means DefaultMaxBody.
	MaxBody int64
	// CallTimeout bounds one method call. Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// Log records each call's method, duration and fault code, never its
	// params (they hold credentials). Nil discards.
	Log *slog.Logger

	mu      sync.RWMutex
	methods map[string]Method
}

// NewServer returns a server with only the system.* methods.
func NewServer(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{Log: log, methods: map[string]Method{}}
	s.Register("system.listMethods", Method{
		Func:       func(context.Context, []any) (any, error) { return s.names(), nil },
		Help:       "system.listMethods() => [names]: the methods this server offers.",
		Signatures: [][]string{{"array"}},
	})
	s.Register("system.methodHelp", Method{
		Func: func(_ context.Context, ps []any) (any, error) {
			m, err := s.lookupParam(ps)
			if err != nil {
				return nil, err
			}
			return m.Help, nil
		},
		Help:       "system.methodHelp(name) => text: what the method does and takes.",
		Signatures: [][]string{{"string", "string"}},
	})
	s.Register("system.methodSignature", Method{
		Func: func(_ context.Context, ps []any) (any, error) {
			m, err := s.lookupParam(ps)
			if err != nil {
				return nil, err
			}
			if len(m.Signatures) == 0 {
				return "signatures not supported", nil
			}
			return m.Signatures, nil
		},
		Help:       "system.methodSignature(name) => [[return type, param types...]]: the method's signatures.",
		Signatures: [][]string{{"array", "string"}},
	})
	s.Register("system.multicall", Method{
		Func: s.multicall,
		Help: `system.multicall([{methodName, params}, ...]) => [[result] or {faultCode, faultString}, ...].
Several calls in one request (Python's xmlrpc.client.MultiCall), run in
order; each answer is its result in a one-element array, or its fault as a
struct, and a fault does not stop the calls after it. At most 100 calls;
system.multicall cannot call itself.`,
		Signatures: [][]string{{"array", "array"}},
	})
	return s
}

// MaxMulticall caps the calls of one system.multicall: they share one
// call's timeout.
const MaxMulticall = 100

// multicall runs each call of a system.multicall in order, as the spec
// (xmlrpc-c's system.multicall, which Python's MultiCall speaks) has it.
func (s *Server) multicall(ctx context.Context, ps []any) (any, error) {
	if len(ps) != 1 {
		return nil, Faultf(CodeInvalidParams, "system.multicall takes one param, an array of {methodName, params} structs; got %d params", len(ps))
	}
	calls, ok := ps[0].([]any)
	if !ok {
		return nil, Faultf(CodeInvalidParams, "system.multicall takes an array of {methodName, params} structs, not %s", TypeName(ps[0]))
	}
	if len(calls) > MaxMulticall {
		return nil, Faultf(CodeInvalidParams, "system.multicall got %d calls; send at most %d in one request", len(calls), MaxMulticall)
	}
	out := make([]any, len(calls))
	for i, c := range calls {
		res, err := s.subcall(ctx, i, c)
		if err != nil {
			var f *Fault
			if !errors.As(err, &f) {
				f = &Fault{Code: CodeInternal, Message: err.Error()}
			}
			out[i] = map[string]any{"faultCode": f.Code, "faultString": f.Message}
			continue
		}
		out[i] = []any{res}
	}
	return out, nil
}

// subcall runs call i of a system.multicall.
func (s *Server) subcall(ctx context.Context, i int, c any) (any, error) {
	m, ok := c.(map[string]any)
	if !ok {
		return nil, Faultf(CodeInvalidParams, "call %d of system.multicall must be a {methodName, params} struct, not %s", i, TypeName(c))
	}
	name, ok := m["methodName"].(string)
	if !ok || name == "" {
		return nil, Faultf(CodeInvalidParams, "call %d of system.multicall needs methodName, a string", i)
	}
	params := []any{}
	if p, present := m["params"]; present {
		if params, ok = p.([]any); !ok {
			return nil, Faultf(CodeInvalidParams, "params of call %d (%s) of system.multicall must be an array, not %s", i, clip(name), TypeName(p))
		}
	}
	if name == "system.multicall" {
		return nil, Faultf(CodeInvalidParams, "call %d: system.multicall cannot call itself", i)
	}
	start := time.Now()
	res, err := s.invoke(ctx, &Call{Method: name, Params: params})
	code := 0
	var f *Fault
	if errors.As(err, &f) {
		code = f.Code
	} else if err != nil {
		code = CodeInternal
	}
	s.Log.Info("xml-rpc call", "method", clip(name), "in", "system.multicall", "fault", code, "took", time.Since(start).Round(time.Microsecond))
	return res, err
}

// Register adds or replaces a method.
func (s *Server) Register(name string, m Method) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.methods[name] = m
}

func (s *Server) names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.methods))
	for n := range s.methods {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (s *Server) lookup(name string) (Method, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.methods[name]
	return m, ok
}

func (s *Server) lookupParam(ps []any) (Method, error) {
	if len(ps) != 1 {
		return Method{}, Faultf(CodeInvalidParams, "takes one param, the method name; got %d", len(ps))
	}
	name, ok := ps[0].(string)
	if !ok {
		return Method{}, Faultf(CodeInvalidParams, "the method name must be a string, not %s", TypeName(ps[0]))
	}
	m, ok := s.lookup(name)
	if !ok {
		return Method{}, Faultf(CodeMethodNotFound, "method %q is not supported; see system.listMethods", clip(name))
	}
	return m, nil
}

// ServeHTTP answers one call: XML-RPC on / and /RPC2, JSON on APIPrefix
// (jsonapi.go). Every problem with the body is a fault in an
// HTTP 200 response, as XML-RPC clients expect; only the wrong HTTP method
// or path gets an HTTP error.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, APIPrefix) {
		s.serveJSON(w, r)
		return
	}
	if r.URL.Path != "/" && r.URL.Path != "/RPC2" {
		http.Error(w, "XML-RPC is served on / and /RPC2, the JSON API on "+APIPrefix+"<method>", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "XML-RPC takes POST", http.StatusMethodNotAllowed)
		return
	}
	max := s.MaxBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	body := &cappedReader{r: r.Body, left: max}
	start := time.Now()
	call, err := DecodeCall(body)
	var result any
	method := ""
	if body.over {
		err = Faultf(CodeInvalidRequest, "request body is larger than %d bytes", max)
		// Clients send the whole body before they read the answer: discard
		// a bounded rest so they get the fault, not a reset connection.
		if n, _ := io.CopyN(io.Discard, r.Body, drainLimit); n == drainLimit {
			w.Header().Set("Connection", "close")
		}
	}
	if err == nil {
		method = call.Method
		result, err = s.call(withRemote(r.Context(), r.RemoteAddr), call)
	}
	var buf bytes.Buffer
	if err == nil {
		if eerr := EncodeResponse(&buf, result); eerr != nil {
			s.Log.Error("xml-rpc encode", "method", method, "err", eerr)
			err = Faultf(CodeInternalError, "the answer could not be encoded")
			buf.Reset()
		}
	}
	code := 0
	if err != nil {
		var f *Fault
		if !errors.As(err, &f) {
			f = &Fault{Code: CodeInternal, Message: err.Error()}
		}
		code = f.Code
		_ = EncodeFault(&buf, f)
	}
	s.Log.Info("xml-rpc call", "method", clip(method), "fault", code, "took", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

// call runs one method within the call timeout.
func (s *Server) call(ctx context.Context, c *Call) (any, error) {
	timeout := s.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.invoke(ctx, c)
}

// invoke runs one method, turning a panic into a fault so one bad call
// never takes the manager down.
func (s *Server) invoke(ctx context.Context, c *Call) (result any, err error) {
	m, ok := s.lookup(c.Method)
	if !ok {
		return nil, Faultf(CodeMethodNotFound, "method %q is not supported; see system.listMethods", clip(c.Method))
	}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("xml-rpc method panicked", "method", c.Method, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, Faultf(CodeInternalError, "%s failed inside the server; see the manager's log", c.Method)
		}
	}()
	result, err = m.Func(ctx, c.Params)
	if err != nil && errors.Is(context.Cause(ctx), ErrStopping) {
		return nil, Faultf(CodeInternal, "%s was cut short: the server is stopping; try again in a moment", c.Method)
	}
	return result, err
}

// cappedReader reads at most left bytes and notes when the body has more.
type cappedReader struct {
	r    io.Reader
	left int64
	over bool
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// One byte more tells a body of exactly the cap from a larger one.
		var one [1]byte
		n, _ := c.r.Read(one[:])
		if n > 0 {
			c.over = true
			return 0, errors.New("request body too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// TypeName names a decoded value's XML-RPC type, for fault messages.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "boolean"
	case int:
		return "int"
	case int64:
		return "i8"
	case float64:
		return "double"
	case string:
		return "string"
	case time.Time:
		return "dateTime.iso8601"
	case []byte:
		return "base64"
	case []any:
		return "array"
	case map[string]any:
		return "struct"
	}
	return fmt.Sprintf("%T", v)
}

// HTTP server timeouts: a slow or stuck client cannot hold a connection.
const (
	readHeaderTimeout = config.DefaultGatewayReadHeaderTimeout
	readTimeout       = config.DefaultGatewayReadTimeout
	writeTimeout      = DefaultCallTimeout + config.DefaultGatewayWriteSlack
	idleTimeout       = config.DefaultGatewayIdleTimeout
	shutdownTimeout   = config.DefaultGatewayShutdownTimeout
	// closeGrace is how long calls in flight at Close may go on before
	// their contexts end: a call waiting on an unreachable Temporal would
	// otherwise hold a stopping manager for shutdownTimeout.
	closeGrace = config.DefaultGatewayCloseGrace
)

// ErrStopping is the cause of the end of a call's context when its server
// closes under it.
var ErrStopping = errors.New("the server is stopping")

// Listener is a running HTTP server for an XML-RPC handler.
type Listener struct {
	srv  *http.Server
	ln   net.Listener
	tls  bool
	done chan error
	once sync.Once
	err  error
	// stopCalls ends the contexts of the calls in flight.
	stopCalls context.CancelCauseFunc
}

// Listen opens addr (host:port; port 0 picks a free one) and serves h on it
// until Close: HTTPS when tc is set, else plain HTTP.
func Listen(addr string, h http.Handler, log *slog.Logger, tc *tls.Config) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("xml-rpc gateway on %s: %w", addr, err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	calls, stopCalls := context.WithCancelCause(context.Background())
	l := &Listener{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			BaseContext:       func(net.Listener) context.Context { return calls },
		},
		ln:        ln,
		tls:       tc != nil,
		done:      make(chan error, 1),
		stopCalls: stopCalls,
	}
	go func() {
		err := l.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		l.done <- err
	}()
	return l, nil
}

// Addr is the address the listener serves on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// URL is the address as a client's URL.
func (l *Listener) URL() string {
	scheme := "http://"
	if l.tls {
		scheme = "https://"
	}
	return scheme + l.ln.Addr().String() + "/"
}

// Done reports the server stopping on its own.
func (l *Listener) Done() <-chan error { return l.done }

// Close stops accepting calls and lets running ones finish for a moment
// (closeGrace); then their contexts end, so each answers at once (a fault
// saying the server is stopping) and Close returns.
func (l *Listener) Close() error {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		t := time.AfterFunc(closeGrace, func() { l.stopCalls(ErrStopping) })
		defer t.Stop()
		defer l.stopCalls(ErrStopping)
		if err := l.srv.Shutdown(ctx); err != nil {
			_ = l.srv.Close()
			l.err = err
		}
	})
	return l.err
}
