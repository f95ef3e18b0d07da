#!/bin/sh
# Installs the Debian packages Plexus builds and tests with, if missing.
set -e
PKGS="gcc make pkg-config libopenblas-dev libcmocka-dev libdlpack-dev libcjson-dev zlib1g-dev libdnnl-dev"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
