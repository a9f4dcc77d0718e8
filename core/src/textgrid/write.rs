//! TextGrid writer: Praat's long text format, UTF-8 without BOM.

use std::fmt::Write;

use super::{TextGrid, Tier};

/// Praat doubles `"` inside strings.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The whole file. Numbers use Rust's shortest round-trip form, so reading it back gives the
/// same `f64`s.
pub fn to_long_text(tg: &TextGrid) -> String {
    let mut s = String::new();
    // fmt::Write into a String cannot fail.
    macro_rules! line {
        ($($arg:tt)*) => {
            let _ = writeln!(s, $($arg)*);
        };
    }
    line!("File type = \"ooTextFile\"");
    line!("Object class = \"TextGrid\"");
    line!();
    line!("xmin = {}", tg.xmin);
    line!("xmax = {}", tg.xmax);
    if tg.tiers.is_empty() {
        line!("tiers? <absent>");
        return s;
    }
    line!("tiers? <exists>");
    line!("size = {}", tg.tiers.len());
    line!("item []:");
    for (i, tier) in tg.tiers.iter().enumerate() {
        line!("    item [{}]:", i + 1);
        let (class, name, xmin, xmax) = match tier {
            Tier::Intervals(t) => ("IntervalTier", &t.name, t.xmin, t.xmax),
            Tier::Points(t) => ("TextTier", &t.name, t.xmin, t.xmax),
        };
        line!("        class = \"{class}\"");
        line!("        name = {}", quoted(name));
        line!("        xmin = {xmin}");
        line!("        xmax = {xmax}");
        match tier {
            Tier::Intervals(t) => {
                line!("        intervals: size = {}", t.intervals.len());
                for (j, iv) in t.intervals.iter().enumerate() {
                    line!("        intervals [{}]:", j + 1);
                    line!("            xmin = {}", iv.xmin);
                    line!("            xmax = {}", iv.xmax);
                    line!("            text = {}", quoted(&iv.text));
                }
            }
            Tier::Points(t) => {
                line!("        points: size = {}", t.points.len());
                for (j, p) in t.points.iter().enumerate() {
                    line!("        points [{}]:", j + 1);
                    line!("            number = {}", p.time);
                    line!("            mark = {}", quoted(&p.mark));
                }
            }
        }
    }
    s
}
