package buildstep

import (
	"bytes"
	"strings"
)

// maxLineBytes caps one remembered line, so a step printing megabytes without a
// newline cannot blow up the builder's memory through the tail.
const maxLineBytes = 4096

// lineTail remembers the last n lines written to it in a ring, plus the unfinished
// line, so the error can show how a step ended without holding all its output.
type lineTail struct {
	lines   []string
	next    int
	full    bool
	partial []byte
}

func newLineTail(n int) *lineTail {
	return &lineTail{lines: make([]string, n)}
}

func (t *lineTail) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.appendPartial(p)
			break
		}
		t.appendPartial(p[:i])
		t.push(strings.TrimSuffix(string(t.partial), "\r"))
		t.partial = t.partial[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (t *lineTail) appendPartial(p []byte) {
	if room := maxLineBytes - len(t.partial); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		t.partial = append(t.partial, p...)
	}
}

func (t *lineTail) push(line string) {
	t.lines[t.next] = line
	t.next = (t.next + 1) % len(t.lines)
	if t.next == 0 {
		t.full = true
	}
}

// String returns the remembered lines, oldest first, including an unfinished last
// line (often the most telling one, e.g. a prompt or a crash without newline).
func (t *lineTail) String() string {
	var out []string
	if t.full {
		out = append(out, t.lines[t.next:]...)
	}
	out = append(out, t.lines[:t.next]...)
	if len(t.partial) > 0 {
		out = append(out, string(t.partial))
		if len(out) > len(t.lines) {
			out = out[1:]
		}
	}
	return strings.Join(out, "\n")
}
