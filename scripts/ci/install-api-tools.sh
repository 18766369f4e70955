#!/usr/bin/env bash
# Installs what the api's tests run besides Node: promtool (Debian package prometheus), for
# services/api/test/metrics.test.ts, which fails under CI=true without it.
# Idempotent: does nothing when promtool is already on PATH.
# Usage: sudo scripts/ci/install-api-tools.sh
set -euo pipefail

log() { printf 'install-api-tools: %s\n' "$*"; }

if command -v promtool >/dev/null; then
  log "promtool already present ($(promtool --version 2>&1 | head -n 1))"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log "apt-get install prometheus (for promtool)"
# An up-to-date index first: CI images often ship without one.
apt-get update -qq
# policy-rc.d on CI images keeps the prometheus service from starting; only promtool is needed.
apt-get install -y -qq --no-install-recommends prometheus >/dev/null
log "promtool installed ($(promtool --version 2>&1 | head -n 1))"
