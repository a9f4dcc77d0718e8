"""Peers for `cargo run --release --example bench_transcribe`: greedy transcription (no timestamps)
of the same clips with CTranslate2's `Whisper.generate` and with transformers'
`WhisperForConditionalGeneration.generate` (the same CTranslate2 weights, converted as the parity
fixtures convert them, with transformers' default attention), at the same threads and batch size. Feature extraction is timed with
decoding, as in audiosae. Prints one JSON line: audio seconds per second and tokens per clip.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
from make_whisper_decoding import generated, hf_whisper_from_ct2  # noqa: E402
from transformers import WhisperFeatureExtractor  # noqa: E402


def best_of(repeats, run):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ct2-model-dir", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--max-new-tokens", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("clips", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import ctranslate2

    waves = [sf.read(p, dtype="float32")[0] for p in a.clips]
    audio_s = sum(len(w) for w in waves) / 16000
    fe = WhisperFeatureExtractor(feature_size=80)
    # transformers' default attention (as users get it), not the references' eager path.
    hf, _, prompt, eot = hf_whisper_from_ct2(a.ct2_model_dir, attn_implementation=None)
    ct2 = ctranslate2.models.Whisper(a.ct2_model_dir, device="cpu", compute_type="float32", intra_threads=a.threads)
    batches = [waves[i : i + a.batch_size] for i in range(0, len(waves), a.batch_size)]

    def run_ct2():
        out = []
        for b in batches:
            feats = fe(b, sampling_rate=16000, return_tensors="np")["input_features"]
            res = ct2.generate(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
                [prompt] * len(b),
                beam_size=1,
                max_length=a.max_new_tokens,
                suppress_blank=True,
                suppress_tokens=[-1],
            )
            out += [r.sequences_ids[0] for r in res]
        return out

    def run_hf():
        out = []
        for b in batches:
            feats = fe(b, sampling_rate=16000, return_tensors="pt")["input_features"]
            with torch.no_grad():
                seqs = hf.generate(feats, return_timestamps=False, max_new_tokens=a.max_new_tokens)
            seqs = seqs if isinstance(seqs, torch.Tensor) else seqs.sequences
            out += [generated(row, prompt, eot) for row in seqs.tolist()]
        return out

    run_ct2()  # warm-up
    t_ct2, tok_ct2 = best_of(a.repeats, run_ct2)
    run_hf()
    t_hf, tok_hf = best_of(a.repeats, run_hf)
    print(
        json.dumps(
            {
                "audio_s": audio_s,
                "ctranslate2_audio_s_per_s": audio_s / t_ct2,
                "transformers_audio_s_per_s": audio_s / t_hf,
                "ctranslate2_tokens": tok_ct2,
                "transformers_tokens": tok_hf,
                "ctranslate2": ctranslate2.__version__,
                "torch": torch.__version__,
                "transformers_attention": hf.config._attn_implementation,
            }
        )
    )


if __name__ == "__main__":
    main()
