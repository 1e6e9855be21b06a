package config_test

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// timeUnits are the time package's duration constants.
var timeUnits = []string{"Nanosecond", "Microsecond", "Millisecond", "Second", "Minute", "Hour"}

// durationFinding is a literal duration in non-test code: where, and the
// expression as written.
type durationFinding struct {
	path string // slash-separated, from the module root
	line int
	expr string
}

// literalDurations lists the literal durations in the module's non-test Go
// files outside config/: N * time.Unit (N a constant number), a bare
// time.Unit given as a value (a constant, a field, an assignment), and
// time.ParseDuration of a string literal.
func literalDurations(t *testing.T, root string) []durationFinding {
	t.Helper()
	var out []durationFinding
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "vendor") {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "config/") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		add := func(e ast.Expr) {
			var b bytes.Buffer
			_ = printer.Fprint(&b, fset, e)
			out = append(out, durationFinding{rel, fset.Position(e.Pos()).Line, b.String()})
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if n.Op == token.MUL && (isTimeUnit(n.X) && isConstNumber(n.Y) || isTimeUnit(n.Y) && isConstNumber(n.X)) {
					add(n)
					return false
				}
			case *ast.ValueSpec:
				for _, v := range n.Values {
					if isTimeUnit(v) {
						add(v)
					}
				}
			case *ast.KeyValueExpr:
				if isTimeUnit(n.Value) {
					add(n.Value)
				}
			case *ast.AssignStmt:
				for _, v := range n.Rhs {
					if isTimeUnit(v) {
						add(v)
					}
				}
			case *ast.CallExpr:
				if isSelector(n.Fun, "time", "ParseDuration") && len(n.Args) == 1 {
					if _, ok := n.Args[0].(*ast.BasicLit); ok {
						add(n)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func isSelector(e ast.Expr, pkg, name string) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := s.X.(*ast.Ident)
	return ok && id.Name == pkg && s.Sel.Name == name
}

func isTimeUnit(e ast.Expr) bool {
	return slices.ContainsFunc(timeUnits, func(u string) bool { return isSelector(e, "time", u) })
}

func isConstNumber(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return e.Kind == token.INT || e.Kind == token.FLOAT
	case *ast.ParenExpr:
		return isConstNumber(e.X)
	case *ast.BinaryExpr:
		return isConstNumber(e.X) && isConstNumber(e.Y)
	}
	return false
}

// allowed is the list of literal durations outside config/ that are not
// defaults, each with why. A key is a file (or a folder, ending in "/")
// named by its last path elements, so it survives a package's move, and,
// for a file, the expression as written ("" for any in that file).
var allowed = map[[2]string]string{
	// Test harnesses, benchmarks and the dev tools: their waits bound a test's
	// or a bench's own run, not relman's behaviour.
	{"bench/", ""}:       "a benchmark's own parameters and bounds",
	{"testcluster/", ""}: "test harness: waits for processes it starts",
	{"testenv/", ""}:     "test harness: waits for processes it starts",
	{"ldaptest/", ""}:    "test harness: waits for the LDAP server it starts",
	{"testcert/", ""}:    "test harness: the validity of a test certificate",
	{"devserver/", ""}:   "the dev server's own start and stop bounds and its retention",
	{"devstack/", ""}:    "the dev stack's own start and stop bounds",

	// Units used as units, not defaults.
	{"auth/users.go", "time.Second"}:                    "a token's creation time is kept to the second",
	{"workflows/registry.go", "time.Second"}:            "workflows/registry.go: a lease under a second is refused (a bound of the input, not a default)",
	{"registryshard.go", "time.Millisecond"}:            "the shortest timer, a unit",
	{"buildstep/buildstep.go", "time.Second"}:           "waitGroupGone's poll bound after a kill",
	{"buildstep/buildstep.go", "10 * time.Millisecond"}: "waitGroupGone's poll step",
	{"temporalclient/retention.go", "24 * time.Hour"}:   "a day: retention is shown in days",
	{"throttle.go", "time.Second"}:                      "a Retry-After is rounded up to whole seconds",
	{"cli/follow.go", "120 * time.Millisecond"}:         "the progress bars' refresh rate: how a terminal draws, not a setting",

	// One home each, but below config: config imports these packages (to
	// check LDAP settings, signatures and rollouts), so it reads them from
	// there rather than the other way round.
	{"auth/ldap/ldap.go", ""}:  "ldap.DefaultTimeout, defined once there",
	{"auth/signature.go", ""}:  "auth.SignatureTTL, defined once there",
	{"rollout/rollout.go", ""}: "rollout.DefaultApprovalTimeout, read by config/environment.go",
}

func allowedFinding(f durationFinding) (string, bool) {
	p := "/" + f.path
	for k, why := range allowed {
		file, expr := k[0], k[1]
		var match bool
		if strings.HasSuffix(file, "/") {
			match = strings.Contains(p, "/"+file)
		} else {
			match = strings.HasSuffix(p, "/"+file)
		}
		if match && (expr == "" || expr == f.expr) {
			return why, true
		}
	}
	return "", false
}

// TestDefaultsHaveOneHome: a literal duration outside config/ is a second
// home for a default, unless the allow-list says why it is not one.
func TestDefaultsHaveOneHome(t *testing.T) {
	found := literalDurations(t, "..")
	if len(found) < 10 {
		t.Fatalf("found only %d literal durations in the module: the walk is broken", len(found))
	}
	var bad []string
	for _, f := range found {
		if _, ok := allowedFinding(f); !ok {
			bad = append(bad, fmt.Sprintf("%s:%d: %s", f.path, f.line, f.expr))
		}
	}
	if len(bad) > 0 {
		t.Errorf("literal durations outside config/: define each default in config/defaults.go and read it from there, or add it to the allow-list with a reason:\n%s", strings.Join(bad, "\n"))
	}
}

// TestDefaultsScanFindsEachForm keeps the scan honest: each form it must
// catch, in a file outside config/, is caught.
func TestDefaultsScanFindsEachForm(t *testing.T) {
	dir := t.TempDir()
	src := `package x

import "time"

const a = 30 * time.Second
const b = time.Hour
var c = struct{ D time.Duration }{D: time.Minute}
var d, _ = time.ParseDuration("5s")
var e = 7 * 24 * time.Hour

func f(t time.Duration) time.Duration { return t.Round(time.Millisecond) }
`
	if err := os.MkdirAll(filepath.Join(dir, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x", "x.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range literalDurations(t, dir) {
		got = append(got, f.expr)
	}
	want := []string{"30 * time.Second", "time.Hour", "time.Minute", `time.ParseDuration("5s")`, "7 * 24 * time.Hour"}
	if !slices.Equal(got, want) {
		t.Errorf("scan found %q, want %q (a unit passed to Round is a unit, not a default)", got, want)
	}
}
