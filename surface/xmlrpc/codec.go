// Package xmlrpc is relman's XML-RPC gateway for the seed's legacy clients:
// a codec for XML-RPC calls and responses written on encoding/xml, a generic
// HTTP server with system.* introspection, and the relman methods
// (request_action, query_transaction, ...) on a Temporal client.
package xmlrpc

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

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

// parser walks the token stream by hand: it is linear in the input, keeps
// no more than the value being built, and stops at MaxDepth.
type parser struct {
	d     *xml.Decoder
	depth int
	// rooted: the root element has started; text before it is not XML.
	rooted bool
	// charset is the fault of an unsupported declared encoding, which
	// encoding/xml would otherwise flatten into its own error text.
	charset *Fault
}

func newParser(r io.Reader) *parser {
	p := &parser{d: xml.NewDecoder(r)}
	p.d.Strict = true
	p.d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		r, err := charsetReader(label, in)
		if f, ok := err.(*Fault); ok {
			p.charset = f
		}
		return r, err
	}
	return p
}

// token returns the next start, end or text token, skipping comments,
// processing instructions and directives. A DOCTYPE is refused: XML-RPC has
// no use for one, and entity tricks live there.
func (p *parser) token() (xml.Token, error) {
	for {
		t, err := p.d.Token()
		if err != nil {
			if p.charset != nil {
				return nil, p.charset
			}
			if err == io.EOF {
				return nil, notWellFormed("unexpected end of the document")
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, notWellFormed("%s", se.Msg)
			}
			return nil, notWellFormed("%v", err)
		}
		switch t := t.(type) {
		case xml.StartElement, xml.EndElement:
			return t, nil
		case xml.CharData:
			return xml.CharData(bytes.Clone(t)), nil
		case xml.Directive:
			return nil, invalid("a <!%s...> directive is not allowed", firstWord(t))
		}
	}
}

func firstWord(b []byte) string {
	s, _, _ := strings.Cut(string(b), " ")
	if len(s) > 16 {
		s = s[:16]
	}
	return s
}

// child returns the next start element, allowing only whitespace before it.
func (p *parser) child() (xml.StartElement, error) {
	for {
		t, err := p.token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			p.rooted = true
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, invalid("</%s> came where an element was expected", t.Name.Local)
		case xml.CharData:
			if !p.rooted && !isSpace(t) {
				return xml.StartElement{}, notWellFormed("text before the root element")
			}
			if !isSpace(t) {
				return xml.StartElement{}, invalid("text %q came where an element was expected", clip(string(t)))
			}
		}
	}
}

// open reads the start element name.
func (p *parser) open(name string) error {
	se, err := p.child()
	if err != nil {
		return err
	}
	if se.Name.Local != name {
		return invalid("<%s> came where <%s> was expected", se.Name.Local, name)
	}
	return nil
}

// close reads an end element, allowing only whitespace before it.
func (p *parser) close() error {
	for {
		t, err := p.token()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			return invalid("unexpected <%s>", t.Name.Local)
		case xml.CharData:
			if !isSpace(t) {
				return invalid("unexpected text %q", clip(string(t)))
			}
		}
	}
}

// optionalParams reads either <params> (true) or the end of parent (false).
func (p *parser) optionalParams(parent string) (bool, error) {
	for {
		t, err := p.token()
		if err != nil {
			return false, err
		}
		switch t := t.(type) {
		case xml.EndElement:
			return false, nil
		case xml.StartElement:
			if t.Name.Local != "params" {
				return false, invalid("<%s> came where <params> or </%s> was expected", t.Name.Local, parent)
			}
			return true, nil
		case xml.CharData:
			if !isSpace(t) {
				return false, invalid("unexpected text %q", clip(string(t)))
			}
		}
	}
}

