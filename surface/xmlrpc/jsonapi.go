package xmlrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The JSON API: the gateway's methods over JSON, on the same listener, with
// the same authentication, policy, throttling and TLS as XML-RPC. A call is
//
//	POST /api/v1/<method>
//	{"params": [<the method's XML-RPC params, credentials first>]}
//
// and its answer {"result": ...}, or {"fault": {"code": N, "message": "..."}}
// with an HTTP status that fits the fault (httpStatus). Credentials travel
// in the params exactly as over XML-RPC ({token} or {username, password},
// with realm and role), so one method's documentation serves both.

// APIPrefix is the path the JSON API's methods are served under.
const APIPrefix = "/api/v1/"

// jsonRequest is a JSON call's body.
type jsonRequest struct {
	Params []any `json:"params"`
}

// JSONFault is a fault as the JSON API answers it.
type JSONFault struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// JSONResponse is the JSON API's answer: Result, or Fault.
type JSONResponse struct {
	Result json.RawMessage `json:"result,omitempty"`
	Fault  *JSONFault      `json:"fault,omitempty"`
}

// serveJSON answers one JSON call: the method is the path after APIPrefix.
func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	method := strings.TrimPrefix(r.URL.Path, APIPrefix)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONFault(w, http.StatusMethodNotAllowed, Faultf(CodeInvalidRequest, "the JSON API takes POST %s<method> with a body {\"params\": [...]}", APIPrefix))
		return
	}
	max := s.MaxBody
	if max <= 0 {
		max = DefaultMaxBody
	}
	body := &cappedReader{r: r.Body, left: max}
	params, err := decodeJSONParams(body)
	if body.over {
		err = Faultf(CodeInvalidRequest, "request body is larger than %d bytes", max)
		if n, _ := io.CopyN(io.Discard, r.Body, drainLimit); n == drainLimit {
			w.Header().Set("Connection", "close")
		}
	}
	var result any
	if err == nil {
		if method == "" {
			err = Faultf(CodeMethodNotFound, "name the method in the path: POST %s<method>; see system.listMethods", APIPrefix)
		} else {
			result, err = s.call(withRemote(r.Context(), r.RemoteAddr), &Call{Method: method, Params: params})
		}
	}
	var out []byte
	if err == nil {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if eerr := enc.Encode(result); eerr != nil {
			s.Log.Error("json api encode", "method", clip(method), "err", eerr)
			err = Faultf(CodeInternalError, "the answer could not be encoded")
		} else {
			out, _ = json.Marshal(JSONResponse{Result: bytes.TrimSpace(b.Bytes())})
		}
	}
	code, status := 0, http.StatusOK
	if err != nil {
		var f *Fault
		if !errors.As(err, &f) {
			f = &Fault{Code: CodeInternal, Message: err.Error()}
		}
		code, status = f.Code, httpStatus(f.Code)
		out, _ = json.Marshal(JSONResponse{Fault: &JSONFault{Code: f.Code, Message: f.Message}})
	}
	s.Log.Info("json api call", "method", clip(method), "fault", code, "took", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	writeJSON(w, status, out)
}

func writeJSONFault(w http.ResponseWriter, status int, f *Fault) {
	out, _ := json.Marshal(JSONResponse{Fault: &JSONFault{Code: f.Code, Message: f.Message}})
	writeJSON(w, status, out)
}

func writeJSON(w http.ResponseWriter, status int, out []byte) {
	out = append(out, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// httpStatus is the HTTP status of a JSON answer holding the fault code.
func httpStatus(code int) int {
	switch code {
	case CodeCredentialsRejected:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnknownProject, CodeUnknownTransaction, CodeMethodNotFound:
		return http.StatusNotFound
	case CodeBadRequest, CodeInvalidParams, CodeInvalidRequest, CodeParseError, CodeUnsupportedEncoding:
		return http.StatusBadRequest
	case CodeDecisionRefused, CodeCancelRefused:
		return http.StatusConflict
	case CodeThrottled:
		return http.StatusTooManyRequests
	case CodeInternal:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// decodeJSONParams reads {"params": [...]} (an empty body: no params) and
// turns its values into what the methods get from XML-RPC: whole numbers
// become int, other numbers float64, objects map[string]any, arrays []any.
func decodeJSONParams(r io.Reader) ([]any, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		// The capped reader's error: the caller reports the size.
		return nil, Faultf(CodeInvalidRequest, "could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return []any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var req jsonRequest
	if err := dec.Decode(&req); err != nil {
		return nil, Faultf(CodeParseError, "the body is not a JSON object {\"params\": [...]}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Faultf(CodeParseError, "the body has more after its JSON object; send one {\"params\": [...]}")
	}
	if req.Params == nil {
		return []any{}, nil
	}
	for i, p := range req.Params {
		v, err := fromJSON(p, 1)
		if err != nil {
			return nil, err
		}
		req.Params[i] = v
	}
	return req.Params, nil
}

// fromJSON converts one decoded JSON value, nested at depth.
func fromJSON(v any, depth int) (any, error) {
	switch t := v.(type) {
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return int(n), nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, Faultf(CodeInvalidRequest, "%s is not a number this server can read", clip(t.String()))
		}
		if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
			return int(f), nil
		}
		return f, nil
	case []any:
		if err := fromJSONEach(depth, slices.All(t), func(i int, c any) { t[i] = c }); err != nil {
			return nil, err
		}
		return t, nil
	case map[string]any:
		if err := fromJSONEach(depth, maps.All(t), func(k string, c any) { t[k] = c }); err != nil {
			return nil, err
		}
		return t, nil
	}
	return v, nil
}

// fromJSONEach converts every element of an array or object nested at
// depth, setting each converted one back in place; past MaxDepth it
// refuses the request.
func fromJSONEach[K comparable](depth int, all iter.Seq2[K, any], set func(K, any)) error {
	if depth > MaxDepth {
		return Faultf(CodeInvalidRequest, "arrays and objects nest deeper than %d levels", MaxDepth)
	}
	for k, e := range all {
		c, err := fromJSON(e, depth+1)
		if err != nil {
			return err
		}
		set(k, c)
	}
	return nil
}
