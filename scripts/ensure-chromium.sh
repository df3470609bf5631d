#!/usr/bin/env bash
# Make sure a headless-capable Chromium is available (used by the battle HTML report test).
#
# Prints the path of the chromium binary. Installs Debian's `chromium` package only when no
# chromium is found (needs root); exits non-zero with a message when it cannot.
set -euo pipefail

find_chromium() {
  local candidate
  for candidate in /usr/bin/chromium chromium chromium-browser; do
    if command -v "$candidate" >/dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

if path="$(find_chromium)"; then
  echo "$path"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-chromium: chromium is not installed and this is not root;" \
       "install it with: sudo apt-get install chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: chromium is not installed and apt-get is not available;" \
       "install chromium with your system's package manager" >&2
  exit 1
fi

echo "ensure-chromium: installing chromium with apt-get ..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >&2 || ! apt-get install -y -qq chromium >&2; then
  echo "ensure-chromium: apt-get could not install chromium" >&2
  exit 1
fi

if path="$(find_chromium)"; then
  echo "$path"
  exit 0
fi
echo "ensure-chromium: chromium was installed but no binary was found on PATH" >&2
exit 1
