#!/usr/bin/env bash
# Prints the module cache directory of MODULE@VERSION, downloading it first.
# Runs outside this module so that the download never touches go.mod/go.sum.
set -euo pipefail
mod="$1"
go="${GO:-go}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
dir=$(GOFLAGS=-mod=mod "$go" mod download -json "$mod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "go mod download $mod gave no module directory" >&2
  exit 1
fi
echo "$dir"
