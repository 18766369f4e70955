#!/usr/bin/env bash
# Installs what test/clients/*.test.ts runs besides Node: Python's azure-identity as Debian ships it
# (python3-azure, importable by /usr/bin/python3 only), for test/clients/python.test.ts, which fails
# under CI=true without it. The .NET client needs the .NET SDK (dotnet 8 or later) and a NuGet feed
# that serves Azure.Identity 1.21.0; neither is a Debian package, so this script only checks for dotnet.
# Idempotent: does nothing when /usr/bin/python3 can already import azure.identity.
# Usage: sudo scripts/ci/install-client-tools.sh
set -euo pipefail

log() { printf 'install-client-tools: %s\n' "$*"; }

if /usr/bin/python3 -c 'import azure.identity' 2>/dev/null; then
  log 'python3-azure already present'
else
  log 'apt-get install python3-azure'
  export DEBIAN_FRONTEND=noninteractive
  # Other installers may hold apt's locks on a shared machine: wait for them rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends python3-azure >/dev/null
fi
/usr/bin/python3 -c 'import azure.identity, sys; print("install-client-tools: azure-identity", azure.identity.__version__, "on Python", sys.version.split()[0])'

if ! command -v dotnet >/dev/null; then
  log 'dotnet not found: test/clients/dotnet.test.ts needs the .NET SDK (8 or later) on PATH'
  exit 1
fi
