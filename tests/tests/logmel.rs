//! Log-mel parity with transformers' `WhisperFeatureExtractor` (torch path).

use audiosae::mel::{feat_len, LogMel};
use audiosae_tests::{fixture, max_abs_diff, npy};
use tch::Device;

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("logmel/meta.json")).unwrap()).unwrap()
}

fn wave(name: &str) -> Vec<f32> {
    Vec::<f32>::try_from(npy(&format!("logmel/{name}_wave.npy"))).unwrap()
}

#[test]
fn logmel_matches_transformers_on_real_speech_and_odd_length() {
    let meta = meta();
    for (clip, n_mels, len_key) in
        [("speech", 80, "speech_feat_len"), ("speech", 128, "speech_feat_len"), ("synth", 128, "synth_feat_len")]
    {
        let w = wave(clip);
        let (mel, len) = LogMel::new(n_mels, Device::Cpu).compute(&w);
        let want = npy(&format!("logmel/{clip}_logmel{n_mels}.npy"));
        let diff = max_abs_diff(&mel, &want);
        println!("{clip} ({} samples) {n_mels} mels: max abs diff {diff:.3e}", w.len());
        assert!(diff <= 1e-4, "{clip} {n_mels}: max abs diff {diff}");
        assert_eq!(len as u64, meta[len_key].as_u64().unwrap());
        assert_eq!(len, feat_len(w.len()));
    }
    assert_ne!(wave("synth").len() % 160, 0, "the odd-length clip must not be a multiple of the hop");
}

#[test]
fn batch_rows_equal_single_clips() {
    let (a, b) = (wave("speech"), wave("synth"));
    let lm = LogMel::new(128, Device::Cpu);
    let batch = lm.compute_batch(&[&a, &b]);
    assert_eq!(batch.feat_lens, vec![491, 401]);
    for (i, w) in [&a, &b].into_iter().enumerate() {
        let (single, _) = lm.compute(w);
        assert_eq!(max_abs_diff(&batch.features.get(i as i64), &single), 0.0);
    }
}

#[test]
fn flac_decoder_matches_soundfile() {
    let audio = audiosae::audio::load_audio(&fixture("speech/61-70968-0000.flac")).unwrap();
    assert_eq!(audio.samples, wave("speech"), "decoded FLAC differs from soundfile's float32 read");
}
