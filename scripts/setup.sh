#!/usr/bin/env bash
# Installs what netnsd needs on this machine: the system tools it drives (iproute2, nftables,
# ping for tests, unshare and mount for the benchmarks) when they are missing and we are root on Debian, the npm packages, the native
# helper and the build. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in ip:iproute2 tc:iproute2 nft:nftables ping:iputils-ping ss:iproute2 conntrack:conntrack unshare:util-linux mount:mount; do
  tool=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/sbin/$tool" ]; then
    [[ " ${need[*]-} " == *" $pkg "* ]] || need+=("$pkg")
  fi
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need[*]} (install them as root; netnsd reports what is missing in /v1/capabilities)" >&2
  fi
fi

# npm ci when the lockfile matches; it builds better-sqlite3 from source (about a minute).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build:native >/dev/null
npm run --silent build
echo "setup: done"
