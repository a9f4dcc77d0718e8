"""Peer for `cargo run --example bench_extract`: transformers' WhisperFeatureExtractor + WhisperModel
encoder on the same clips, weights, threads and batch size. Prints one JSON line.

The Whisper tiny.en CTranslate2 weights are converted to a transformers WhisperEncoder with the
same converter the parity fixtures use (tests/fixtures/make_fixtures.py).
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
from make_fixtures import ct2_to_hf_encoder, read_ct2_model_bin  # noqa: E402
from transformers import WhisperConfig, WhisperFeatureExtractor  # noqa: E402
from transformers.models.whisper.modeling_whisper import WhisperEncoder  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ct2-model-dir", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("clips", nargs="+")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ct2 = read_ct2_model_bin(os.path.join(a.ct2_model_dir, "model.bin"))
    v = ct2["vars"]
    n_layers = sum(1 for k in v if k.startswith("encoder/") and k.endswith("self_attention/linear_0/weight"))
    n_mels, d = v["encoder/conv1/weight"].shape[1], v["encoder/conv1/weight"].shape[0]
    cfg = WhisperConfig(
        d_model=d,
        encoder_layers=n_layers,
        encoder_attention_heads=int(v["encoder/num_heads"]),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        num_mel_bins=n_mels,
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
    )
    enc = WhisperEncoder(cfg).eval()  # default attention implementation, as users get it
    enc.load_state_dict(ct2_to_hf_encoder(ct2, n_layers, d), strict=True)
    fe = WhisperFeatureExtractor(feature_size=enc.config.num_mel_bins)
    waves = [sf.read(p, dtype="float32")[0] for p in a.clips]
    for w, p in zip(waves, a.clips):
        assert w.ndim == 1, f"{p}: expected mono 16 kHz"
    audio_s = sum(len(w) for w in waves) / 16000.0
    best = None
    with torch.inference_mode():
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for i in range(0, len(waves), a.batch_size):
                batch = waves[i : i + a.batch_size]
                feats = fe(batch, sampling_rate=16000, return_tensors="pt").input_features
                enc(feats).last_hidden_state
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
    print(json.dumps({"audio_s": audio_s, "seconds": best, "audio_s_per_s": audio_s / best, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
