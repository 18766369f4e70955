# shellcheck shell=bash
# Sourced by scripts/ci/install-*.sh: installs the Debian packages whose commands are missing.
# usage: apt_install_missing LABEL COMMAND=PACKAGE...   (COMMAND may be an absolute path)

apt_install_missing() {
  local label=$1
  shift
  local missing=() pair command
  for pair in "$@"; do
    command=${pair%%=*}
    if [[ $command == /* ]]; then
      [ -x "$command" ] && continue
    else
      command -v "$command" >/dev/null && continue
    fi
    missing+=("${pair#*=}")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    printf '%s: apt tools already present\n' "$label"
    return
  fi
  printf '%s: apt-get install %s\n' "$label" "${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # An up-to-date index first: CI machines may ship without one.
  apt-get update -qq
  # No recommends: docker.io still brings containerd, runc, tini and iptables. policy-rc.d on CI
  # machines keeps packaged services (dockerd, prometheus) from starting; the scripts start what they need.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
