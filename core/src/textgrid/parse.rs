//! TextGrid reader for Praat's long ("ooTextFile") and short ("ooTextFile short") text formats.
//!
//! Both formats carry the same sequence of values; the long one only adds `key =` labels and
//! `item [n]:` headings. So the lexer keeps numbers, quoted strings and `<flags>`, skips labels,
//! `[...]` indices and `!` comments, and one grammar reads either format.

use std::path::{Path, PathBuf};

use super::{Interval, IntervalTier, Point, PointTier, TextGrid, TextGridError, Tier};

/// Decodes by BOM: UTF-16 LE/BE, UTF-8 (with or without BOM), else Latin-1 (Praat's legacy
/// single-byte encoding).
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<TextGrid, TextGridError> {
    let utf16 = |be: bool| -> Result<String, TextGridError> {
        let body = &bytes[2..];
        if !body.len().is_multiple_of(2) {
            return Err(not_textgrid(path, "UTF-16 text with an odd number of bytes"));
        }
        let units = body.chunks_exact(2).map(|c| {
            if be {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|e| not_textgrid(path, &format!("invalid UTF-16: {e}")))
    };
    let text = match bytes {
        [0xFF, 0xFE, ..] => utf16(false)?,
        [0xFE, 0xFF, ..] => utf16(true)?,
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|e| not_textgrid(path, &format!("invalid UTF-8: {e}")))?
        }
        _ => match std::str::from_utf8(bytes) {
            Ok(s) => s.to_string(),
            Err(_) => bytes.iter().map(|&b| b as char).collect(),
        },
    };
    parse_str(&text, path)
}

pub fn parse_str(text: &str, path: &Path) -> Result<TextGrid, TextGridError> {
    let tokens = lex(text, path)?;
    Reader { tokens: tokens.into_iter().peekable(), path: path.to_path_buf() }.textgrid()
}

fn not_textgrid(path: &Path, detail: &str) -> TextGridError {
    TextGridError::NotTextGrid { path: path.to_path_buf(), detail: detail.to_string() }
}

#[derive(Debug, PartialEq)]
enum Value {
    Number(f64),
    Str(String),
    Flag(String),
    /// A bare word where a value belongs (`xmin = abc`): never valid, kept so the error names
    /// its own line rather than the next value's.
    Word(String),
}

impl Value {
    fn describe(&self) -> String {
        match self {
            Value::Number(x) => format!("the number {x}"),
            Value::Str(s) => format!("the string \"{s}\""),
            Value::Flag(f) => format!("<{f}>"),
            Value::Word(w) => format!("`{w}`"),
        }
    }
}

struct Token {
    value: Value,
    line: usize,
}

fn lex(text: &str, path: &Path) -> Result<Vec<Token>, TextGridError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    let mut line = 1;
    // Right after `=`, where a value belongs: a string, flag, heading or number ends it, and a
    // bare word there becomes a `Value::Word` token so the error names its line.
    let mut after_equals = false;
    while let Some(&(start, c)) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '!' => {
                while chars.peek().is_some_and(|&(_, c)| c != '\n') {
                    chars.next();
                }
            }
            '"' => {
                // A string; `""` inside it is an escaped quote. It may span lines.
                after_equals = false;
                let open_line = line;
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(TextGridError::UnterminatedString { path: path.to_path_buf(), line: open_line })
                        }
                        Some((_, '"')) if chars.peek().is_some_and(|&(_, c)| c == '"') => {
                            chars.next();
                            s.push('"');
                        }
                        Some((_, '"')) => break,
                        Some((_, c)) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                    }
                }
                tokens.push(Token { value: Value::Str(s), line: open_line });
            }
            '<' => {
                after_equals = false;
                let end = text[start..].find('>').map(|e| start + e);
                let Some(end) = end else {
                    return Err(TextGridError::Unexpected {
                        path: path.to_path_buf(),
                        line,
                        expected: "a flag like <exists>".into(),
                        found: "an unclosed `<`".into(),
                    });
                };
                tokens.push(Token { value: Value::Flag(text[start + 1..end].to_string()), line });
                while chars.peek().is_some_and(|&(i, _)| i <= end) {
                    chars.next();
                }
            }
            '[' => {
                after_equals = false;
                // `item [3]:` and `intervals [12]:` headings of the long format.
                while chars.next().is_some_and(|(_, c)| c != ']') {}
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                after_equals = false;
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                let word = &text[start..end];
                let x: f64 = word.parse().map_err(|_| TextGridError::MalformedNumber {
                    path: path.to_path_buf(),
                    line,
                    text: word.to_string(),
                })?;
                if !x.is_finite() {
                    return Err(TextGridError::MalformedNumber {
                        path: path.to_path_buf(),
                        line,
                        text: word.to_string(),
                    });
                }
                tokens.push(Token { value: Value::Number(x), line });
            }
            _ => {
                // A label (`xmin`, `=`, `intervals:`, `tiers?`): skip the word, unless it stands
                // where a value belongs (right after `=`).
                let mut end = start;
                while let Some(&(i, c)) =
                    chars.peek().filter(|&&(_, c)| !c.is_whitespace() && c != '"' && c != '<' && c != '[')
                {
                    end = i + c.len_utf8();
                    chars.next();
                }
                let word = &text[start..end];
                if after_equals {
                    tokens.push(Token { value: Value::Word(word.to_string()), line });
                }
                after_equals = word == "=";
            }
        }
    }
    Ok(tokens)
}

