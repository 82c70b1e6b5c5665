#!/usr/bin/env bash
# Installs the Debian packages asrd needs to build and test. Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
      libavformat-dev libavcodec-dev libswresample-dev libavutil-dev
      libopenblas-dev libdnnl-dev libjansson-dev libcmocka-dev libcurl4-openssl-dev libssl-dev zlib1g-dev
      libmicrohttpd-dev libsqlite3-dev libpq-dev postgresql libopencc-dev
      python3-venv sox libsox-fmt-all ffmpeg espeak-ng unzip curl strace
      dpkg-dev systemd # make deb and its test: dpkg-shlibdeps, systemd-analyze verify
      chromium chromium-driver fonts-wqy-microhei)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
