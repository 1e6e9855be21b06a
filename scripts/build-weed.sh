#!/usr/bin/env bash
# Builds SeaweedFS's weed binary at MODULE@VERSION into OUT. `go install`
# refuses the module (its go.mod has a replace directive), so it is built as
# a main module from a writable copy of its module cache directory.
set -euo pipefail
mod="$1" out="$2"
go="${GO:-go}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
src="$("$(dirname "$0")/moddir.sh" "$mod")"
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src" "$work/seaweedfs"
chmod -R u+w "$work/seaweedfs"
cd "$work/seaweedfs"
mkdir -p "$(dirname "$out")"
GOFLAGS=-buildvcs=false "$go" build -o "$out.tmp" ./weed
mv "$out.tmp" "$out"
