#!/usr/bin/env bash
# Installs the real tools that test/deploy/*.test.ts runs, on a fresh Debian 12 machine:
#   the linters (shellcheck, yamllint), cloud-init (for `cloud-init schema`), promtool (package
#   prometheus), jq (for deploy/entra/register-api.sh)
#   and the Bicep CLI, taken from the NuGet package Azure.Bicep.CommandLine.linux-x64
#   (a self-contained binary) through the dotnet CLI's configured NuGet source.
# Idempotent and fast when everything is already there: each step checks before it acts.
# Usage: sudo scripts/ci/install-deploy-tools.sh      (BICEP_VERSION=0.49.2 by default)
set -euo pipefail
# shellcheck source=apt.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

BICEP_VERSION="${BICEP_VERSION:-0.49.2}"
TOOLS_DIR="${MSI_PAIR_TOOLS_DIR:-/opt/msi-pair-tools}"
BICEP_LINK="${BICEP_LINK:-/usr/local/bin/bicep}"

log() { printf 'install-deploy-tools: %s\n' "$*"; }

install_apt_tools() {
  # jq: used by deploy/entra/register-api.sh; curl: the cloud-init scripts run against a stand-in IMDS
  apt_install_missing install-deploy-tools shellcheck=shellcheck yamllint=yamllint cloud-init=cloud-init \
    promtool=prometheus jq=jq curl=curl
}

bicep_installed_version() {
  # `bicep --version` prints e.g. "Bicep CLI version 0.49.2 (abcdef0123)".
  "$BICEP_LINK" --version 2>/dev/null | sed -n 's/^Bicep CLI version \([0-9.]*\).*/\1/p'
}

install_bicep() {
  if [ -x "$BICEP_LINK" ] && [ "$(bicep_installed_version)" = "$BICEP_VERSION" ]; then
    log "bicep $BICEP_VERSION already at $BICEP_LINK"
    return
  fi
  command -v dotnet >/dev/null || { log "dotnet CLI is required to fetch Bicep from NuGet"; exit 1; }
  local pkg_dir="$TOOLS_DIR/nuget/azure.bicep.commandline.linux-x64/$BICEP_VERSION"
  if [ ! -d "$pkg_dir" ]; then
    # A throwaway project whose only purpose is a PackageDownload: restore fetches the package
    # into $TOOLS_DIR/nuget without building anything or adding a reference.
    local proj
    proj="$(mktemp -d)"
    cat >"$proj/fetch-bicep.csproj" <<CSPROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net$(dotnet --version | cut -d. -f1).0</TargetFramework>
  </PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="Azure.Bicep.CommandLine.linux-x64" Version="[$BICEP_VERSION]" />
  </ItemGroup>
</Project>
CSPROJ
    log "restoring Azure.Bicep.CommandLine.linux-x64 $BICEP_VERSION into $TOOLS_DIR/nuget"
    DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
      dotnet restore "$proj/fetch-bicep.csproj" --packages "$TOOLS_DIR/nuget" >/dev/null
    rm -rf "$proj"
  fi
  local bin
  bin="$(find "$pkg_dir" -type f -name bicep -path '*linux-x64*' | head -n 1)"
  [ -n "$bin" ] || { log "no bicep binary found under $pkg_dir"; exit 1; }
  chmod 0755 "$bin"
  ln -sfn "$bin" "$BICEP_LINK"
  log "bicep $(bicep_installed_version) linked at $BICEP_LINK"
}

install_apt_tools
install_bicep
