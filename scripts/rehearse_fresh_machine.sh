#!/usr/bin/env bash
# Rehearses a new user's first `./audiosae.sh test`: a fresh clone of the committed HEAD, an empty
# AUDIOSAE_CACHE (venv, model, corpus sources, the evcxr install and every evcxr build directory
# start from nothing), the page cache dropped when we may, and no evcxr process alive. Prints the
# time of each phase at the end; the full, timestamped log goes to $WORK/test.log.
#
#   scripts/rehearse_fresh_machine.sh [--reuse-evcxr FROM_CACHE] [WORK]
#
# WORK defaults to a new folder under /tmp and must not exist yet. --reuse-evcxr copies only the
# installed evcxr_jupyter binary from another cache (it is a 7- to 22-minute compile on 2 cores that
# does not change between runs); its build directories still start empty.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
reuse=""
if [[ "${1:-}" == "--reuse-evcxr" ]]; then reuse="$2"; shift 2; fi
WORK="${1:-/tmp/audiosae-rehearsal-$(date +%Y%m%d-%H%M%S)}"
[[ -e "$WORK" ]] && { echo "rehearse: $WORK exists; give a new folder" >&2; exit 1; }
if pgrep -x evcxr_jupyter >/dev/null; then
  echo "rehearse: an evcxr_jupyter process is running (pids: $(pgrep -x evcxr_jupyter | tr '\n' ' '));" \
    "end it first, so that no kernel is warm" >&2
  exit 1
fi

mkdir -p "$WORK/cache"
git clone -q "$ROOT" "$WORK/audiosae"
if [[ -n "$reuse" ]]; then
  mkdir -p "$WORK/cache/tools"
  cp -a "$reuse/tools/." "$WORK/cache/tools/"
fi
if sync && echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
  page_cache="dropped"
else
  page_cache="not dropped (needs root)"
fi

stamp() { while IFS= read -r line; do printf '%(%H:%M:%S)T %s\n' -1 "$line"; done; }
start=$(date +%s)
set +e
(cd "$WORK/audiosae" && AUDIOSAE_CACHE="$WORK/cache" ./audiosae.sh test) 2>&1 | stamp | tee "$WORK/test.log"
status=${PIPESTATUS[0]}
set -e
total=$(($(date +%s) - start))

# Phase times, from the timestamps of the lines that open each phase.
echo
echo "rehearsal in $WORK (page cache $page_cache, evcxr install ${reuse:+reused from $reuse}${reuse:-built})"
python3 - "$WORK/test.log" "$total" "$status" <<'PY'
import re, sys
log, total, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def secs(t):
    h, m, s = map(int, t.split(":")); return 3600 * h + 60 * m + s
marks = []
for line in open(log, errors="replace"):
    m = re.match(r"(\d\d:\d\d:\d\d) (.*)", line.rstrip("\n"))
    if not m:
        continue
    t, text = secs(m.group(1)), re.sub(r"\x1b\[[0-9;]*m", "", m.group(2))
    for key, name in [("[audiosae] creating", "venv"), ("[audiosae] fetching", "model, corpus sources"),
                      ("[audiosae] building", "build"), ("[audiosae] cargo fmt", "fmt, clippy, tests"),
                      ("[audiosae] every notebook", "notebook runner set-up"),
                      ("[notebooks] installing evcxr", "evcxr install"),
                      ("[notebooks] running", "notebook " + text.split()[-1] if "running" in text else "")]:
        if text.startswith(key):
            marks.append((t, name))
    if text.startswith("notebooks:"):
        marks.append((t, "end"))
        print("  " + text)
if not marks:
    sys.exit("no phase markers found in the log")
t0 = marks[0][0]
for (t, name), (t_next, _) in zip(marks, marks[1:] + [(t0 + total, "end")]):
    if name != "end":
        print(f"  {name:<38} {(t_next - t) % 86400:6d} s")
print(f"  {'total':<38} {total:6d} s  (exit {status})")
PY
exit "$status"
