"""Forced alignment helper for `audiosae align`: words and phones with pocketsphinx.

Installed by scripts/build_pocketsphinx_align.sh as $AUDIOSAE_CACHE/bin/pocketsphinx_align,
run with the project venv's Python, which holds pocketsphinx (PyPI, BSD-2-Clause) and its en-us
acoustic model and CMU dictionary.

Protocol: one JSON request per stdin line,
    {"id": ID, "pcm": PATH, "words": [WORD, ...]}
where PATH holds raw 16 kHz mono signed 16-bit little-endian samples (audiosae decodes and
resamples), and one JSON answer per stdout line, in order,
    {"id": ID, "ok": true, "frame_s": 0.01, "attempt": N,
     "words": [[WORD, START, END], ...], "phones": [[PHONE, START, END, WORD_INDEX], ...]}
with START/END in frames (END exclusive), WORD_INDEX into "words" (-1 for silence), or
    {"id": ID, "ok": false, "error": REASON}.
Words are the dictionary's (alternative pronunciations `the(2)` are reported as `the`); silence
and fillers are `<sil>`, `[NOISE]`, ...; phones are CMU ARPAbet without stress, SIL for silence.

Options: --dict FILE adds pronunciations (lines `word PH1 PH2 ...`, CMU phones) for words the
CMU dictionary lacks. --version prints the pocketsphinx version.
"""

import json
import os
import sys

# Beam settings tried in turn: pocketsphinx's defaults first, then wider beams, which rescue
# fast or reduced speech whose path the default beams prune away.
ATTEMPTS = [
    {},
    {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80},
    {"beam": 1e-100, "wbeam": 1e-100, "pbeam": 1e-100, "maxhmmpf": -1},
]


def load_extra_dict(path):
    entries = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith(";;"):
                continue
            if len(parts) < 2:
                raise SystemExit(f"{path}:{n}: expected `word PHONE...`")
            entries.append((parts[0].lower(), " ".join(parts[1:])))
    return entries


def decoder(options, extra):
    from pocketsphinx import Decoder

    d = Decoder(lm=None, loglevel="FATAL", **options)
    for word, phones in extra:
        d.add_word(word, phones, True)
    return d


def base_word(name):
    # `the(2)` is the second pronunciation of `the`.
    return name.split("(", 1)[0] if name.endswith(")") else name


def align_once(d, pcm, words):
    d.set_align_text(" ".join(words))
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    if d.hyp() is None:
        raise RuntimeError("no word alignment")
    d.set_alignment()
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    alignment = d.get_alignment()
    if alignment is None:
        raise RuntimeError("no phone alignment")
    out_words, out_phones = [], []
    for w in alignment:
        name = base_word(w.name)
        index = -1
        if not (name.startswith("<") or name.startswith("[")):
            index = len(out_words)
            out_words.append([name, w.start, w.start + w.duration])
        for p in w:
            out_phones.append([p.name, p.start, p.start + p.duration, index])
    return out_words, out_phones


def handle(decoders, extra, req):
    words = [w.lower() for w in req["words"]]
    if not words:
        return {"ok": False, "error": "empty transcript"}
    with open(req["pcm"], "rb") as f:
        pcm = f.read()
    if len(pcm) < 3200:
        return {"ok": False, "error": "audio shorter than 0.1 s"}
    if not decoders:
        decoders.append(decoder(ATTEMPTS[0], extra))
    missing = sorted({w for w in words if decoders[0].lookup_word(w) is None})
    if missing:
        return {
            "ok": False,
            "error": "words not in the pronunciation dictionary: " + " ".join(missing)
            + " (add them with --dict FILE, lines `word PH1 PH2 ...` in CMU ARPAbet)",
        }
    last = "alignment failed"
    for n, options in enumerate(ATTEMPTS):
        if len(decoders) <= n:
            decoders.append(decoder(options, extra))
        try:
            w, p = align_once(decoders[n], pcm, words)
        except RuntimeError as e:
            last = f"{e} (the transcript may not match the audio)"
            continue
        frame_s = 1.0 / float(decoders[n].config["frate"])
        return {"ok": True, "frame_s": frame_s, "attempt": n, "words": w, "phones": p}
    return {"ok": False, "error": last}


def main(argv):
    if "--version" in argv:
        import importlib.metadata

        print("pocketsphinx", importlib.metadata.version("pocketsphinx"))
        return 0
    extra = []
    if "--dict" in argv:
        i = argv.index("--dict")
        if i + 1 >= len(argv):
            raise SystemExit("--dict needs a file")
        extra = load_extra_dict(argv[i + 1])
    decoders = []
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            answer = handle(decoders, extra, req)
        except Exception as e:  # one bad clip must not end the run
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        answer["id"] = req.get("id")
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    sys.exit(main(sys.argv[1:]))
