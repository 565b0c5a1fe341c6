#!/usr/bin/env bash
# The real browser of the dashboard's tests: Debian's chromium at /usr/bin/chromium, driven
# by the Python playwright of the venv (its wheel ships the driver; no browser is
# downloaded). Installed with apt when missing; idempotent (a present browser costs nothing).
set -euo pipefail

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "chromium is missing (the dashboard's browser tests need it). Install it: sudo apt-get install -y chromium"
  fi
  apt_install() { apt-get install -y -o DPkg::Lock::Timeout=600 chromium; }
  say "installing chromium with apt (the dashboard's browser tests; about a minute)"
  # A fresh machine may have no package lists yet: update once, then try again.
  if ! apt_install >/tmp/ethgw-chromium-apt.log 2>&1; then
    apt-get update -o DPkg::Lock::Timeout=600 >>/tmp/ethgw-chromium-apt.log 2>&1 || true
    apt_install >>/tmp/ethgw-chromium-apt.log 2>&1 \
      || { tail -n 20 /tmp/ethgw-chromium-apt.log >&2; die "apt-get install chromium failed"; }
  fi
fi
say "chromium: $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
