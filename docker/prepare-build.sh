#!/usr/bin/env bash
# Fill the ignored parts of the build context from this machine (idempotent, takes a second):
#  * docker/wheels/: the CPU torch wheel, so `docker build` installs it from the context instead of a
#    network index (a bare `pip install torch` inside the build would pull the multi-GB CUDA build). pip
#    is asked for torch==$TORCH_VERSION; the wheel is kept only if it is the +cpu build, else the
#    Dockerfile falls back to the PyTorch CPU index.
#  * docker/certs/: the extra CA certificates this machine trusts (/usr/local/share/ca-certificates), for
#    builds behind a TLS-intercepting proxy. They are used by pip during the build only, never copied into
#    the final image. Set TRAINYARD_BUILD_CA_DIR to take them from elsewhere, or to /nonexistent for none.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PIP="${PIP:-}"
if [ -z "$PIP" ]; then
  if [ -x .venv/bin/pip ]; then PIP=.venv/bin/pip; else PIP="python3 -m pip"; fi
fi

mkdir -p docker/wheels docker/certs
if ls docker/wheels/torch-"$TORCH_VERSION"+cpu-*.whl >/dev/null 2>&1; then
  echo "prepare-build: torch wheel present: $(basename "$(ls docker/wheels/torch-"$TORCH_VERSION"+cpu-*.whl)")"
else
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if $PIP download -q "torch==$TORCH_VERSION" --no-deps --only-binary=:all: \
       --platform manylinux_2_28_x86_64 --python-version 3.11 -d "$tmp" 2>"$tmp/err"; then
    wheel="$(ls "$tmp"/torch-*.whl 2>/dev/null | head -1)"
    case "$wheel" in
      *+cpu-*) cp "$wheel" docker/wheels/ && echo "prepare-build: copied $(basename "$wheel") to docker/wheels/" ;;
      *) echo "prepare-build: pip offered $(basename "${wheel:-none}"), not a +cpu wheel: the build uses the CPU index" ;;
    esac
  else
    echo "prepare-build: no torch wheel from pip ($(tail -1 "$tmp/err")): the build uses the CPU index"
  fi
fi

ca_dir="${TRAINYARD_BUILD_CA_DIR:-/usr/local/share/ca-certificates}"
find docker/certs -name '*.crt' -delete
if [ -d "$ca_dir" ]; then
  n=0
  while IFS= read -r crt; do
    cp "$crt" "docker/certs/$(basename "$crt")"; n=$((n + 1))
  done < <(find "$ca_dir" -name '*.crt' -type f)
  [ "$n" -gt 0 ] && echo "prepare-build: $n extra CA certificate(s) from $ca_dir for the build"
fi
exit 0
