#!/usr/bin/env bash
# Build the Debian base image for machines that cannot pull images (offline path, CI):
#   debootstrap a minimal bookworm root filesystem and `docker import` it as $TRAINYARD_BASE_IMAGE.
# Usage: docker/build-base-image.sh [--force]
# Env: TRAINYARD_BASE_IMAGE (default trainyard/debian:bookworm), DEBIAN_MIRROR (default: the host's apt
# mirror, else deb.debian.org), DEBIAN_SUITE (default bookworm).
set -euo pipefail

IMAGE="${TRAINYARD_BASE_IMAGE:-trainyard/debian:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

if [ "$FORCE" = 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already present (--force to rebuild)"
  exit 0
fi

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  # Reuse the host's mirror when it has one (deb822 or one-line sources), else the public one.
  DEBIAN_MIRROR="$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')" || true
  DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
fi
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-${DEBIAN_MIRROR%/debian*}/debian-security}"

if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi

ROOTFS="$(mktemp -d "${TMPDIR:-/var/tmp}/trainyard-rootfs.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap $SUITE from $DEBIAN_MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR" \
  > "$ROOTFS.log" 2>&1 || { tail -30 "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"

cat > "$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $DEBIAN_MIRROR $SUITE main
deb $DEBIAN_MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SOURCES
# Keep the image small like the official slim images: no docs, no caches.
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'NODOC'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
NODOC
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
  > "$ROOTFS/etc/apt/apt.conf.d/01-norecommends"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*

echo "docker import -> $IMAGE"
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  --message "debootstrap $SUITE minbase" - "$IMAGE"
docker image ls "$IMAGE"
