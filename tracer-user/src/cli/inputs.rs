//! Everything read or checked before tracing starts, so that a bad argument
//! or input file is one line and exit code 2 with nothing loaded.

use std::io::{IsTerminal, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use tracer_common::manifest::{Expectation, Manifest};

use super::args::UprobeLinksArg;
use super::{HeapProbesArg, Options};
use crate::inprocess::HeapProbes;
use crate::outputs::Destination;
use crate::probes::{AllocatorChoice, LinkMode, LoadOptions, UnwindMode};
use crate::report::attribution::{Attribution, Suppressions};
use crate::session::SessionConfig;
use nix::fcntl::OFlag;

/// The largest --expect manifest or --suppress file read.
pub const MAX_TEXT_INPUT: u64 = 16 << 20;
/// The largest --allocator object read.
pub const MAX_ALLOCATOR: u64 = 1 << 30;

/// What the options resolve to once their files are read.
pub struct Inputs {
    pub config: SessionConfig,
    pub expected: Option<Expectation>,
    /// --output, opened (and its directory created) before tracing.
    pub output: Option<Destination>,
    /// What the format writes beside --output (flamegraph: the handles flame
    /// graph), opened the same way (removed again when there is nothing to write).
    pub handles_output: Option<Destination>,
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens an input file: a regular file of at most `cap` bytes (a FIFO is
/// never waited on, a device never read).
fn open_input(path: &Path, cap: u64) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot read it: {e}"))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        bail!("it is {}; expected a regular file", kind_of(meta.file_type()));
    }
    if meta.len() > cap {
        bail!("it is {} bytes; input files may be at most {cap} bytes", meta.len());
    }
    Ok(file)
}

/// A text input file, capped at [`MAX_TEXT_INPUT`] bytes.
fn read_text(path: &Path) -> anyhow::Result<String> {
    let file = open_input(path, MAX_TEXT_INPUT)?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_INPUT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_TEXT_INPUT {
        bail!("it grew past {MAX_TEXT_INPUT} bytes while being read");
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("it is not UTF-8 text"))
}

fn expected(opts: &Options) -> anyhow::Result<Option<Expectation>> {
    let Some(path) = &opts.expect else { return Ok(None) };
    let origin = path.display().to_string();
    let context = || format!("--expect {origin}");
    let text = read_text(path).with_context(context)?;
    let manifest = Manifest::parse(&text, &origin).with_context(context)?;
    let names: Vec<&str> = opts.expect_scenarios.iter().map(String::as_str).collect();
    Ok(Some(manifest.expectation(&names).with_context(context)?))
}

fn suppressions(opts: &Options) -> anyhow::Result<Suppressions> {
    let mut suppressions = if opts.no_default_suppressions { Suppressions::default() } else { Suppressions::builtin() };
    if let Some(path) = &opts.suppress {
        let text = read_text(path).with_context(|| format!("--suppress {}", path.display()))?;
        suppressions.extend(Suppressions::parse(&text, &path.display().to_string())?);
    }
    Ok(suppressions)
}

/// --allocator: a readable ELF object of bounded size that defines malloc and free.
fn check_allocator(path: &Path) -> anyhow::Result<()> {
    let context = || format!("--allocator {}", path.display());
    open_input(path, MAX_ALLOCATOR).with_context(context)?;
    AllocatorChoice::from_path(path).with_context(context)?;
    Ok(())
}

/// --heap-probes, with the options that need uprobes. `run`'s default
/// (auto) is settled here; `attach` sets its own default (uprobe) later.
fn heap_probes(opts: &Options) -> anyhow::Result<HeapProbes> {
    let needs_uprobes = [
        (opts.sample.is_some(), "--sample"),
        (opts.probe_floor.is_some(), "--probe-floor"),
        (opts.allocator.is_some(), "--allocator"),
        (opts.unwind == UnwindMode::FramePointers, "--unwind fp"),
    ];
    let conflict = needs_uprobes.iter().find(|(given, _)| *given).map(|(_, name)| *name);
    Ok(match (opts.heap_probes, conflict) {
        (Some(HeapProbesArg::InProcess), Some(name)) => {
            bail!("--heap-probes inprocess cannot be combined with {name}, which needs the allocator's uprobes")
        }
        (Some(HeapProbesArg::InProcess), None) => HeapProbes::InProcess,
        (Some(HeapProbesArg::Uprobe), _) | (_, Some(_)) => HeapProbes::Uprobe,
        (Some(HeapProbesArg::Auto), None) => HeapProbes::Auto,
        (None, None) => HeapProbes::Default,
    })
}

/// --tui: the live view draws on stdout and reads keys from the terminal.
fn check_terminal(opts: &Options) -> anyhow::Result<()> {
    if !opts.tui {
        return Ok(());
    }
    if !std::io::stdout().is_terminal() {
        bail!("--tui: the live view needs a terminal, and stdout is not one (use --no-tui, or --output for the report)");
    }
    let keys = std::io::stdin().is_terminal() || std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_ok();
    if !keys {
        bail!("--tui: the live view needs a terminal to read keys from, and there is none");
    }
    Ok(())
}

pub fn prepare(opts: &Options) -> anyhow::Result<Inputs> {
    check_terminal(opts)?;
    let expected = expected(opts)?;
    let suppressions = suppressions(opts)?;
    if let Some(path) = &opts.allocator {
        check_allocator(path)?;
    }
    let config = SessionConfig {
        load: LoadOptions {
            ring_bytes: opts.ring_size << 20,
            stack_frames: opts.stack_depth,
            follow_forks: opts.follow_forks,
            sample_every: opts.sample.unwrap_or(0),
            unwind: opts.unwind,
            links: opts.uprobe_links.map(|l| match l {
                UprobeLinksArg::Session => LinkMode::Session,
                UprobeLinksArg::Multi => LinkMode::Multi,
                UprobeLinksArg::Perf => LinkMode::PerfEvent,
            }),
            ..LoadOptions::default()
        },
        allocator: opts.allocator.clone(),
        attribution: Attribution { focus: opts.focus.clone(), allocator: None, wrappers: opts.alloc_wrappers.clone() },
        suppressions,
        allocator_programs: opts.probe_floor.unwrap_or_default(),
        keep_stacks: opts.format.output().needs_stacks(),
        scan_at_exit: false,
        explain_reach: opts.explain_reach,
        heap: heap_probes(opts)?,
        track_std_fds: opts.track_std_fds,
    };
    // Last: it may create the output's directory, which no later refusal should leave behind.
    let output = opts.output.as_deref().map(Destination::open).transpose()?;
    let beside = output.as_ref().and_then(|dest| opts.format.output().beside(dest.path()));
    let handles_output = beside.as_deref().map(Destination::open).transpose()?;
    Ok(Inputs { config, expected, output, handles_output })
}
