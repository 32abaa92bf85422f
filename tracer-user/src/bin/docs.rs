//! `leaktrace-docs DIR`: writes leaktrace's shell completions and man pages
//! into DIR (`cargo xtask dist` runs it) and prints each file's path.

fn main() -> anyhow::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else { anyhow::bail!("usage: leaktrace-docs DIR") };
    for file in leaktrace::cli::docs::generate(std::path::Path::new(&dir))? {
        println!("{}", file.display());
    }
    Ok(())
}
