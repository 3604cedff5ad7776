#!/bin/sh
# Installs the Debian packages the test bed and the tests need (idempotent; needs root for apt).
# Go (1.26) and Python 3.11 are expected on the machine already.
set -eu
PKGS="postgresql-15 postgresql-client-15 docker.io debootstrap openssl iproute2 util-linux procps containerd runc containernetworking-plugins"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "prereqs: missing Debian packages:$missing; install them as root (sudo make prereqs)" >&2
    exit 1
  fi
  echo "prereqs: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
for c in go python3.11 git make; do
  command -v "$c" >/dev/null || { echo "prereqs: $c is missing; install it first" >&2; exit 1; }
done
echo "prereqs: ok"
