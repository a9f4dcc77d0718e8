"""Runs one command and, when it exits, ends every process it left behind.

    python3 scripts/reap.py [--grace SECONDS] -- COMMAND [ARGS...]

The notebook runner wraps each nbconvert call in this. A Jupyter kernel is started in a session
of its own, and evcxr starts cargo and rustc below it, so a kernel that nbconvert gave up on
(for example after a start-up time-out) would otherwise keep compiling in its build directory
while the next notebook starts. This process registers as the child subreaper (Linux
PR_SET_CHILD_SUBREAPER), so every orphan of the command is re-parented to it instead of to init
and can still be found. After the command exits, all remaining descendants get SIGTERM, then
SIGKILL after the grace period. Exits with the command's status (128 + N if killed by signal N).
"""

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def parent_pids():
    """{pid: parent pid} of every process, read once from /proc/*/stat (field 4 is the parent)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the process exited while we looked
        # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(root):
    parents = parent_pids()
    out, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - out
        out |= frontier
    return out


def describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120] or f"pid {pid}"
    except OSError:
        return f"pid {pid}"


def reap_zombies():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_all(grace):
    """SIGTERM every descendant, wait up to `grace` seconds, SIGKILL what is left."""
    me = os.getpid()
    left = descendants(me)
    if not left:
        return
    print(f"[reap] ending {len(left)} process(es) left behind:", file=sys.stderr)
    for pid in sorted(left):
        print(f"[reap]   {pid} {describe(pid)}", file=sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 10)
        while time.monotonic() < deadline:
            reap_zombies()
            left = descendants(me)
            if not left:
                return
            time.sleep(0.1)
    print(f"[reap] still alive after SIGKILL: {sorted(left)}", file=sys.stderr)


def main(argv):
    grace = 5.0
    if argv[:1] == ["--grace"]:
        grace, argv = float(argv[1]), argv[2:]
    if argv[:1] != ["--"] or len(argv) < 2:
        sys.exit(__doc__)
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"reap.py: prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(ctypes.get_errno())}")
    child = subprocess.Popen(argv[1:])

    def forward(signum, _frame):
        child.send_signal(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    status = child.wait()
    end_all(grace)
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main(sys.argv[1:])
