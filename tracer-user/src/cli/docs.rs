//! Shell completions and man pages, generated from the clap definitions
//! themselves (by `leaktrace-docs DIR`, which `cargo xtask dist` runs).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes completions for bash, zsh and fish into `dir/completions` and a
/// man page for leaktrace and each subcommand into `dir/man`; returns the
/// files written.
pub fn generate(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let (completions, man) = (dir.join("completions"), dir.join("man"));
    for d in [&completions, &man] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut written = Vec::new();
    let mut cmd = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd, "leaktrace", &completions)
            .with_context(|| format!("writing {shell} completions"))?;
        written.push(path);
    }
    clap_mangen::generate_to(Cli::command(), &man).context("writing the man pages")?;
    written.extend(pages(&man)?);
    Ok(written)
}

/// The man pages (`*.1`) in `dir`, sorted: clap_mangen writes one per
/// visible subcommand without saying which.
fn pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_pages_cover_every_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        for expected in
            ["leaktrace.bash", "_leaktrace", "leaktrace.fish", "leaktrace.1", "leaktrace-run.1", "leaktrace-attach.1", "leaktrace-check.1"]
        {
            assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
        }
        let run = std::fs::read_to_string(dir.path().join("man/leaktrace-run.1")).unwrap();
        assert!(run.contains("focus") && run.contains(".TH"), "{run}");
        let bash = std::fs::read_to_string(dir.path().join("completions/leaktrace.bash")).unwrap();
        assert!(bash.contains("--stack-depth") && bash.contains("check"), "bash completions name the options and subcommands");
    }
}
