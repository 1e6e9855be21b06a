package xmlrpc

import (
	"io"
	"strings"
)

// Decoding: a call or a response read into Go values (parser.go walks
// the XML, values.go reads each value).

// MaxDepth caps how deeply arrays and structs may nest in a request, so a
// hostile body cannot exhaust the stack.
const MaxDepth = 64

// Call is a decoded methodCall. Params hold int (int, i4), int64 (i8), bool,
// string, float64, time.Time, []byte, map[string]any, []any and nil.
type Call struct {
	Method string
	Params []any
}

// DecodeCall reads one methodCall. Errors are *Fault values with the spec's
// codes (-32700 not well formed, -32701 unsupported encoding, -32600 not
// XML-RPC), ready to send back.
func DecodeCall(r io.Reader) (*Call, error) {
	p := newParser(r)
	if err := p.open("methodCall"); err != nil {
		return nil, err
	}
	if err := p.open("methodName"); err != nil {
		return nil, err
	}
	name, err := p.text()
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, invalid("methodName is empty")
	}
	c := &Call{Method: name, Params: []any{}}
	params, err := p.optionalParams("methodCall")
	if err != nil {
		return nil, err
	}
	if params {
		if c.Params, err = p.params(); err != nil {
			return nil, err
		}
		if err := p.close(); err != nil { // </methodCall>
			return nil, err
		}
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeResponse reads one methodResponse: its value, or its fault as a
// *Fault error. Clients and tests use it; the server only writes responses.
func DecodeResponse(r io.Reader) (any, error) {
	p := newParser(r)
	if err := p.open("methodResponse"); err != nil {
		return nil, err
	}
	se, err := p.child()
	if err != nil {
		return nil, err
	}
	var v any
	switch se.Name.Local {
	case "params":
		ps, err := p.params()
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, invalid("methodResponse has %d params, want 1", len(ps))
		}
		v = ps[0]
	case "fault":
		if err := p.open("value"); err != nil {
			return nil, err
		}
		fv, err := p.value()
		if err != nil {
			return nil, err
		}
		m, ok := fv.(map[string]any)
		if !ok {
			return nil, invalid("fault value is not a struct")
		}
		f := &Fault{}
		switch c := m["faultCode"].(type) {
		case int:
			f.Code = c
		case int64:
			f.Code = int(c)
		default:
			return nil, invalid("fault has no int faultCode")
		}
		f.Message, _ = m["faultString"].(string)
		v = f
		if err := p.close(); err != nil { // </fault>
			return nil, err
		}
	default:
		return nil, invalid("methodResponse holds <%s>, want <params> or <fault>", se.Name.Local)
	}
	if err := p.close(); err != nil { // </methodResponse>
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	if f, ok := v.(*Fault); ok {
		return nil, f
	}
	return v, nil
}
