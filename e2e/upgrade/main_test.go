//go:build upgrade

// Package upgrade is the upgrade test (`make test-upgrade`, build tag
// `upgrade`): the previous release of relman (PREVIOUS_RELEASE in the
// Makefile, built from git into RELMAN_PREVIOUS_BIN) runs as separate
// manager, builder and installer processes on a real Temporal dev server
// with releases in flight, and is upgraded to this tree in the order of the
// operations guide (deployments/README.md, "Upgrading relman while releases
// run"), then rolled back and forward again.
package upgrade

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/relman/relman/harness/testenv"
)

var env *testenv.Env

// previous is the relman binary of the previous release.
var previous string

func TestMain(m *testing.M) {
	previous = os.Getenv("RELMAN_PREVIOUS_BIN")
	if previous == "" {
		fmt.Fprintln(os.Stderr, "upgrade: RELMAN_PREVIOUS_BIN is not set: run `make test-upgrade`, which builds the previous release (PREVIOUS_RELEASE in the Makefile) into bin/relman-previous and sets it")
		os.Exit(1)
	}
	if _, err := os.Stat(previous); err != nil {
		fmt.Fprintf(os.Stderr, "upgrade: RELMAN_PREVIOUS_BIN: %v: run `make bin/relman-previous`\n", err)
		os.Exit(1)
	}
	os.Exit(testenv.Main(m, testenv.MainOptions{
		Name:         "upgrade",
		RoleLogLevel: "debug",
		Setup:        func(_ context.Context, e *testenv.Env) error { env = e; return nil },
	}))
}
