//! Whisper greedy decoding parity (references: tests/fixtures/make_whisper_decoding.py):
//! - a tiny random transformers Whisper with a multilingual prompt: tokens of
//!   `WhisperForConditionalGeneration.generate` for a batch of two inputs and two prompts, and
//!   teacher-forced decoder logits;
//! - the real Whisper tiny.en (CTranslate2 model.bin) on real clips, one longer than 30 s:
//!   tokens of CTranslate2's `generate` and of transformers' `generate` on the same weights,
//!   and transformers' teacher-forced logits.

use audiosae::models::whisper_generation::Task;
use audiosae::models::{load_clip, AttentionImpl, AudioModel};
use audiosae::transcribe::{transcribe, TranscribeOptions};
use audiosae_tests::{fixture, max_abs_diff, mfa_wav_dir, npy, tiny_en_dir};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

fn refs() -> Value {
    let path = fixture("whisper_decoding_ref/refs.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

fn load(dir: &std::path::Path) -> AudioModel {
    let mut m = AudioModel::load(dir.to_str().unwrap(), Device::Cpu, Kind::Float, true).unwrap();
    m.set_attention(AttentionImpl::Eager);
    m
}

/// Encoder output of one clip's (first) 30 s window.
fn encode(m: &AudioModel, samples: &[f32]) -> Tensor {
    let (encoder, _) = m.whisper_generator().unwrap();
    let mel = m.mel.compute_batch(&[samples]).features;
    tch::no_grad(|| encoder.forward(&mel)).unwrap()
}

fn check_logits(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    let d = max_abs_diff(got, want);
    println!("{what}: max abs diff {d:.3e} (logits up to {:.1})", want.abs().max().double_value(&[]));
    assert!(d <= tol, "{what}: max abs diff {d} > {tol}");
}

#[test]
fn tiny_random_whisper_greedy_matches_transformers() {
    let r = &refs()["tiny_gen"];
    let m = load(&fixture("whisper_tiny_gen"));
    let speech = load_clip(&fixture("speech/61-70968-0000.flac")).unwrap();
    let clips: Vec<&[f32]> = vec![&speech, &speech[..40000]];
    let max_new = r["max_new_tokens"].as_u64().unwrap() as usize;
    for case in r["cases"].as_array().unwrap() {
        let language = case["language"].as_str().unwrap();
        let task: Task = case["task"].as_str().unwrap().parse().unwrap();
        let (_, g) = m.whisper_generator().unwrap();
        assert_eq!(g.spec.prompt(Some(language), task).unwrap(), ids(&case["prompt"]), "{language} prompt");
        let opts =
            TranscribeOptions { max_new_tokens: max_new, language: Some(language.into()), task, batch_windows: 2 };
        let got = transcribe(&m, &clips, &opts).unwrap();
        for (i, want) in case["tokens"].as_array().unwrap().iter().enumerate() {
            assert_eq!(got[i].token_ids, ids(want), "{language}/{task:?} clip {i}");
        }
        // One clip at a time gives the same tokens as the batch.
        let alone = transcribe(&m, &clips[1..], &opts).unwrap();
        assert_eq!(alone[0].token_ids, got[1].token_ids, "clip 1 alone vs in the batch");
    }
    // Teacher-forced logits over prompt + generated tokens, against transformers' forward.
    let seq = ids(&r["forced_logits"]["sequence"]);
    let prompt_len = r["cases"][0]["prompt"].as_array().unwrap().len();
    let (_, g) = m.whisper_generator().unwrap();
    let logits = g.forced_logits(&encode(&m, &speech), &seq[..prompt_len], &[seq[prompt_len..].to_vec()]).unwrap();
    let want = npy("whisper_decoding_ref/tiny_gen_forced_logits.npy");
    let want = want.narrow(0, prompt_len as i64 - 1, want.size()[0] - prompt_len as i64 + 1);
    check_logits("tiny random decoder logits vs transformers", &logits.get(0), &want, 1e-4);

    // A right-padded batch of two sequences of different lengths gives each one's own logits.
    let enc = encode(&m, &speech);
    let enc2 = Tensor::cat(&[&enc, &enc], 0);
    let (long, short) = (seq[prompt_len..].to_vec(), seq[prompt_len..prompt_len + 3].to_vec());
    let batch = g.forced_logits(&enc2, &seq[..prompt_len], &[short.clone(), long.clone()]).unwrap();
    let alone = g.forced_logits(&enc, &seq[..prompt_len], &[short]).unwrap();
    check_logits("padded row vs alone", &batch.get(0).narrow(0, 0, 4), &alone.get(0), 1e-5);
    check_logits("longest row vs alone", &batch.get(1), &logits.get(0), 1e-5);
}

#[test]
fn tiny_en_greedy_tokens_equal_ctranslate2_and_transformers_on_real_speech() {
    let r = &refs()["tiny_en"];
    let m = load(&tiny_en_dir());
    let (_, g) = m.whisper_generator().unwrap();
    assert_eq!(g.spec.prompt(None, Task::Transcribe).unwrap(), ids(&r["prompt"]));
    let clips = r["clips"].as_array().unwrap();
    let mut audio = Vec::new();
    for c in clips {
        let path = match c["source"].as_str().unwrap() {
            "fixture" => fixture(c["path"].as_str().unwrap()),
            _ => mfa_wav_dir().join(c["path"].as_str().unwrap()),
        };
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run ./audiosae.sh setup)", path.display()));
        assert_eq!(audiosae::store::sha256_bytes(&bytes), c["sha256"].as_str().unwrap(), "{}", path.display());
        audio.push(load_clip(&path).unwrap());
    }
    assert!(audio.iter().any(|a| a.len() > 30 * 16000), "a clip longer than 30 s is part of the test");
    let views: Vec<&[f32]> = audio.iter().map(Vec::as_slice).collect();
    let opts =
        TranscribeOptions { max_new_tokens: r["max_new_tokens"].as_u64().unwrap() as usize, ..Default::default() };
    let got = transcribe(&m, &views, &opts).unwrap();
    for (c, t) in clips.iter().zip(&got) {
        let name = c["path"].as_str().unwrap();
        assert_eq!(t.token_ids, ids(&c["ctranslate2_tokens"]), "{name}: tokens vs CTranslate2");
        assert_eq!(t.token_ids, ids(&c["transformers_tokens"]), "{name}: tokens vs transformers");
        assert_eq!(t.text, c["text"].as_str().unwrap(), "{name}: text");
    }
    println!("{} real clips: greedy tokens equal CTranslate2's and transformers'", got.len());
    // The default fused attention (what the CLI runs) changes only the summation order.
    let mut sdpa = AudioModel::load(tiny_en_dir().to_str().unwrap(), Device::Cpu, Kind::Float, true).unwrap();
    sdpa.set_attention(AttentionImpl::Sdpa);
    for (t, s) in got.iter().zip(transcribe(&sdpa, &views, &opts).unwrap()) {
        assert_eq!(s.token_ids, t.token_ids, "sdpa vs eager attention");
    }

    let seq = ids(&r["forced_logits"]["sequence"]);
    let stride = r["forced_logits"]["column_stride"].as_i64().unwrap();
    let logits = g.forced_logits(&encode(&m, &audio[0]), &seq[..2], &[seq[2..].to_vec()]).unwrap().get(0);
    let vocab = logits.size()[1];
    let columns = Tensor::arange_start_step(0, vocab, stride, (Kind::Int64, Device::Cpu));
    let want = npy("whisper_decoding_ref/tiny_en_forced_logits.npy");
    let want = want.narrow(0, 1, want.size()[0] - 1);
    check_logits("tiny.en decoder logits vs transformers", &logits.index_select(1, &columns), &want, 1e-4);
}
