//! The source around a site's line, when the file is readable.

/// The file's lines, or None when it cannot be read.
pub fn read_lines(file: &str) -> Option<Vec<String>> {
    std::fs::read_to_string(file).ok().map(|t| t.lines().map(|l| l.trim_end().to_owned()).collect())
}

/// Up to one line of context on each side of `line`: (number, text).
pub fn context(lines: &[String], line: u32) -> Vec<(u32, String)> {
    let first = line.saturating_sub(1).max(1);
    (first..=line + 1).filter_map(|n| lines.get(n as usize - 1).map(|t| (n, t.clone()))).collect()
}
