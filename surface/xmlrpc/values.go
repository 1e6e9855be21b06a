package xmlrpc

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// value reads the inside of a <value> element, its end included.
func (p *parser) value() (any, error) {
	var text strings.Builder
	for {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			// No type element: the spec says string.
			return text.String(), nil
		case xml.StartElement:
			if !isSpace([]byte(text.String())) {
				return nil, invalid("text and <%s> mixed in one <value>", t.Name.Local)
			}
			v, err := p.typed(t.Name.Local)
			if err != nil {
				return nil, err
			}
			if err := p.close(); err != nil { // </value>
				return nil, err
			}
			return v, nil
		}
	}
}

// typed reads one typed value whose start tag was just read, its end
// included.
func (p *parser) typed(tag string) (any, error) {
	switch tag {
	case "array":
		return p.array()
	case "struct":
		return p.structure()
	case "nil":
		if err := p.close(); err != nil {
			return nil, invalid("<nil/> must be empty")
		}
		return nil, nil
	}
	s, err := p.text()
	if err != nil {
		return nil, err
	}
	switch tag {
	case "string":
		return s, nil
	case "int", "i4":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
			return nil, invalid("<%s>%s</%s> is not a 32-bit integer", tag, clip(s), tag)
		}
		return int(n), nil
	case "i8":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, invalid("<i8>%s</i8> is not a 64-bit integer", clip(s))
		}
		return n, nil
	case "boolean":
		switch strings.TrimSpace(s) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
		return nil, invalid("<boolean>%s</boolean> is not 0 or 1", clip(s))
	case "double":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, invalid("<double>%s</double> is not a number", clip(s))
		}
		return f, nil
	case "dateTime.iso8601":
		t, err := parseTime(strings.TrimSpace(s))
		if err != nil {
			return nil, invalid("<dateTime.iso8601>%s</dateTime.iso8601> is not a date and time like 20060102T15:04:05", clip(s))
		}
		return t, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(stripSpace(s))
		if err != nil {
			return nil, invalid("<base64> holds no valid base64: %v", err)
		}
		return b, nil
	}
	return nil, invalid("<%s> is not an XML-RPC type", tag)
}

func (p *parser) nest() error {
	p.depth++
	if p.depth > MaxDepth {
		return invalid("arrays and structs nest deeper than %d levels", MaxDepth)
	}
	return nil
}

// array reads <data><value/>*</data></array>.
func (p *parser) array() (any, error) {
	if err := p.nest(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if err := p.open("data"); err != nil {
		return nil, err
	}
	out := []any{}
	err := p.elements("data", "value", func() error {
		v, err := p.value()
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := p.close(); err != nil { // </array>
		return nil, err
	}
	return out, nil
}

// structure reads <member><name/><value/></member>* up to </struct>. A
// repeated name keeps the last value, as Python's client does.
func (p *parser) structure() (any, error) {
	if err := p.nest(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	out := map[string]any{}
	err := p.elements("struct", "member", func() error {
		if err := p.open("name"); err != nil {
			return err
		}
		name, err := p.text()
		if err != nil {
			return err
		}
		if err := p.open("value"); err != nil {
			return err
		}
		v, err := p.value()
		if err != nil {
			return err
		}
		out[name] = v
		return p.close() // </member>
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Time layouts accepted for dateTime.iso8601: Python's (no zone, meaning
// UTC here), the dashed form, and either with a zone.
var timeLayouts = []string{
	"20060102T15:04:05",
	"20060102T15:04:05Z07:00",
	"20060102T150405",
	"20060102T150405Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z07:00",
}

func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

// TimeLayout is how times are written: Python's xmlrpc.client layout, UTC.
const TimeLayout = "20060102T15:04:05"

// charsetReader accepts the encodings clients declare in practice; the
// others are a -32701 fault.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin-1", "latin1", "iso8859-1":
		return &latin1Reader{r: in}, nil
	}
	return nil, &Fault{Code: CodeUnsupportedEncoding, Message: fmt.Sprintf("encoding %q is not supported; send UTF-8", clip(label))}
}

// latin1Reader turns ISO-8859-1 bytes into UTF-8.
type latin1Reader struct {
	r   io.Reader
	buf []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	for len(l.buf) == 0 {
		raw := make([]byte, max(len(p)/2, 1))
		n, err := l.r.Read(raw)
		for _, c := range raw[:n] {
			l.buf = utf8.AppendRune(l.buf, rune(c))
		}
		if n == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}