// end checks nothing but whitespace, comments and processing instructions
// follow the root element.
func (p *parser) end() error {
	for {
		t, err := p.d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return notWellFormed("after the root element: %v", err)
		}
		switch t := t.(type) {
		case xml.StartElement:
			return notWellFormed("a second root element <%s>", t.Name.Local)
		case xml.CharData:
			if !isSpace(t) {
				return notWellFormed("text after the root element")
			}
		}
	}
}

// text reads character data up to the end of the current element.
func (p *parser) text() (string, error) {
	var b strings.Builder
	for {
		t, err := p.token()
		if err != nil {
			return "", err
		}
		switch t := t.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.StartElement:
			return "", invalid("<%s> inside a scalar value", t.Name.Local)
		}
	}
}

// params reads <param><value>...</value></param>* after <params>, and
// </params>.
func (p *parser) params() ([]any, error) {
	out := []any{}
	for {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return nil, invalid("unexpected text %q in <params>", clip(string(t)))
			}
		case xml.EndElement: // </params>
			return out, nil
		case xml.StartElement:
			if t.Name.Local != "param" {
				return nil, invalid("<%s> inside <params>, want <param>", t.Name.Local)
			}
			if err := p.open("value"); err != nil {
				return nil, err
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			if err := p.close(); err != nil { // </param>
				return nil, err
			}
			out = append(out, v)
		}
	}
}

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
	for {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return nil, invalid("unexpected text %q in <data>", clip(string(t)))
			}
		case xml.EndElement: // </data>
			if err := p.close(); err != nil { // </array>
				return nil, err
			}
			return out, nil
		case xml.StartElement:
			if t.Name.Local != "value" {
				return nil, invalid("<%s> inside <data>, want <value>", t.Name.Local)
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
}

// structure reads <member><name/><value/></member>* up to </struct>. A
// repeated name keeps the last value, as Python's client does.
func (p *parser) structure() (any, error) {
	if err := p.nest(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	out := map[string]any{}
	for {
		t, err := p.token()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return nil, invalid("unexpected text %q in <struct>", clip(string(t)))
			}
		case xml.EndElement:
			return out, nil
		case xml.StartElement:
			if t.Name.Local != "member" {
				return nil, invalid("<%s> inside <struct>, want <member>", t.Name.Local)
			}
			if err := p.open("name"); err != nil {
				return nil, err
			}
			name, err := p.text()
			if err != nil {
				return nil, err
			}
			if err := p.open("value"); err != nil {
				return nil, err
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			if err := p.close(); err != nil { // </member>
				return nil, err
			}
			out[name] = v
		}
	}
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

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
}

// clip keeps quoted input short in fault strings.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	i := 40
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

