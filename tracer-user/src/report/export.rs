//! Every profile format at once, beside a base path (the live view's export).

use std::path::{Path, PathBuf};

use super::{flamegraph, folded, pprof, Report};

/// Writes `BASE.pb.gz`, `BASE.folded` and `BASE.svg` (and `BASE.handles.svg`); the files written.
pub fn write_profiles(report: &Report, base: &Path) -> std::io::Result<Vec<PathBuf>> {
    let with = |ext: &str| {
        let mut name = base.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let (pb, fo) = (with(".pb.gz"), with(".folded"));
    std::fs::write(&pb, pprof::encode(report)?)?;
    std::fs::write(&fo, folded::render(report))?;
    let mut written = vec![pb, fo];
    written.extend(flamegraph::write(report, &with(".svg"))?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::Target;

    #[test]
    fn writes_each_format_beside_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let r = Report::of_sites(Target::default(), Vec::new(), 0);
        let written = write_profiles(&r, &dir.path().join("leaktrace-1-2")).unwrap();
        let names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["leaktrace-1-2.pb.gz", "leaktrace-1-2.folded", "leaktrace-1-2.svg"]);
        assert!(std::fs::read_to_string(&written[2]).unwrap().contains("no bytes outstanding"));
    }
}
