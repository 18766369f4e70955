#!/usr/bin/env bash
# Installs what the api's tests run besides Node: promtool (Debian package prometheus), for
# services/api/test/metrics.test.ts, which fails under CI=true without it.
# Idempotent: does nothing when promtool is already on PATH.
# Usage: sudo scripts/ci/install-api-tools.sh
set -euo pipefail
# shellcheck source=apt.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

apt_install_missing install-api-tools promtool=prometheus
