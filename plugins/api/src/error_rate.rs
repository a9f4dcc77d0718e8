//! Word and character error rates of a transcription against a reference: Levenshtein distance
//! over words (characters) divided by the reference's length, after a light normalisation
//! (lowercase; letters, digits and apostrophes kept; runs of anything else become one space), so
//! that " He began." and "HE BEGAN" count as equal. Shared by the interventions plugin and the
//! host's downstream-fidelity metrics, so that both score transcriptions the same way.

/// Lowercased words of `text` (letters, digits, apostrophes).
pub fn normalise(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Levenshtein distance (substitutions, insertions, deletions all cost 1).
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `len[i][j]`: length of a longest common subsequence of `a[i..]` and `b[j..]`, the table that
/// LCS diffs and pairings walk from `(0, 0)`.
pub fn lcs_suffix_lengths<T: PartialEq>(a: &[T], b: &[T]) -> Vec<Vec<usize>> {
    let (n, m) = (a.len(), b.len());
    let mut len = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i][j] = if a[i] == b[j] { len[i + 1][j + 1] + 1 } else { len[i + 1][j].max(len[i][j + 1]) };
        }
    }
    len
}

/// Word error rate; None when the reference has no words.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> Option<f64> {
    let (r, h) = (normalise(reference), normalise(hypothesis));
    (!r.is_empty()).then(|| edit_distance(&r, &h) as f64 / r.len() as f64)
}

/// Character error rate over the normalised words joined by single spaces; None when the
/// reference is empty.
pub fn char_error_rate(reference: &str, hypothesis: &str) -> Option<f64> {
    let chars = |t: &str| normalise(t).join(" ").chars().collect::<Vec<char>>();
    let (r, h) = (chars(reference), chars(hypothesis));
    (!r.is_empty()).then(|| edit_distance(&r, &h) as f64 / r.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_ignores_case_and_punctuation() {
        assert_eq!(normalise(" He began, a 'confused' complaint!"), ["he", "began", "a", "'confused'", "complaint"]);
        assert_eq!(word_error_rate("HE BEGAN A COMPLAINT", " He began a complaint."), Some(0.0));
    }

    #[test]
    fn error_rates_count_edits_against_the_reference_length() {
        // One substitution (cat -> hat), one deletion (sat), one insertion (down): 3 / 4.
        assert_eq!(word_error_rate("the cat sat there", "the hat there down"), Some(0.75));
        assert_eq!(word_error_rate("a b", ""), Some(1.0));
        assert_eq!(word_error_rate("", "a"), None);
        // "abc" -> "abd": one substitution in 3 characters.
        assert_eq!(char_error_rate("abc", "abd"), Some(1.0 / 3.0));
        assert_eq!(char_error_rate("ab cd", "abcd"), Some(0.2));
    }
}
