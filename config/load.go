package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Version is the only configuration format this relman reads.
const Version = 1

// File is one role's config: a *Manager, *Builder or *Installer.
type File interface {
	Default()
	Validate() error
	// Role is "manager", "builder" or "installer".
	Role() string
	// Base is what every role's file has: Temporal, logging, the manager
	// served.
	Base() *Service
}

// Role names the role a manager config is for.
func (c *Manager) Role() string { return "manager" }

// Role names the role a builder config is for.
func (c *Builder) Role() string { return "builder" }

// Role names the role an installer config is for.
func (c *Installer) Role() string { return "installer" }

// Base is the part every role's config has.
func (c *Manager) Base() *Service { return &c.Service }

// Base is the part every role's config has.
func (c *Builder) Base() *Service { return &c.Service }

// Base is the part every role's config has.
func (c *Installer) Base() *Service { return &c.Service }

// LoadManager reads, defaults and validates a manager file. When the file
// decodes, it returns the config even with problems, alongside an *Error
// listing all of them; when it does not (unreadable, not YAML, another
// format version), the config is nil.
func LoadManager(path string) (*Manager, error) {
	c := &Manager{}
	return load(path, &c.path, c)
}

// LoadBuilder is LoadManager for builder files.
func LoadBuilder(path string) (*Builder, error) {
	c := &Builder{}
	return load(path, &c.path, c)
}

// LoadInstaller is LoadManager for installer files.
func LoadInstaller(path string) (*Installer, error) {
	c := &Installer{}
	return load(path, &c.path, c)
}

// Load reads a file of any role, telling the role by the fields only that
// role has, and returns a *Manager, *Builder or *Installer. Where
// LoadManager would return a nil config, Load returns a nil interface, not
// a typed nil.
func Load(path string) (File, error) {
	abs, data, err := read(path)
	if err != nil {
		return nil, err
	}
	var c File
	var dst *string
	switch sniff(data) {
	case "manager":
		m := &Manager{}
		c, dst = m, &m.path
	case "installer":
		in := &Installer{}
		c, dst = in, &in.path
	default:
		b := &Builder{}
		c, dst = b, &b.path
	}
	*dst = abs
	ok, err := parse(abs, data, c)
	if !ok {
		return nil, err
	}
	return c, err
}

// read makes the path absolute first so that Path, Dir and the paths
// resolved against them stay right if the process changes directory later.
func read(path string) (string, []byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("config %s: %w", path, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return "", nil, err
	}
	return abs, data, nil
}

// load reads the file at path into c, recording its absolute path in dst,
// and returns c, or nil when the file does not decode (LoadManager says
// when).
func load[C File](path string, dst *string, c C) (C, error) {
	var none C
	abs, data, err := read(path)
	if err != nil {
		return none, err
	}
	*dst = abs
	ok, err := parse(abs, data, c)
	if !ok {
		return none, err
	}
	return c, err
}

// parse reports ok when c was decoded and so is worth returning, even
// alongside problems.
func parse(path string, data []byte, c File) (bool, error) {
	if err := checkVersion(path, data); err != nil {
		return false, err
	}
	probs, err := decode(path, data, c)
	if err != nil {
		return false, err
	}
	c.Default()
	if verr := c.Validate(); verr != nil {
		var e *Error
		if !errors.As(verr, &e) {
			return true, verr
		}
		probs = append(probs, e.Problems...)
	}
	if len(probs) > 0 {
		return true, &Error{File: path, Problems: probs}
	}
	return true, nil
}

// checkVersion runs before the strict decode: a file written for another
// format version would otherwise be reported as a pile of unknown fields.
func checkVersion(path string, data []byte) error {
	var v struct {
		Version yaml.Node `yaml:"version"`
	}
	err := yaml.Unmarshal(data, &v)
	var te *yaml.TypeError
	if errors.As(err, &te) {
		// The only way to mismatch a struct with one node field.
		return &Error{File: path, Problems: []Problem{{Msg: "the top level is not a mapping of settings"}}}
	}
	if err != nil {
		return syntaxError(path, err)
	}
	n := v.Version
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		// Missing is reported by Validate, a wrong type by the strict
		// decode, each alongside the other problems.
		return nil
	}
	if ver, err := strconv.Atoi(n.Value); err != nil || ver != Version {
		return &Error{File: path, Problems: []Problem{{
			Line:  n.Line,
			Field: "version",
			Msg:   fmt.Sprintf("%s is not supported; this relman reads version %d", n.Value, Version),
		}}}
	}
	return nil
}

// decode returns field-level problems (unknown fields, wrong types) as a
// list, because yaml.v3 keeps decoding past them and the rest of the file is
// still worth validating.
func decode(path string, data []byte, out any) ([]Problem, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(out)
	if errors.Is(err, io.EOF) {
		return nil, nil // an empty file: Validate says what is missing
	}
	var probs []Problem
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		for _, m := range te.Errors {
			probs = append(probs, yamlProblem(m))
		}
	case err != nil:
		return nil, syntaxError(path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		p := Problem{Line: extra.Line, Msg: "a second YAML document; a config file holds one"}
		if err != nil {
			p = yamlProblem(err.Error())
		}
		probs = append(probs, p)
	}
	return probs, nil
}

func syntaxError(path string, err error) error {
	return &Error{File: path, Problems: []Problem{yamlProblem(err.Error())}}
}

// sniff tells the role from keys only one role has. Installer and manager
// both have environments; an installer's environment maps targets to
// behaviors (mappings) while a manager's holds only flags.
func sniff(data []byte) string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return "builder"
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return "builder"
	}
	if lookup(top, "host") != nil {
		return "installer"
	}
	if lookup(top, "listen_port") != nil || lookup(top, "timeouts") != nil {
		return "manager"
	}
	if projects := lookup(top, "projects"); projects != nil && projects.Kind == yaml.MappingNode {
		for i := 1; i < len(projects.Content); i += 2 {
			p := projects.Content[i]
			if lookup(p, "targets") != nil || lookup(p, "description") != nil {
				return "manager"
			}
			if lookup(p, "source") != nil || lookup(p, "steps") != nil || lookup(p, "outputs") != nil {
				return "builder"
			}
		}
	}
	if envs := lookup(top, "environments"); envs != nil && envs.Kind == yaml.MappingNode {
		for i := 1; i < len(envs.Content); i += 2 {
			env := envs.Content[i]
			if env.Kind != yaml.MappingNode {
				continue
			}
			for j := 1; j < len(env.Content); j += 2 {
				if env.Content[j].Kind == yaml.MappingNode {
					return "installer"
				}
			}
		}
		return "manager"
	}
	return "builder"
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// Path is the absolute path of the file the config was loaded from; empty
// for a config built in code.
func (c *Manager) Path() string { return c.path }

// Dir is the directory relative paths in the file are resolved against.
func (c *Manager) Dir() string { return filepath.Dir(c.path) }

// Path is the absolute path of the file the config was loaded from.
func (c *Builder) Path() string { return c.path }

// Dir is the directory relative paths in the file are resolved against.
func (c *Builder) Dir() string { return filepath.Dir(c.path) }

// Path is the absolute path of the file the config was loaded from.
func (c *Installer) Path() string { return c.path }

// Dir is the directory relative paths in the file are resolved against.
func (c *Installer) Dir() string { return filepath.Dir(c.path) }
