#!/usr/bin/env bash
# build-deps.sh -- install what the default build needs beyond cargo and a
# C compiler: ISA-L is built from source into the binary (crate isal-sys,
# feature `static`), which runs autotools and assembles with nasm.
#
# Usage: bash scripts/build-deps.sh
#
# Installs the Debian packages nasm, autoconf, automake, libtool and make
# with apt-get when one is missing (as root, or through sudo); does nothing
# when all are there. On another system, install the same tools by hand.
set -euo pipefail
missing=""
for tool in nasm:nasm autoreconf:autoconf automake:automake libtoolize:libtool make:make; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool#*:}"
done
[ -z "$missing" ] && exit 0
echo "build-deps.sh: installing$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing >&2 || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $missing >&2; }
