//! Qwen2-Audio parity with transformers on the committed tiny random checkpoints:
//! A (on-disk v4 layout, GQA, silu, 1500 positions) and B (v5 key names, 2 shards, tied head
//! not stored, gelu).

use audiosae::chat::{instruct_prompt, PromptTokenizer};
use audiosae::mel::LogMel;
use audiosae::models::qwen2_audio::Qwen2Audio;
use audiosae_tests::{fixture, max_abs_diff, npy, npy_i64};
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("qwen2_audio_ref/meta.json")).unwrap()).unwrap()
}

/// Loaded with transformers' eager attention, which the fixtures used.
fn load(name: &str) -> Qwen2Audio {
    let mut q = Qwen2Audio::load(&fixture(name), Device::Cpu, Kind::Float, true).unwrap_or_else(|e| panic!("{e:#}"));
    q.audio_tower.attention = audiosae::models::AttentionImpl::Eager;
    q
}

fn check(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    let d = max_abs_diff(got, want);
    println!("{what}: max abs diff {d:.3e}");
    assert!(d <= tol, "{what}: max abs diff {d} > {tol}");
}

fn speech_case(ckpt: &str, p: &str) {
    let q = load(ckpt);
    let features = npy("logmel/speech_logmel128.npy").unsqueeze(0);
    let lens = [491usize];
    let audio = q.encode_audio(&features, &lens).unwrap();
    assert_eq!(audio.valid, vec![123]);
    check(
        &format!("{p} encoder"),
        &audio.last_hidden_state.get(0).narrow(0, 0, 123),
        &npy(&format!("qwen2_audio_ref/{p}_speech_encoder.npy")),
        TOL,
    );
    let layer0 = q.encoder_layer(&features, &lens, 0).unwrap();
    check(
        &format!("{p} encoder.0"),
        &layer0.get(0).narrow(0, 0, 246),
        &npy(&format!("qwen2_audio_ref/{p}_speech_layer0.npy")),
        TOL,
    );
    let emb = q.audio_embeddings(&features, &lens).unwrap();
    check(&format!("{p} projector"), &emb[0], &npy(&format!("qwen2_audio_ref/{p}_speech_projector.npy")), TOL);

    let tok = PromptTokenizer::from_dir(&fixture(ckpt), q.config.audio_token_index).unwrap();
    let prompt = instruct_prompt(None, "Transcribe the audio.", 1);
    assert_eq!(prompt, meta()["prompt_template"].as_str().unwrap());
    let ids = tok.encode_with_audio(&prompt, &[123]).unwrap();
    assert_eq!(ids, npy_i64(&format!("qwen2_audio_ref/{p}_speech_input_ids.npy")), "{p}: prompt token ids differ");

    let input_ids = Tensor::from_slice(&ids).view([1, -1]);
    let mask = input_ids.ones_like();
    let logits = q.prefill_logits(&input_ids, &mask, &emb).unwrap();
    check(
        &format!("{p} prefill logits"),
        &logits.get(0),
        &npy(&format!("qwen2_audio_ref/{p}_speech_prefill_logits.npy")),
        TOL,
    );

    let want = npy_i64(&format!("qwen2_audio_ref/{p}_speech_greedy.npy"));
    let gen = q.generate(&input_ids, &mask, &emb, 24, &[402], 400).unwrap();
    assert_eq!(gen.tokens[0], want, "{p}: greedy tokens differ");
}

#[test]
fn checkpoint_a_matches_transformers() {
    speech_case("qwen2_audio_tiny", "a");
}

#[test]
fn checkpoint_b_sharded_v5_tied_matches_transformers() {
    speech_case("qwen2_audio_tiny_v5", "b");
}

#[test]
fn two_clip_left_padded_batch_matches_transformers() {
    let q = load("qwen2_audio_tiny");
    let speech = Vec::<f32>::try_from(npy("logmel/speech_wave.npy")).unwrap();
    let synth = Vec::<f32>::try_from(npy("logmel/synth_wave.npy")).unwrap();
    let mel = LogMel::new(128, Device::Cpu).compute_batch(&[&speech, &synth]);
    let emb = q.audio_embeddings(&mel.features, &mel.feat_lens).unwrap();
    assert_eq!(emb.iter().map(|e| e.size()[0]).collect::<Vec<_>>(), vec![123, 100]);
    check("batch projector rows", &Tensor::cat(&emb, 0), &npy("qwen2_audio_ref/a_batch_projector.npy"), TOL);

    let ids = npy_i64("qwen2_audio_ref/a_batch_input_ids.npy");
    let mask = npy_i64("qwen2_audio_ref/a_batch_attention_mask.npy");
    let input_ids = Tensor::from_slice(&ids).view([2, -1]);
    let mask = Tensor::from_slice(&mask).view([2, -1]);
    let gen = q.generate(&input_ids, &mask, &emb, 24, &[402], 400).unwrap();
    check("batch last-position logits", &gen.prefill_last_logits, &npy("qwen2_audio_ref/a_batch_last_logits.npy"), TOL);
    let want = npy_i64("qwen2_audio_ref/a_batch_greedy.npy");
    let width = want.len() / 2;
    for row in 0..2 {
        assert_eq!(gen.tokens[row], want[row * width..(row + 1) * width], "row {row} greedy tokens differ");
    }
}

