// Package examples ships the example configs and the example project inside
// the relman binary, so `relman dev` works from any directory.
package examples

import "embed"

// FS holds the example configs and the template project.
//
//go:embed manager.yaml builder.yaml installer-a.yaml installer-b.yaml template
var FS embed.FS
