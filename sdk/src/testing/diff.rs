//! Line diffs for failure messages.

/// `text`'s lines without trailing spaces, blank lines before and after,
/// or the indentation all its non-blank lines share (that of the code a
/// literal is written in).
pub(super) fn normalize(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let first = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let last = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(first, |i| i + 1);
    let lines = &lines[first..last];
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or_default().to_owned())
        .collect()
}

/// A diff of `expected` and `actual` (`-` only expected, `+` only actual,
/// two spaces both), or `None` when they are equal.
pub(super) fn lines(expected: &[String], actual: &[String]) -> Option<String> {
    if expected == actual {
        return None;
    }
    // Longest common subsequence table, from the ends: traces are short.
    let (n, m) = (expected.len(), actual.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if expected[i] == actual[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    let mut line = |mark: &str, text: &str| {
        out.push_str(mark);
        out.push_str(text);
        out.push('\n');
    };
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            line("  ", &expected[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            line("- ", &expected[i]);
            i += 1;
        } else {
            line("+ ", &actual[j]);
            j += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{lines, normalize};

    #[test]
    fn literals_lose_their_code_indentation() {
        assert_eq!(normalize("\n    a\n      b  \n\n"), ["a", "  b"]);
    }

    #[test]
    fn a_changed_line_shows_both_versions() {
        let diff = lines(&normalize("a\nb\nc"), &normalize("a\nx\nc")).unwrap_or_default();
        assert_eq!(diff, "  a\n- b\n+ x\n  c\n");
        assert_eq!(lines(&normalize("a"), &normalize("a")), None);
    }
}
