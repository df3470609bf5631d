#!/usr/bin/env bash
# Make sure a `redis-server` binary is available (the shared-state tests and benchmarks start
# their own, one per test, on a unix socket in a temp dir).
#
# Why Debian's package: the router talks to Redis through redis-py (a pip package), but no
# package on our Python index ships a redis-server binary, and nothing may be downloaded from
# anywhere else. Debian's `redis-server` is the maintained server build of this machine's
# distribution, installed with its ordinary client (apt-get). The router itself never needs it:
# only the tests, the benchmarks and battles with `state: redis` do.
#
# Prints the path of the binary. Installs `redis-server` with apt-get only when none is found
# (needs root, non-interactive); exits non-zero with a message when it cannot. The package's
# system service is not started (policy-rc.d refuses it): tests run their own servers.
set -euo pipefail

find_redis() {
  local candidate
  for candidate in "${LASSO_REDIS_SERVER:-}" /usr/bin/redis-server redis-server; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if path="$(find_redis)"; then
  echo "$path"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-redis: redis-server is not installed and this is not root;" \
       "install it with: sudo apt-get install redis-server" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-redis: redis-server is not installed and apt-get is not available;" \
       "install redis-server with your system's package manager" >&2
  exit 1
fi

echo "ensure-redis: installing redis-server with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
# Keep the package's init script from starting a system-wide server on port 6379.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
fi
status=0
apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends redis-server >&2 || status=$?
if [ "$made_policy" -eq 1 ]; then
  rm -f "$policy"
fi
if [ "$status" -ne 0 ]; then
  echo "ensure-redis: apt-get could not install redis-server" >&2
  exit 1
fi

if path="$(find_redis)"; then
  echo "$path"
  exit 0
fi
echo "ensure-redis: redis-server was installed but no binary was found on PATH" >&2
exit 1
