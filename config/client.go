package config

import (
	"net/url"
	"path/filepath"
)

// Client is a user's CLI settings (client.yaml): how the client commands
// reach the manager's API. Flags and the environment win over it.
type Client struct {
	Version int `yaml:"version"`
	// ManagerURL is the manager's gateway (RELMAN_MANAGER_URL).
	ManagerURL string `yaml:"manager_url"`
	// ManagerCAPath verifies the gateway's certificate
	// (RELMAN_MANAGER_CA); relative to the file.
	ManagerCAPath string `yaml:"manager_ca_path"`
	// TokenFile holds the user's token (RELMAN_TOKEN_FILE); relative to
	// the file.
	TokenFile string `yaml:"token_file"`

	path string
}

// ClientConfigName is the file the CLI reads from the user's config
// directory ($XDG_CONFIG_HOME/relman, else ~/.config/relman) when
// RELMAN_CLIENT_CONFIG names none.
const ClientConfigName = "client.yaml"

// LoadClient reads a client.yaml strictly: unknown fields and a manager
// URL that is not http(s) are errors, every one at once.
func LoadClient(path string) (*Client, error) {
	abs, data, err := read(path)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(abs, data); err != nil {
		return nil, err
	}
	c := &Client{path: abs}
	probs, err := decode(abs, data, c)
	if err != nil {
		return nil, err
	}
	if c.Version == 0 {
		probs = append(probs, Problem{Field: "version", Msg: "is missing; add version: 1"})
	}
	if c.ManagerURL != "" {
		u, err := url.Parse(c.ManagerURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			probs = append(probs, Problem{Field: "manager_url", Msg: "must be the manager's gateway URL, like https://relman.example.com:10000/"})
		}
	}
	for _, p := range []*string{&c.ManagerCAPath, &c.TokenFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(abs), *p)
		}
	}
	if len(probs) > 0 {
		return nil, &Error{File: abs, Problems: probs}
	}
	return c, nil
}

// Path is the file the settings came from.
func (c *Client) Path() string { return c.path }
