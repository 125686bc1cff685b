#!/usr/bin/env bash
# Installs the Debian packages rwexport needs to build, test and run its demo.
# Idempotent: installs only what is missing. Needs root (or sudo) and Debian's archive.
set -euo pipefail

packages=(
  bazel-bootstrap g++ clang libclang-rt-14-dev lld pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsnappy-dev libcurl4-openssl-dev libssl-dev libre2-dev
  libsimdjson-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus prometheus-cpp-dev python3-grpcio curl ca-certificates openssl
  # real peers and tools for the tests of live ingest, packaging, parity and the fleet
  victoria-metrics python3-influxdb python3-botocore chromium haproxy lintian dpkg-dev fakeroot
  libmicrohttpd-dev zlib1g-dev yamllint python3-yaml libjemalloc-dev libgoogle-perftools-dev
  # the metrics listener (civetweb), and packaging: the unit check and the package's user
  libcivetweb-dev systemd adduser
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present" >&2
