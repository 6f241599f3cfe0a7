#!/bin/sh
# Install the system programs pit runs (gpg, mairix, rsync) where missing.
# Needs root (or sudo) only when something is missing.
set -e
missing=""
command -v gpg    >/dev/null 2>&1 || missing="$missing gnupg"
command -v mairix >/dev/null 2>&1 || missing="$missing mairix"
command -v rsync  >/dev/null 2>&1 || missing="$missing rsync"
[ -z "$missing" ] && exit 0
echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing
