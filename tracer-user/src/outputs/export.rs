//! Every profile format at once, for files beside one another (the live
//! view's export). The caller creates the files: names it generates are
//! created new, never opened through what is there.

use super::{flamegraph, folded, pprof, Report};

/// (suffix, contents) of `.pb.gz`, `.folded` and `.svg` (and `.handles.svg`
/// when handles are outstanding).
pub fn profiles(report: &Report) -> std::io::Result<Vec<(&'static str, Vec<u8>)>> {
    let graphs = flamegraph::render(report)?;
    let mut out = vec![(".pb.gz", pprof::encode(report)?), (".folded", folded::render(report).into_bytes()), (".svg", graphs.bytes)];
    if let Some(h) = graphs.handles {
        out.push((".handles.svg", h));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Target;

    #[test]
    fn every_format_with_its_suffix() {
        let r = Report::of_sites(Target::default(), Vec::new(), 0);
        let all = profiles(&r).unwrap();
        let suffixes: Vec<&str> = all.iter().map(|(s, _)| *s).collect();
        assert_eq!(suffixes, [".pb.gz", ".folded", ".svg"]);
        assert!(String::from_utf8_lossy(&all[2].1).contains("no bytes outstanding"));
    }
}
