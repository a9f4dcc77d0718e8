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
    # Words of the CMU dictionary keep its pronunciations; a new word's first pronunciation is
    # `word`, the next ones `word(2)`, `word(3)`, ... as in the CMU dictionary.
    known, count = set(), {}
    for word, phones in extra:
        if word not in count and d.lookup_word(word) is not None:
            known.add(word)
        if word in known:
            continue
        count[word] = count.get(word, 0) + 1
        name = word if count[word] == 1 else f"{word}({count[word]})"
        try:
            d.add_word(name, phones, False)
        except RuntimeError as e:
            print(f"pocketsphinx_align: --dict: `{word} {phones}` left out: {e}", file=sys.stderr)
    return d


def base_word(name):
    # `the(2)` is the second pronunciation of `the`.
    return name.split("(", 1)[0] if name.endswith(")") else name


SAMPLES_PER_FRAME = 160  # 16 kHz audio, 100 frames per second


def is_filler(name):
    return name.startswith("<") or name.startswith("[")


def word_pass(d, pcm, words, cmn):
    """First pass: word segmentation [(name, start, end_exclusive)], fillers included."""
    d.set_align_text(" ".join(words))
    d.set_cmn(cmn)
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    if d.hyp() is None:
        raise RuntimeError("no word alignment")
    return [(s.word, s.start_frame, s.end_frame + 1) for s in d.seg()]


def phone_pass(d, pcm, words, cmn, offset):
    """Both passes on one stretch of audio; [(word, start, end, [(phone, start, end)])]."""
    word_pass(d, pcm, words, cmn)
    d.set_alignment()
    d.set_cmn(cmn)
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    alignment = d.get_alignment()
    if alignment is None:
        raise RuntimeError("no phone alignment")
    out = []
    for w in alignment:
        phones = [(p.name, offset + p.start, offset + p.start + p.duration) for p in w]
        out.append((base_word(w.name), offset + w.start, offset + w.start + w.duration, phones))
    return out


def chunked_phone_pass(d, pcm, segments, cmn):
    """Phone alignment stretch by stretch between the first pass's pauses, then word by word.

    pocketsphinx's state-level pass sometimes fails on a whole clip that its word pass aligned;
    the word segmentation then cuts the clip, and each stretch is aligned on its own (with the
    whole clip's cepstral mean). What lies between the stretches is left as silence."""
    out, run = [], []

    def flush():
        if not run:
            return
        start, end = run[0][1], run[-1][2]
        piece = pcm[start * SAMPLES_PER_FRAME * 2 : end * SAMPLES_PER_FRAME * 2]
        try:
            out.extend(phone_pass(d, piece, [base_word(w[0]) for w in run], cmn, start))
        except RuntimeError:
            if len(run) == 1:
                raise
            for w in run:
                a, b = w[1], w[2]
                piece = pcm[a * SAMPLES_PER_FRAME * 2 : b * SAMPLES_PER_FRAME * 2]
                out.extend(phone_pass(d, piece, [base_word(w[0])], cmn, a))
        run.clear()

    for seg in segments:
        if is_filler(seg[0]):
            flush()
        else:
            run.append(seg)
    flush()
    # Pauses are the gaps between words; the stretches' own edge silences would overlap them.
    return [w for w in out if not is_filler(w[0])]


def align_once(d, pcm, words):
    cmn = d.get_cmn()
    segments = word_pass(d, pcm, words, cmn)
    # The clip's own cepstral mean, estimated by the first pass, for both passes from here on.
    d.set_cmn(cmn)
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    cmn = d.get_cmn(True)
    try:
        d.end_utt()
    except RuntimeError:
        pass
    try:
        aligned = phone_pass(d, pcm, words, cmn, 0)
        chunked = False
    except RuntimeError:
        aligned = chunked_phone_pass(d, pcm, segments, cmn)
        chunked = True
    out_words, out_phones = [], []
    for name, start, end, phones in aligned:
        index = -1
        if not is_filler(name):
            index = len(out_words)
            out_words.append([name, start, end])
        for p, a, b in phones:
            out_phones.append([p, a, b, index])
    return out_words, out_phones, chunked


def handle(lexicon, extra, req):
    words = [w.lower() for w in req["words"]]
    if not words:
        return {"ok": False, "error": "empty transcript"}
    with open(req["pcm"], "rb") as f:
        pcm = f.read()
    if len(pcm) < 3200:
        return {"ok": False, "error": "audio shorter than 0.1 s"}
    missing = sorted({w for w in words if lexicon.lookup_word(w) is None})
    if missing:
        return {
            "ok": False,
            "error": "words not in the pronunciation dictionary: " + " ".join(missing)
            + " (add them with --dict FILE, lines `word PH1 PH2 ...` in CMU ARPAbet)",
        }
    last = "alignment failed"
    for n, options in enumerate(ATTEMPTS):
        # A fresh decoder (0.1 s) for every clip and attempt: a reused one carries state over
        # (its cepstral mean, at least), which made a clip's alignment depend on the clips before.
        d = decoder(options, extra)
        try:
            w, p, chunked = align_once(d, pcm, words)
        except RuntimeError as e:
            last = f"{e} (the transcript may not match the audio)"
            continue
        frame_s = 1.0 / float(d.config["frate"])
        return {"ok": True, "frame_s": frame_s, "attempt": n, "chunked": chunked, "words": w, "phones": p}
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
    lexicon = decoder(ATTEMPTS[0], extra)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            answer = handle(lexicon, extra, req)
        except Exception as e:  # one bad clip must not end the run
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        answer["id"] = req.get("id")
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    sys.exit(main(sys.argv[1:]))
