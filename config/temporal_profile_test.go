package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const profileTOML = `
[profile.default]
address = "default.example:7233"
namespace = "default-ns"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "key-from-profile"

[profile.mtls]
address = "mtls.example:7233"
[profile.mtls.tls]
client_cert_path = "/certs/client.pem"
client_key_path = "/certs/client.key"
server_name = "mtls.internal"
`

func TestApplyProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(file, []byte(profileTOML), 0o600))
	env := func(kv ...string) func(string) (string, bool) {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	cases := map[string]struct {
		start   Temporal
		env     func(string) (string, bool)
		want    Temporal
		wantErr string
	}{
		"the default profile fills what is empty": {
			env:  env(EnvConfigFile, file),
			want: Temporal{Address: "default.example:7233", Namespace: "default-ns"},
		},
		"relman's own values win": {
			start: Temporal{Address: "mine:7233"},
			env:   env(EnvConfigFile, file, EnvProfile, "cloud"),
			want:  Temporal{Address: "mine:7233", Namespace: "ns.acct", APIKey: "key-from-profile"},
		},
		"a profile's TLS files": {
			env: env(EnvConfigFile, file, EnvProfile, "mtls"),
			want: Temporal{Address: "mtls.example:7233", TLS: true, TLSCertPath: "/certs/client.pem",
				TLSKeyPath: "/certs/client.key", TLSServerName: "mtls.internal"},
		},
		"a named profile the file lacks": {
			env:     env(EnvConfigFile, file, EnvProfile, "nope"),
			wantErr: "unable to find profile nope",
		},
		"no file: nothing changes": {
			start: Temporal{Namespace: "x"},
			env:   env(EnvConfigFile, filepath.Join(t.TempDir(), "missing.toml")),
			want:  Temporal{Namespace: "x"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := tc.start
			err := got.ApplyProfile(tc.env)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
