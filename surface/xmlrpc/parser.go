package xmlrpc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

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
	err := p.elements("params", "param", func() error {
		if err := p.open("value"); err != nil {
			return err
		}
		v, err := p.value()
		if err != nil {
			return err
		}
		out = append(out, v)
		return p.close() // </param>
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// elements reads the children of parent up to its end tag, each of which
// must be a child element, handing each to read once its start tag is
// read. Whitespace between them is skipped; other text is refused.
func (p *parser) elements(parent, child string, read func() error) error {
	for {
		t, err := p.token()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return invalid("unexpected text %q in <%s>", clip(string(t)), parent)
			}
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local != child {
				return invalid("<%s> inside <%s>, want <%s>", t.Name.Local, parent, child)
			}
			if err := read(); err != nil {
				return err
			}
		}
	}
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
