#!/bin/sh
# The example project's build: what a real project's make or mvn would do.
set -eu
rm -rf dist
mkdir -p dist/static
cp src/index.html dist/
cp src/app.conf dist/
echo "built from ${RELMAN_COMMIT:-unknown} for transaction ${RELMAN_TRANSACTION:-none}" > dist/BUILD_INFO
echo "body { font-family: sans-serif; }" > dist/static/site.css
echo "build of ${RELMAN_PROJECT:-template} done"