struct Reader {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    path: PathBuf,
}

impl Reader {
    fn next(&mut self, expected: &str) -> Result<Token, TextGridError> {
        self.tokens
            .next()
            .ok_or_else(|| TextGridError::UnexpectedEnd { path: self.path.clone(), expected: expected.to_string() })
    }

    fn unexpected(&self, t: &Token, expected: &str) -> TextGridError {
        TextGridError::Unexpected {
            path: self.path.clone(),
            line: t.line,
            expected: expected.to_string(),
            found: t.value.describe(),
        }
    }

    /// A number and its line.
    fn number(&mut self, what: &str) -> Result<(f64, usize), TextGridError> {
        let t = self.next(what)?;
        match t.value {
            Value::Number(x) => Ok((x, t.line)),
            _ => Err(self.unexpected(&t, what)),
        }
    }

    fn count(&mut self, what: &str) -> Result<usize, TextGridError> {
        let t = self.next(what)?;
        match t.value {
            Value::Number(x) if x >= 0.0 && x.fract() == 0.0 => Ok(x as usize),
            _ => Err(self.unexpected(&t, what)),
        }
    }

    fn string(&mut self, what: &str) -> Result<(String, usize), TextGridError> {
        let t = self.next(what)?;
        match t.value {
            Value::Str(s) => Ok((s, t.line)),
            _ => Err(self.unexpected(&t, what)),
        }
    }

    fn textgrid(mut self) -> Result<TextGrid, TextGridError> {
        let (file_type, _) = self.string("File type = \"ooTextFile\"")?;
        if !file_type.starts_with("ooTextFile") {
            let detail = format!("file type \"{file_type}\" (only Praat's text formats are read; save as text file)");
            return Err(not_textgrid(&self.path, &detail));
        }
        let (class, _) = self.string("Object class = \"TextGrid\"")?;
        if class != "TextGrid" {
            return Err(not_textgrid(&self.path, &format!("object class \"{class}\"")));
        }
        let (xmin, _) = self.number("the grid's xmin")?;
        let (xmax, line) = self.number("the grid's xmax")?;
        self.ordered(xmin, xmax, line, "(grid)")?;
        let t = self.next("<exists> or <absent>")?;
        let has_tiers = match &t.value {
            Value::Flag(f) if f == "exists" => true,
            Value::Flag(f) if f == "absent" => false,
            _ => return Err(self.unexpected(&t, "<exists> or <absent>")),
        };
        let n_tiers = if has_tiers { self.count("the number of tiers")? } else { 0 };
        let tiers = (0..n_tiers).map(|_| self.tier()).collect::<Result<Vec<_>, _>>()?;
        if let Some(t) = self.tokens.next() {
            return Err(self.unexpected(&t, "the end of the file"));
        }
        Ok(TextGrid { path: self.path, xmin, xmax, tiers })
    }

    fn tier(&mut self) -> Result<Tier, TextGridError> {
        let t = self.next("a tier class")?;
        let class = match &t.value {
            Value::Str(s) if s == "IntervalTier" || s == "TextTier" => s.clone(),
            _ => return Err(self.unexpected(&t, "a tier class \"IntervalTier\" or \"TextTier\"")),
        };
        let (name, _) = self.string("the tier name")?;
        let (xmin, _) = self.number("the tier's xmin")?;
        let (xmax, line) = self.number("the tier's xmax")?;
        self.ordered(xmin, xmax, line, &name)?;
        let n = self.count("the number of intervals or points")?;
        if class == "TextTier" {
            // n is the file's claim: reserve no more than the tokens left can fill (2 per point).
            let mut points = Vec::with_capacity(n.min(self.tokens.len() / 2));
            for _ in 0..n {
                let (time, _) = self.number("a point's time")?;
                let (mark, _) = self.string("a point's mark")?;
                points.push(Point { time, mark });
            }
            return Ok(Tier::Points(PointTier { name, xmin, xmax, points }));
        }
        let mut intervals: Vec<Interval> = Vec::with_capacity(n.min(self.tokens.len() / 3));
        for _ in 0..n {
            let (a, line) = self.number("an interval's xmin")?;
            let (b, _) = self.number("an interval's xmax")?;
            let (text, _) = self.string("an interval's text")?;
            self.ordered(a, b, line, &name)?;
            if let Some(prev) = intervals.last() {
                // Praat writes boundaries with up to 17 digits; allow rounding noise.
                if a < prev.xmax - 1e-6 {
                    return Err(TextGridError::Overlap {
                        path: self.path.clone(),
                        line,
                        tier: name,
                        xmin: a,
                        prev_xmax: prev.xmax,
                    });
                }
            }
            intervals.push(Interval { xmin: a, xmax: b, text });
        }
        Ok(Tier::Intervals(IntervalTier { name, xmin, xmax, intervals }))
    }

    fn ordered(&self, xmin: f64, xmax: f64, line: usize, tier: &str) -> Result<(), TextGridError> {
        if xmin > xmax {
            return Err(TextGridError::InvertedInterval {
                path: self.path.clone(),
                line,
                tier: tier.to_string(),
                xmin,
                xmax,
            });
        }
        Ok(())
    }
}
