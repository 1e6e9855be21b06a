package deployments_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // FROM, RUN, COPY, ...
	args string
}

// stage is one FROM and what follows it.
type stage struct {
	name, from string
	body       []instruction
}

// parseDockerfile reads the instructions this Dockerfile uses; a full
// parser (BuildKit's) is a large dependency for what the tests need.
func parseDockerfile(t *testing.T, path string) (globalArgs map[string]string, stages []stage) {
	t.Helper()
	globalArgs = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(mustRead(t, path)))
	var cur string
	flush := func() {
		line := strings.TrimSpace(cur)
		cur = ""
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			require.Equal(t, "ARG", in.cmd, "only ARG may come before the first FROM")
			k, v, _ := strings.Cut(in.args, "=")
			globalArgs[k] = v
			return
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		flush()
	}
	flush()
	return globalArgs, stages
}

func findStage(t *testing.T, stages []stage, name string) stage {
	t.Helper()
	for _, s := range stages {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("the Dockerfile has no stage %s", name)
	return stage{}
}

// shellWords splits a command the way sh does, expanding variables from
// env and nothing else, because both Docker (RUN) and make run their
// commands through sh.
func shellWords(t *testing.T, command string, env []string) []string {
	t.Helper()
	cmd := exec.Command("sh", "-c", `set -- `+command+`; printf '%s\0' "$@"`)
	cmd.Env = env
	out, err := cmd.Output()
	require.NoError(t, err, "sh could not split %q", command)
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// goBuild is what a `go build` command builds: its flags but -o, and its
// packages.
type goBuild struct {
	flags    map[string]string
	packages []string
}

func parseGoBuild(t *testing.T, words []string) goBuild {
	t.Helper()
	require.GreaterOrEqual(t, len(words), 2)
	require.Equal(t, "go", filepath.Base(words[0]))
	require.Equal(t, "build", words[1])
	b := goBuild{flags: map[string]string{}}
	for i := 2; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") {
			b.packages = append(b.packages, w)
			continue
		}
		k, v, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if !hasValue && valueFlag[k] && i+1 < len(words) {
			i++
			v = words[i]
		}
		if k != "o" {
			b.flags[k] = v
		}
	}
	return b
}

// valueFlag: go build flags that take a value as the next word.
var valueFlag = map[string]bool{"o": true, "ldflags": true, "gcflags": true, "tags": true, "mod": true, "p": true, "pgo": true}

// TestDockerfileBuildsWhatMakeBuilds: the image's relman is the Makefile's
// relman: the same package, the same flags (-ldflags with the version),
// the output path aside. The commands are read as sh reads them, from make's
// own dry run of the build target and from the Dockerfile's RUN with its ARG
// and ENV values. The one intended difference is the environment: the image
// sets CGO_ENABLED=0, because its relman image has no libc.
func TestDockerfileBuildsWhatMakeBuilds(t *testing.T) {
	makeBin := tool(t, "make", "install make")
	const version, commit = "v9.9.9-test", "0123456789abcdef0123456789abcdef01234567"
	out, err := exec.Command(makeBin, "-C", "..", "-n", "--no-print-directory", "build", "VERSION="+version, "COMMIT="+commit, "GO=go").Output()
	require.NoError(t, err)
	var makeCmd string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "go build") {
			require.Empty(t, makeCmd, "the build target runs go build twice")
			makeCmd = l
		}
	}
	require.NotEmpty(t, makeCmd, "make -n build printed no go build:\n%s", out)
	fromMake := parseGoBuild(t, shellWords(t, makeCmd, []string{"PATH=" + os.Getenv("PATH")}))

	_, stages := parseDockerfile(t, filepath.Join("docker", "Dockerfile"))
	build := findStage(t, stages, "build")
	env := []string{"PATH=" + os.Getenv("PATH"), "VERSION=" + version, "COMMIT=" + commit}
	var runs []string
	cgo := ""
	for _, in := range build.body {
		switch in.cmd {
		case "ENV":
			k, v, _ := strings.Cut(in.args, "=")
			env = append(env, k+"="+v)
			if k == "CGO_ENABLED" {
				cgo = v
			}
		case "RUN":
			if strings.HasPrefix(in.args, "go build") {
				runs = append(runs, in.args)
			}
		}
	}
	require.Len(t, runs, 1, "the build stage must run go build once")
	fromDocker := parseGoBuild(t, shellWords(t, runs[0], env))

	assert.Equal(t, fromMake.packages, fromDocker.packages, "the Dockerfile builds another package than make build")
	assert.Equal(t, fromMake.flags, fromDocker.flags, "the Dockerfile builds with other flags than make build")
	assert.Contains(t, fromDocker.flags["ldflags"], "surface/cli.Version="+version, "the version must reach the binary")
	assert.Contains(t, fromDocker.flags["ldflags"], "surface/cli.Commit="+commit, "the commit must reach the binary")
	assert.Equal(t, "0", cgo, "the build stage must set CGO_ENABLED=0: the relman image has no libc")
	words := shellWords(t, runs[0], env)
	for i, w := range words {
		if w == "-o" {
			assert.Equal(t, "/out/relman", words[i+1], "the final stages copy /out/relman")
		}
	}
}

