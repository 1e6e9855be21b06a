package testcluster

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The server config archives visibility exactly as history (one YAML
// anchor serves both), enabled and readable, on the filestore; the server
// reads it with yaml.v3, which resolves the alias.
func TestConfigArchivesVisibilityAsHistory(t *testing.T) {
	var b bytes.Buffer
	err := temporalConfig.Execute(&b, map[string]any{
		"Postgres": "127.0.0.1:5432", "User": "temporal", "Password": "pw", "Metrics": 9090,
		"Ports":         map[string]servicePorts{Frontend: {GRPC: 7233, Membership: 6933, HTTP: 7243}},
		"Frontend":      "127.0.0.1:7233",
		"DynamicConfig": "dc.yaml",
		"Archive":       "/tmp/archival",
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Archival map[string]struct {
			State      string `yaml:"state"`
			EnableRead bool   `yaml:"enableRead"`
			Provider   struct {
				Filestore struct {
					FileMode string `yaml:"fileMode"`
					DirMode  string `yaml:"dirMode"`
				} `yaml:"filestore"`
			} `yaml:"provider"`
		} `yaml:"archival"`
	}
	if err := yaml.Unmarshal(b.Bytes(), &cfg); err != nil {
		t.Fatalf("the config is not YAML: %v\n%s", err, b.String())
	}
	h, v := cfg.Archival["history"], cfg.Archival["visibility"]
	if h.State != "enabled" || !h.EnableRead || h.Provider.Filestore.FileMode != "0644" || h.Provider.Filestore.DirMode != "0755" {
		t.Errorf("history archival: %+v, want enabled, readable, filestore 0644/0755", h)
	}
	if v != h {
		t.Errorf("visibility archival %+v, want the same as history's %+v", v, h)
	}
}
