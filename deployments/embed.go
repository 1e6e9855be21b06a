// Package deployments holds what a platform team copies to run relman:
// systemd units (systemd/), a Helm chart (helm/relman/), a Dockerfile
// (docker/), a Compose stack (compose/), and the operations guide
// (README.md).
//
// The Go side is small on purpose. The systemd units are rendered from one
// template embedded here, so the units checked in under systemd/ and the ones
// `relman generate` writes cannot drift apart; the tests in this directory
// check every file under it (systemd-analyze, helm lint and template, strict
// Kubernetes and Compose decoding, relman's own config loader).
package deployments

import "embed"

// Systemd holds systemd/relman.service.tmpl, the one source of every relman
// unit. Render it with SystemdUnit.
//
//go:embed systemd/relman.service.tmpl
var Systemd embed.FS
