#!/usr/bin/env bash
# Run a command inside a private D-Bus session that has a real Secret Service: a throwaway GNOME keyring,
# unlocked, in its own directory (RELIABILITY.md, "A real Secret Service on headless Linux").
# Without dbus-run-session or gnome-keyring-daemon the command runs as it is (keyring tests then skip,
# unless KITE_REQUIRE_KEYRING=1 makes them fail).
set -euo pipefail
if ! command -v dbus-run-session >/dev/null || ! command -v gnome-keyring-daemon >/dev/null; then
  exec "$@"
fi
keyring_home=$(mktemp -d)
chmod 700 "$keyring_home"
trap 'rm -rf "$keyring_home"' EXIT
export KITE_KEYRING_HOME="$keyring_home"
dbus-run-session -- bash -c '
  printf "throwaway-test-keyring" | HOME="$KITE_KEYRING_HOME" XDG_DATA_HOME="$KITE_KEYRING_HOME/data" \
    gnome-keyring-daemon --unlock --components=secrets >/dev/null
  exec "$@"' kite-tests "$@" 2> >(grep -v "Failed to set fd limit" >&2)
