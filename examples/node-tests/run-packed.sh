#!/usr/bin/env bash
# `npm run test:package`: this example as a user of the package runs it. Packs
# the checkout (npm pack: prepack builds the memory engine and lib/), copies
# the example into a temporary folder, installs the tarball there as a
# project would (its dependencies and vitest from the registry) and runs the
# suite. Nothing of the checkout is on the way: the project sees only what
# the tarball holds.
set -euo pipefail; cd "$(dirname "$0")"
work=$(mktemp -d "${TMPDIR:-/tmp}/hyperlab-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball=$(cd ../.. && npm pack --json --pack-destination "$work" | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[0].filename))')
echo "packed $tarball ($(du -h "$work/$tarball" | cut -f1)), sha256 $(sha256sum "$work/$tarball" | cut -d' ' -f1)"
mkdir "$work/project"
cp -R package.json vitest.config.js test ../node-api/run-container.mjs "$work/project/"
cd "$work/project"
npm install --no-audit --no-fund "../$tarball"
# The boot snapshot goes where an installed package keeps it (node_modules/.cache/hyperlab), not where this shell says.
env -u HYPERLAB_CACHE npx vitest run
