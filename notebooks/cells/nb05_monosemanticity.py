from common import PRELUDE, code, md

NAME = "05-monosemanticity"
CELLS = [
    md("""
# 05 · One unit at a time: monosemanticity and unit cards

04 scored every unit against every phone. Here we look at units the other way round: take a unit's
**top-activating frames** and ask what they have in common. The **monosemanticity** plugin reports,
per unit, its density (fraction of frames where it fires), its top frames with their phone and word
labels, and the **purity** (share of the most common label) and **entropy** of those labels. A
monosemantic unit's top frames agree; a polysemantic one's do not.

Then we listen: the plugin's unit cards show a log-mel patch of each top frame and its audio, which
the notebook embeds so that it plays here.
"""),
    code(PRELUDE + """
use audiosae::notebook::{build_plugins, column_index, inline_audio, num, table_html, top_rows};
use audiosae::plugins::Analysis;
let (store, sae) = (p.store_dir()?, p.sae_dir());
build_plugins(&["monosemanticity"])?;
let out = p.work_dir.join("05-monosemanticity");
let report = Analysis::new("monosemanticity", &store, &[sae.clone()], &out).labels(&p.corpus).device(&p.device)
    .param("top_n", 20).param("cards", 4).param("card_frames", 5).run()?;
{
    let s = &report.summary;
    println!("{} frames, {} live units of {} ({} dead); median density of live units {:.3}%",
        s["frames"], s["live_units"], s["d_sae"], s["dead_units"], 100.0 * s["median_density_live"].as_f64().unwrap_or(0.0));
    println!("top-{} frames: median phone purity {}, median word purity {}; units with phone purity > 0.8: {:.0}%",
        s["top_n"], s["median_phones_purity"], s["median_words_purity"], 100.0 * s["fraction_phones_purity_above_0.8"].as_f64().unwrap_or(0.0));
};"""),
    md("""
## Distributions over units
Density, purity and entropy over the live units. Density spans orders of magnitude: a TopK SAE
keeps `k` units on per frame, and spends them on a few frequent units and many rare ones. The peak
at purity 1 is the monosemantic end; word purity runs high partly because the demo corpus's
synthetic sentences reuse a small vocabulary.
"""),
    code("""
show_html(&table_html(report.table("distribution").expect("the distribution table"), 10));
show_png(&out.join("distribution.png"))?;"""),
    md("""
## The purest units
Units whose top 20 frames all carry the same phone, most frequent first. These are the units the
cards below show.
"""),
    code("""
let units = report.table("units").cloned().expect("the units table");
show_html(&table_html(&top_rows(&units, "density", 8, &[("phones_purity", "1")])?, 8));"""),
    md("""
## Unit cards
Each card: a unit, then its top frames: the log-mel ±0.3 s around the frame, the clip and time, the
activation, the phone and word labels, and the audio of that window. Listen across a card: the
same sound in different words and voices.
"""),
    code("""show_html(&inline_audio(&std::fs::read_to_string(out.join("unit_cards.html"))?)?);"""),
    md("""
## A polysemantic unit
The unit whose top frames have the most mixed phone labels (highest entropy). Its top frames span
several phones, and often several words and speakers: what it detects is not a phone. It may be an
acoustic property shared across phones (energy, a formant region, a transition), a mix of
unrelated features that a larger dictionary would split, or not acoustic at all: look at the
times. Whisper's encoder adds absolute position embeddings, and some units fire at a fixed time
into the clip whatever is said.
"""),
    code("""
let mixed = top_rows(&units, "phones_entropy_bits", 1, &[])?;
let unit = mixed.rows[0][column_index(&mixed, "unit")?].to_csv();
let top = top_rows(report.table("top_frames").expect("the top_frames table"), "activation", 6, &[("unit", &unit)])?;
let mut html = table_html(&mixed, 1) + &table_html(&top, 6);
let reader = audiosae::store::StoreReader::open(&store)?;
let (item, time, phone, word) = (column_index(&top, "item")?, column_index(&top, "time_s")?, column_index(&top, "phones")?, column_index(&top, "words")?);
for r in &top.rows {
    let id = r[item].to_csv();
    let entry = reader.items().iter().find(|it| it.meta.id == id).expect("a store item");
    let samples = audiosae::models::load_clip(&entry.meta.audio)?;
    let t = num(&r[time]);
    html += &format!("<p>{id} at {t:.2} s: phone {} in \\"{}\\" {}</p>", r[phone].to_csv(), r[word].to_csv(), audio_html(&samples, t - 0.3, t + 0.3)?);
}
show_html(&html);"""),
    md("""
**What this says.** Purity of top frames is a cheap, label-based reading of monosemanticity: it
finds units whose strongest activations are one phone (or one word) and, through the cards, lets you
hear whether the rest of the signal (speaker, context) varies while the unit stays on. It is an upper
view: top frames are where a unit is most confident, and a unit can be pure there yet fire on other
things at low activation (04's precision and recall measure that part).
"""),
]
