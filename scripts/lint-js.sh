#!/usr/bin/env bash
# `make lint`'s JavaScript half: eslint (pinned in package-lock.json, config in eslint.config.mjs) over the web
# UI's modules in services/api/static/js (vendored uPlot excluded). Installs eslint with `npm ci` when missing.
# Without npm (or when `npm ci` fails, e.g. offline) it says so and skips; TRAINYARD_REQUIRE_JS_LINT=1 makes
# that an error instead.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  echo "lint-js: SKIPPED: $1" >&2
  [ "${TRAINYARD_REQUIRE_JS_LINT:-0}" = "1" ] && exit 1
  exit 0
}

command -v npm >/dev/null 2>&1 || skip "npm not found (install Node.js 18+ with npm to lint the UI's JavaScript)"
if [ ! -x node_modules/.bin/eslint ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "lint-js: npm ci (eslint)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null || skip "npm ci failed (no access to the npm registry?)"
fi
node_modules/.bin/eslint --max-warnings=0 .
echo "lint-js: eslint clean"
