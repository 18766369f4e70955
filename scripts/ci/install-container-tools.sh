#!/usr/bin/env bash
# Installs what test/containers/*.test.ts runs, on a fresh Debian 12 machine, and starts the engine:
#   docker.io (dockerd 20.10, containerd, runc), docker-compose 1.29 (Compose v1, Python),
#   debootstrap (scripts/ci/make-base-images.sh builds node:24-bookworm-slim with it, as no
#   registry can be reached here), prometheus (promtool; its binary also goes into the stand-in
#   prom/prometheus image), yamllint and shellcheck.
# dockerd is started in the background when `docker info` does not answer, and left running for the
# tests (which leave no container behind). Its log: $DOCKERD_LOG (default /var/log/msi-pair-dockerd.log).
# Idempotent: each step checks before it acts.
# Usage: sudo scripts/ci/install-container-tools.sh
set -euo pipefail
# shellcheck source=apt.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/msi-pair-dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

log() { printf 'install-container-tools: %s\n' "$*"; }

install_apt_tools() {
  apt_install_missing install-container-tools /usr/sbin/dockerd=docker.io docker-compose=docker-compose \
    debootstrap=debootstrap promtool=prometheus yamllint=yamllint shellcheck=shellcheck
}

# The docker CLI that answers: a preinstalled newer client may come first in PATH; both talk to dockerd.
docker_cli() {
  if command -v docker >/dev/null; then docker "$@"; else /usr/bin/docker "$@"; fi
}

# A daemon that was killed (as at the end of a session, before CI runs on the same machine) leaves
# its pid files behind; dockerd refuses to start while one names a live process, and a pid may have
# been reused by then. Remove those that do not name the daemon they belong to.
remove_stale_pid_file() {
  local file=$1 name=$2 pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file" 2>/dev/null || true)"
  # Alive: that pid runs the daemon and is no zombie (a killed daemon nobody reaped keeps its pid).
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$name" ] &&
    [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || true)" != Z ]; then
    return 0
  fi
  log "removing stale $file (pid ${pid:-none} is no $name)"
  rm -f "$file"
}

start_dockerd() {
  if docker_cli info >/dev/null 2>&1; then
    log "dockerd already answers"
    return
  fi
  remove_stale_pid_file /var/run/docker.pid dockerd
  remove_stale_pid_file /var/run/docker/containerd/containerd.pid containerd
  log "starting dockerd (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  # setsid: the daemon outlives this script and whatever process group ran it.
  setsid /usr/sbin/dockerd >>"$DOCKERD_LOG" 2>&1 < /dev/null &
  local dockerd_pid=$!
  local deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
  until docker_cli info >/dev/null 2>&1; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      log "dockerd did not come up; last lines of $DOCKERD_LOG:"
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "dockerd $(docker_cli version --format '{{.Server.Version}}') is up"
}

install_apt_tools
start_dockerd
