#!/usr/bin/env bash
# Copies the directory SUBDIR of MODULE@VERSION from the module cache to DEST
# (writable, so `make clean` and later copies can replace it).
set -euo pipefail
mod="$1" sub="$2" dest="$3"
src="$("$(dirname "$0")/moddir.sh" "$mod")/$sub"
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -r "$src" "$dest"
chmod -R u+w "$dest"
