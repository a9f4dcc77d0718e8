#!/usr/bin/env bash
# Builds the espeak-ng alignment helper into $AUDIOSAE_CACHE/bin/espeak_align (idempotent).
#
# The helper is a separate program because libespeak-ng is GPL-3.0: audiosae only runs it as a
# subprocess and never links it. Installs the Debian packages espeak-ng and libespeak-ng-dev with
# apt-get when the header or library is missing (needs root or sudo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AUDIOSAE_CACHE:-$HOME/.cache/audiosae}"
SRC="$ROOT/tools/espeak-align/espeak_align.c"
BIN="$CACHE/bin/espeak_align"

say() { printf '\033[1m[espeak-align]\033[0m %s\n' "$*" >&2; }

have_espeak() {
  [[ -f /usr/include/espeak-ng/speak_lib.h ]] && command -v espeak-ng >/dev/null 2>&1 &&
    compgen -G "/usr/lib/*/libespeak-ng.so" >/dev/null
}

install_espeak() {
  local sudo=""
  [[ "$(id -u)" == 0 ]] || sudo="sudo"
  command -v apt-get >/dev/null || { echo "espeak-ng and libespeak-ng-dev are required (no apt-get here: install them with your package manager)" >&2; exit 1; }
  say "installing espeak-ng libespeak-ng-dev with apt-get"
  if ! $sudo apt-get install -y -q espeak-ng libespeak-ng-dev >/dev/null; then
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q espeak-ng libespeak-ng-dev >/dev/null
  fi
}

have_espeak || install_espeak
command -v gcc >/dev/null || { echo "gcc is required to build $SRC" >&2; exit 1; }

# Rebuild only when the source changed (its hash is stored beside the binary).
hash="$(sha256sum "$SRC" | cut -d' ' -f1)"
if [[ -x "$BIN" && -f "$BIN.sha256" && "$(cat "$BIN.sha256")" == "$hash" ]]; then exit 0; fi
mkdir -p "$CACHE/bin"
say "compiling $BIN"
gcc -O2 -Wall -Wextra -o "$BIN.tmp" "$SRC" -lespeak-ng
mv "$BIN.tmp" "$BIN"
echo "$hash" > "$BIN.sha256"
"$BIN" --version >&2