func notWellFormed(format string, args ...any) *Fault {
	return &Fault{Code: CodeParseError, Message: "parse error: not well formed: " + fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Fault {
	return &Fault{Code: CodeInvalidRequest, Message: "invalid XML-RPC: " + fmt.Sprintf(format, args...)}
}

// EncodeResponse writes a methodResponse holding v.
func EncodeResponse(w io.Writer, v any) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodResponse><params><param>")
	if err := encodeValue(&b, reflect.ValueOf(v), 0); err != nil {
		return err
	}
	b.WriteString("</param></params></methodResponse>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// EncodeFault writes a methodResponse holding the fault f.
func EncodeFault(w io.Writer, f *Fault) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodResponse><fault>")
	if err := encodeValue(&b, reflect.ValueOf(map[string]any{"faultCode": f.Code, "faultString": f.Message}), 0); err != nil {
		return err
	}
	b.WriteString("</fault></methodResponse>\n")
	_, err := w.Write(b.Bytes())
	return err
}

// EncodeCall writes a methodCall; the gateway's tests and Go clients use it.
func EncodeCall(w io.Writer, method string, params ...any) error {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodCall><methodName>")
	_ = xml.EscapeText(&b, []byte(method))
	b.WriteString("</methodName><params>")
	for _, p := range params {
		b.WriteString("<param>")
		if err := encodeValue(&b, reflect.ValueOf(p), 0); err != nil {
			return err
		}
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>\n")
	_, err := w.Write(b.Bytes())
	return err
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	bytesType = reflect.TypeFor[[]byte]()
)

// encodeValue writes <value>...</value> for v. Go types map as: nil and nil
// pointers, maps and slices -> <nil/>; bool -> boolean; ints in 32 bits ->
// int, wider -> i8; floats -> double; string -> string; []byte -> base64;
// time.Time -> dateTime.iso8601 (UTC); slices and arrays -> array; maps
// with string keys and structs (exported fields, `xmlrpc:"name"` tags,
// "-" to skip, ",omitempty") -> struct.
func encodeValue(b *bytes.Buffer, v reflect.Value, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("value nests deeper than %d levels", MaxDepth)
	}
	b.WriteString("<value>")
	defer b.WriteString("</value>")
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			b.WriteString("<nil/>")
			return nil
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		b.WriteString("<nil/>")
		return nil
	}
	if v.Type() == timeType {
		b.WriteString("<dateTime.iso8601>")
		b.WriteString(v.Interface().(time.Time).UTC().Format(TimeLayout))
		b.WriteString("</dateTime.iso8601>")
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			b.WriteString("<boolean>1</boolean>")
		} else {
			b.WriteString("<boolean>0</boolean>")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		writeInt(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := v.Uint()
		if u > math.MaxInt64 {
			return fmt.Errorf("%d does not fit an XML-RPC integer", u)
		}
		writeInt(b, int64(u))
	case reflect.Float32, reflect.Float64:
		b.WriteString("<double>")
		b.WriteString(strconv.FormatFloat(v.Float(), 'f', -1, 64))
		b.WriteString("</double>")
	case reflect.String:
		b.WriteString("<string>")
		_ = xml.EscapeText(b, []byte(v.String()))
		b.WriteString("</string>")
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			var raw []byte
			if v.Kind() == reflect.Slice {
				if v.IsNil() {
					b.WriteString("<nil/>")
					return nil
				}
				raw = v.Bytes()
			} else {
				raw = make([]byte, v.Len())
				reflect.Copy(reflect.ValueOf(raw), v)
			}
			b.WriteString("<base64>")
			b.WriteString(base64.StdEncoding.EncodeToString(raw))
			b.WriteString("</base64>")
			return nil
		}
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString("<array><data></data></array>")
			return nil
		}
		b.WriteString("<array><data>")
		for i := range v.Len() {
			if err := encodeValue(b, v.Index(i), depth+1); err != nil {
				return err
			}
		}
		b.WriteString("</data></array>")
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("a map keyed by %s has no XML-RPC form; key it by string", v.Type().Key())
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		b.WriteString("<struct>")
		for _, k := range keys {
			if err := writeMember(b, k.String(), v.MapIndex(k), depth); err != nil {
				return err
			}
		}
		b.WriteString("</struct>")
	case reflect.Struct:
		b.WriteString("<struct>")
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("xmlrpc"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if opts == "omitempty" && fv.IsZero() {
				continue
			}
			if err := writeMember(b, name, fv, depth); err != nil {
				return err
			}
		}
		b.WriteString("</struct>")
	default:
		return fmt.Errorf("a %s has no XML-RPC form", v.Type())
	}
	return nil
}

func writeMember(b *bytes.Buffer, name string, v reflect.Value, depth int) error {
	b.WriteString("<member><name>")
	_ = xml.EscapeText(b, []byte(name))
	b.WriteString("</name>")
	if err := encodeValue(b, v, depth+1); err != nil {
		return err
	}
	b.WriteString("</member>")
	return nil
}

func writeInt(b *bytes.Buffer, n int64) {
	tag := "int"
	if n < math.MinInt32 || n > math.MaxInt32 {
		tag = "i8"
	}
	b.WriteString("<" + tag + ">")
	b.WriteString(strconv.FormatInt(n, 10))
	b.WriteString("</" + tag + ">")
}