#[test]
fn mismatched_audio_and_placeholders_is_an_error() {
    let q = load("qwen2_audio_tiny");
    let features = npy("logmel/speech_logmel128.npy").unsqueeze(0);
    let emb = q.audio_embeddings(&features, &[491]).unwrap();
    let ids = Tensor::from_slice(&[401i64, 403, 403, 402]).view([1, -1]);
    let err = q.merge_embeddings(&ids, &emb).expect_err("must fail").to_string();
    assert!(err.contains("123 audio frames for 2"), "{err}");
}

#[test]
fn f16_and_bf16_run_and_drift_within_their_precision() {
    let features = npy("logmel/speech_logmel128.npy").unsqueeze(0);
    let want = npy("qwen2_audio_ref/a_speech_projector.npy");
    let scale = want.abs().max().double_value(&[]);
    // Relative mean drift bounds: ~2^-11 (f16) and ~2^-8 (bf16) per op, compounded over the tower.
    for (kind, bound) in [(Kind::Half, 2e-3), (Kind::BFloat16, 1e-2)] {
        let q = Qwen2Audio::load(&fixture("qwen2_audio_tiny"), Device::Cpu, kind, false).unwrap();
        let got = q.audio_embeddings(&features, &[491]).unwrap().remove(0);
        assert_eq!(got.kind(), kind);
        let mean = (got.to_kind(Kind::Double) - want.to_kind(Kind::Double)).abs().mean(Kind::Double).double_value(&[]);
        println!("{kind:?}: mean abs drift {:.2e} of max {scale:.2}", mean);
        assert!(mean / scale <= bound, "{kind:?} drift {mean} too large");
        assert!(mean > 0.0, "{kind:?} gave bit-identical output: the dtype was not applied");
    }
}

#[test]
fn fast_trimmed_extraction_gives_the_exact_frames_for_all_layers_in_one_pass() {
    use audiosae::models::{AudioModel, LayerSpec, Trim};
    let m = AudioModel::load(fixture("qwen2_audio_tiny").to_str().unwrap(), Device::Cpu, Kind::Float, false).unwrap();
    assert!(m.fast_is_exact());
    let speech = Vec::<f32>::try_from(npy("logmel/speech_wave.npy")).unwrap();
    let synth = Vec::<f32>::try_from(npy("logmel/synth_wave.npy")).unwrap();
    let layers = [LayerSpec::Projector, LayerSpec::Encoder, LayerSpec::EncoderLayer(0), LayerSpec::EncoderLayer(1)];
    let exact = m.extract(&[&speech, &synth], &layers, Trim::Exact).unwrap();
    let fast = m.extract(&[&speech, &synth], &layers, Trim::Fast).unwrap();
    for (li, layer) in layers.iter().enumerate() {
        for clip in 0..2 {
            let (e, f) = (&exact[li][clip], &fast[li][clip]);
            assert_eq!(e.timing, f.timing);
            let d = max_abs_diff(&e.frames, &f.frames);
            println!("{layer} clip {clip}: fast vs exact max abs diff {d:.2e}");
            assert!(d <= 1e-5, "{layer} clip {clip}: {d}");
            // One pass over several layers equals a single-layer pass.
            let single = m.features_batch(&[&speech, &synth], *layer).unwrap();
            assert_eq!(max_abs_diff(&single[clip].frames, &e.frames), 0.0);
        }
    }
    assert_eq!(exact[0][0].frames.size(), [123, 32]);
    assert_eq!(exact[2][1].frames.size(), [201, 32]);
    check("projector via extract", &exact[0][0].frames, &npy("qwen2_audio_ref/a_speech_projector.npy"), TOL);
}

#[test]
fn transcript_tokens_match_transformers() {
    let tok = PromptTokenizer::from_dir(&fixture("qwen2_audio_tiny"), 403).unwrap();
    let transcript = "HE BEGAN A CONFUSED COMPLAINT AGAINST THE WIZARD WHO HAD VANISHED BEHIND THE CURTAIN ON THE LEFT";
    let (ids, pieces) = tok.encode_text(transcript).unwrap();
    let want: Vec<i64> =
        meta()["transcript_token_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(ids, want);
    assert_eq!(pieces.concat(), transcript);
}
