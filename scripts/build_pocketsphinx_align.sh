#!/usr/bin/env bash
# Installs the pocketsphinx alignment helper of `audiosae align` (idempotent):
#   - PyPI pocketsphinx==5.1.1 (BSD-2-Clause; the wheel bundles the library, the en-us acoustic
#     model and the CMU dictionary) into the project venv $VENV (default $AUDIOSAE_CACHE/venv);
#   - tools/pocketsphinx-align/pocketsphinx_align.py as $AUDIOSAE_CACHE/bin/pocketsphinx_align,
#     with that venv's Python on its #! line.
# A second run changes nothing. Needs the venv that `./audiosae.sh setup` creates.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AUDIOSAE_CACHE:-$HOME/.cache/audiosae}"
VENV="${VENV:-$CACHE/venv}"
VERSION="5.1.1"
SRC="$ROOT/tools/pocketsphinx-align/pocketsphinx_align.py"
BIN="$CACHE/bin/pocketsphinx_align"

say() { printf '\033[1m[pocketsphinx-align]\033[0m %s\n' "$*" >&2; }

[[ -x "$VENV/bin/python" ]] || { echo "$VENV/bin/python is missing: run ./audiosae.sh setup (it creates the venv)" >&2; exit 1; }
have="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pocketsphinx"))' 2>/dev/null || true)"
if [[ "$have" != "$VERSION" ]]; then
  say "installing pocketsphinx==$VERSION into $VENV"
  # --no-deps: its one dependency, sounddevice, is only imported for microphone input.
  "$VENV/bin/pip" install -q --no-deps --only-binary :all: "pocketsphinx==$VERSION"
fi

# Reinstall the script only when it or the venv changed.
stamp="$(sha256sum "$SRC" | cut -d' ' -f1) $VENV"
if [[ -x "$BIN" && -f "$BIN.stamp" && "$(cat "$BIN.stamp")" == "$stamp" ]]; then exit 0; fi
mkdir -p "$CACHE/bin"
{ echo "#!$VENV/bin/python"; cat "$SRC"; } > "$BIN.tmp"
chmod +x "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$stamp" > "$BIN.stamp"
"$BIN" --version >&2
