#!/usr/bin/env bash
# BROWSER for the end-to-end sign-in tests: a real, headless Chromium that opens the consent page and lets
# it run (redirects, the auto-submitting form) until Kite's listener has answered. Test use only:
# --ignore-certificate-errors is for the Microsoft identity emulator's throwaway certificate.
set -euo pipefail
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
exec_chromium=$(command -v chromium || command -v chromium-browser)
"$exec_chromium" --headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --disable-dev-shm-usage \
  --user-data-dir="$profile" --ignore-certificate-errors --virtual-time-budget=15000 \
  --dump-dom "$1" >/dev/null 2>&1
