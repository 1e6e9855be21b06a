package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/relman/relman/auth/ldap"
)

// Problem is one thing wrong with a configuration file. Decode problems know
// their line; validation problems know the field, because the decoded struct
// no longer remembers where a value came from.
type Problem struct {
	Line  int    // 0 when unknown
	Field string // dotted path such as projects.template.steps[0]; may be empty
	Msg   string
}

// Error lists every problem found in one file, so an operator fixes them all
// in one edit instead of one per run.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.format(e.File)
	}
	return strings.Join(lines, "\n")
}

func (p Problem) format(file string) string {
	var b strings.Builder
	b.WriteString(file)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// problems collects validation findings for one file.
type problems struct {
	list []Problem
}

func (ps *problems) add(field, format string, args ...any) {
	ps.list = append(ps.list, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil, not a typed nil pointer, when nothing was found, so
// callers can compare with nil.
func (ps *problems) err(file string) error {
	if len(ps.list) == 0 {
		return nil
	}
	return &Error{File: file, Problems: ps.list}
}

var (
	reSyntax   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	reLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	reUnknown  = regexp.MustCompile(`^field (.+) not found in type (.+)$`)
	reMismatch = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// yamlProblem rewrites one yaml.v3 message ("line 7: field foo not found in
// type config.Manager") into what an operator can act on.
func yamlProblem(msg string) Problem {
	if m := reSyntax.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{Line: n, Msg: m[2]}
	}
	line := 0
	if m := reLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := reUnknown.FindStringSubmatch(msg); m != nil {
		text := fmt.Sprintf("unknown field %q", m[1])
		if s := suggest(m[1], knownFields(m[2])); s != "" {
			text += fmt.Sprintf("; did you mean %q?", s)
		}
		return Problem{Line: line, Msg: text}
	}
	if m := reMismatch.FindStringSubmatch(msg); m != nil {
		got := tagNames[m[1]]
		if got == "" {
			got = m[1]
		}
		if m[2] != "" {
			got += " `" + m[2] + "`"
		}
		return Problem{Line: line, Msg: fmt.Sprintf("want %s, not %s", wantName(m[3]), got)}
	}
	return Problem{Line: line, Msg: msg}
}

var tagNames = map[string]string{
	"!!str":       "a string",
	"!!int":       "a number",
	"!!float":     "a number",
	"!!bool":      "a boolean",
	"!!null":      "null",
	"!!seq":       "a list",
	"!!map":       "a mapping",
	"!!timestamp": "a timestamp",
	"!!binary":    "binary data",
}

func wantName(goType string) string {
	switch {
	case goType == "time.Duration":
		return "a duration such as 90s, 5m or 1h"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "config."), strings.HasPrefix(goType, "ldap."):
		return "a mapping"
	}
	return goType
}

// fileTypes are the structs a file decodes into, by the name yaml.v3 prints.
var fileTypes = func() map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for _, v := range []any{
		Manager{}, Builder{}, Installer{}, Temporal{}, Logging{}, Environment{},
		ProjectDef{}, ReleaseTimeouts{}, BuildBehavior{}, Source{}, Step{}, Output{},
		InstallBehavior{}, Auth{}, Realm{}, ldap.Config{},
	} {
		t := reflect.TypeOf(v)
		m[t.String()] = t
	}
	return m
}()

func knownFields(typeName string) []string {
	t, ok := fileTypes[typeName]
	if !ok {
		return nil
	}
	var names []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if opts == "inline" {
				walk(f.Type)
				continue
			}
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			names = append(names, name)
		}
	}
	walk(t)
	sort.Strings(names)
	return names
}

// suggest returns the closest known field when it is close enough to be a
// typo.
func suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := distance(name, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
