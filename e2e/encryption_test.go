package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/relman/relman/internal/codec"
	"github.com/relman/relman/surface/cli"
)

// TestPayloadEncryption runs a manager, builder and host with an
// encryption key file on their own queue: the history Temporal stores holds
// ciphertext, and a CLI with the key reads the transaction as usual.
func TestPayloadEncryption(t *testing.T) {
	line, err := codec.NewKeyLine("k1")
	require.NoError(t, err)
	keys := filepath.Join(env.Root, "enc", "payload.keys")
	require.NoError(t, os.MkdirAll(filepath.Dir(keys), 0o755))
	require.NoError(t, os.WriteFile(keys, []byte(line+"\n"), 0o600))
	dir, queue := miniStack(t, "enc", "temporal: {encryption_key_file: payload.keys}\n", `listen_port: 0
auth: {anonymous: true}
environments: {test: {}}
projects: {shop: {targets: [web]}}
`, []string{"test"}, "--encryption-key-file", keys)
	reg := queue + "-registry"

	// The registry's payloads are encrypted too: read it with the key.
	out := ""
	require.Eventually(t, func() bool {
		out, _, _ = relman(t, "registrations", "--registry-id", reg, "--encryption-key-file", keys)
		return strings.Contains(out, "builder-enc") && strings.Contains(out, "host-enc")
	}, 60*time.Second, 200*time.Millisecond, "registrations: %s", out)

	out, errOut, code := relman(t, "release", "shop", "--env", "test", "--wait", "--manager-queue", queue, "--encryption-key-file", keys)
	require.Equal(t, cli.ExitOK, code, errOut)
	txid := strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "transaction ")
	assert.Contains(t, out, "INSTALL_COMPLETED")
	assert.FileExists(t, filepath.Join(dir, "host", "test", "www", "index.html"))

	// What Temporal stores: every payload is ciphertext.
	h := history(t, txid)
	payloads := 0
	for _, e := range h.GetEvents() {
		if a := e.GetWorkflowExecutionStartedEventAttributes(); a != nil {
			for _, p := range a.GetInput().GetPayloads() {
				payloads++
				assert.Equal(t, codec.Encoding, string(p.GetMetadata()["encoding"]))
				assert.NotContains(t, string(p.GetData()), `"project"`)
			}
		}
		if a := e.GetActivityTaskCompletedEventAttributes(); a != nil {
			for _, p := range a.GetResult().GetPayloads() {
				payloads++
				assert.Equal(t, codec.Encoding, string(p.GetMetadata()["encoding"]))
			}
		}
		if e.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
			for _, p := range e.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads() {
				payloads++
				assert.Equal(t, codec.Encoding, string(p.GetMetadata()["encoding"]))
			}
		}
	}
	assert.GreaterOrEqual(t, payloads, 4)

	// Without the key the detail cannot be read; with it, it can.
	_, errOut, code = relman(t, "status", txid, "-o", "json", "--manager-queue", queue)
	assert.NotEqual(t, cli.ExitOK, code, "no key, no detail")
	assert.NotContains(t, errOut, "not a relman transaction of this manager", "refused for the key, not the queue")
	out, errOut, code = relman(t, "status", txid, "--encryption-key-file", keys, "--manager-queue", queue)
	require.Equal(t, cli.ExitOK, code, errOut)
	assert.Equal(t, "INSTALL_COMPLETED\n", out)
}