// TestDockerfileImages: what each image holds and runs as.
func TestDockerfileImages(t *testing.T) {
	args, stages := parseDockerfile(t, filepath.Join("docker", "Dockerfile"))
	gomod := string(mustRead(t, filepath.Join("..", "go.mod")))
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(gomod)
	require.NotNil(t, goLine)
	assert.Equal(t, goLine[1], args["GO_VERSION"], "the image must build with go.mod's Go")
	assert.Equal(t, "golang:${GO_VERSION}-bookworm", findStage(t, stages, "build").from)
	assert.Equal(t, "relman", stages[len(stages)-1].name, "a plain docker build must make the relman image")

	cases := map[string]struct {
		from     string
		packages []string // what apt-get installs; nil: no RUN at all
	}{
		"relman":         {from: "gcr.io/distroless/static-debian12:nonroot"},
		"relman-builder": {from: "debian:bookworm-slim", packages: []string{"git", "subversion", "ca-certificates"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := findStage(t, stages, name)
			assert.Equal(t, c.from, s.from)
			var runs, copies []string
			user, entry := "", ""
			for _, in := range s.body {
				switch in.cmd {
				case "RUN":
					runs = append(runs, in.args)
				case "COPY":
					copies = append(copies, in.args)
				case "USER":
					user = in.args
				case "ENTRYPOINT":
					var argv []string
					require.NoError(t, json.Unmarshal([]byte(in.args), &argv))
					entry = argv[0]
				}
			}
			if c.packages == nil {
				assert.Empty(t, runs, "the relman image holds the static binary only")
			} else {
				require.Len(t, runs, 1)
				for _, p := range c.packages {
					assert.Regexp(t, `apt-get install .*\b`+regexp.QuoteMeta(p)+`\b`, runs[0])
				}
			}
			assert.Contains(t, copies, "--from=build /out/relman /usr/local/bin/relman")
			for _, cp := range copies {
				assert.True(t, strings.HasPrefix(cp, "--from=build "), "%s copies from outside the build stage", cp)
			}
			assert.Equal(t, "65532:65532", user, "the image must run as a non-root user (the chart's runAsUser)")
			assert.Equal(t, "/usr/local/bin/relman", entry)
		})
	}
}

// TestDockerignoreKeepsWhatTheBuildNeeds: no Go file or embedded file of
// cmd/relman is left out of the build context, and what must stay out
// (.git, bin/) is.
func TestDockerignoreKeepsWhatTheBuildNeeds(t *testing.T) {
	var patterns []*regexp.Regexp
	for _, l := range strings.Split(string(mustRead(t, filepath.Join("docker", "Dockerfile.dockerignore"))), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		require.False(t, strings.HasPrefix(l, "!"), "exceptions are not handled by this test; add them to it")
		patterns = append(patterns, ignorePattern(l))
	}
	ignored := func(rel string) bool {
		// A pattern that matches a directory leaves out everything in it.
		for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
			for _, re := range patterns {
				if re.MatchString(p) {
					return true
				}
			}
		}
		return false
	}
	for _, p := range []string{".git", "bin/relman", ".relman/dev", "surface/cli/cli.test"} {
		assert.True(t, ignored(p), "%s should be left out of the build context", p)
	}
	need := []string{"go.mod", "go.sum"}
	out, err := exec.Command("go", "list", "-deps", "-f", `{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}{{end}}`, "../cmd/relman").Output()
	require.NoError(t, err)
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, f)
		require.NoError(t, err)
		need = append(need, rel)
	}
	require.Greater(t, len(need), 50)
	for _, f := range need {
		assert.False(t, ignored(f), "the build needs %s, which Dockerfile.dockerignore leaves out", f)
	}
}

// ignorePattern turns a .dockerignore line into a regexp over slash paths
// relative to the context: ** any number of directories, * and ? within one.
func ignorePattern(p string) *regexp.Regexp {
	p = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/")
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
