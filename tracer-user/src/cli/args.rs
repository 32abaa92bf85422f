//! Command-line arguments.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::values;
use crate::outputs::{self, Output};
use crate::probes::{AllocatorPrograms, UnwindMode};
use crate::report::LeakKinds;

#[derive(Parser, Debug)]
#[command(
    name = "leaktrace",
    version,
    about = "Finds leaked sockets, timerfds and heap bytes, and the call sites that leaked them (eBPF)."
)]
pub struct Cli {
    /// When the kernel refuses a program, print the verifier's whole log after the one-line reason.
    #[arg(long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run COMMAND under tracing and report what it still holds when it exits.
    Run {
        #[command(flatten)]
        opts: Options,
        /// After a stop request (SIGINT, SIGTERM or SIGHUP to leaktrace, passed
        /// on to the command, or quitting the live view), kill the command if
        /// it has not ended within SECS.
        #[arg(long, value_name = "SECS", value_parser = values::seconds, allow_negative_numbers = true)]
        kill_after: Option<f64>,
        /// COMMAND is node: pass it --perf-basic-prof --interpreted-frames-native-stack
        /// so its JavaScript frames are named, and remove the /tmp/perf-PID.map it
        /// writes once the report is made.
        #[arg(long)]
        node_perf_map: bool,
        /// COMMAND is node: pass it --perf-prof --interpreted-frames-native-stack
        /// so its JavaScript frames are named from a jitdump, which gives compiled
        /// code the line of each call, and remove the jit-PID.dump it writes once
        /// the report is made.
        #[arg(long, conflicts_with = "node_perf_map")]
        node_jitdump: bool,
        /// Do not scan each process's memory at its end: no lost / still reachable classes.
        #[arg(long)]
        no_scan: bool,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Attach to a running process; report on Ctrl-C, after --duration, or when it exits.
    Attach {
        #[arg(long, value_name = "PID", value_parser = values::pid, allow_negative_numbers = true)]
        pid: u32,
        /// Detach and report after this many seconds (greater than 0, at most a year).
        #[arg(long, value_name = "SECS", value_parser = values::seconds, allow_negative_numbers = true)]
        duration: Option<f64>,
        /// Before detaching, stop the process a moment and scan its memory for
        /// what is lost (definitely, indirectly, possibly) or still reachable.
        #[arg(long)]
        scan_at_end: bool,
        /// Scan the process's memory every SECS seconds (each scan stops it a moment).
        #[arg(long, value_name = "SECS", value_parser = values::seconds, allow_negative_numbers = true)]
        scan_every: Option<f64>,
        #[command(flatten)]
        opts: Options,
    },
    /// Say what this kernel offers leaktrace and whether leaktrace can trace here.
    ///
    /// Each feature is probed for real (a tiny program loaded, a map created,
    /// a link tried), then leaktrace's own programs are loaded (nothing is
    /// attached). Prints what leaktrace uses for each part. Exit 0 when it
    /// can trace here; 2, with the reason on stderr, when it cannot.
    Check {
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HeapProbesArg {
    Auto,
    #[value(name = "inprocess")]
    InProcess,
    Uprobe,
}

/// The kind of link that hangs the allocator's uprobes (tests, benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UprobeLinksArg {
    Session,
    Multi,
    Perf,
}

/// The CLI's format list: each value names an output of `outputs/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// A gzipped pprof profile (profile.proto): go tool pprof, Pyroscope, Parca, speedscope.
    Pprof,
    /// Folded stacks, one `frame;frame;frame value` line per stack (flamegraph.pl, inferno, speedscope).
    Folded,
    /// An interactive SVG flame graph of outstanding bytes (handles in a second SVG beside it).
    Flamegraph,
}

impl Format {
    /// The output of this `--format` value (`outputs::FORMATS`).
    pub fn output(self) -> &'static dyn Output {
        let value = self.to_possible_value().expect("no format is skipped");
        outputs::by_name(value.get_name()).expect("every --format has its output")
    }
}

#[derive(Args, Debug, Clone)]
pub struct Options {
    /// Attribute each leak to the innermost frame inside PATH (a module path or a source-directory prefix, e.g. fixtures/net/).
    #[arg(long, value_name = "PATH", value_parser = values::focus)]
    pub focus: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write the report to FILE instead of stdout (required for pprof and flamegraph).
    #[arg(long, value_name = "FILE", required_if_eq_any = [("format", "pprof"), ("format", "flamegraph")])]
    pub output: Option<PathBuf>,
    /// Make the exit code the verdict (0 clean, 1 leaks, 2 tracer error, 3 incomplete, 4 --expect mismatch, 5 the command failed); without it, `run` exits with the command's status.
    #[arg(long)]
    pub ci: bool,
    /// With --ci: leaked heap bytes tolerated (refused without --ci).
    #[arg(long, default_value_t = 0, value_name = "BYTES", requires = "ci", value_parser = values::count, allow_negative_numbers = true)]
    pub max_leaked_bytes: u64,
    /// With --ci: leaked handles tolerated (refused without --ci).
    #[arg(long, default_value_t = 0, value_name = "N", requires = "ci", value_parser = values::count, allow_negative_numbers = true)]
    pub max_leaked_handles: u64,
    /// With --ci: which heap blocks fail the gate, in valgrind's leak kinds
    /// (--errors-for-leak-kinds): a comma-separated list of definite, indirect,
    /// possible, reachable, or all, or none (default: definite,indirect; blocks
    /// no scan classified always count).
    #[arg(long, value_name = "KINDS", value_parser = LeakKinds::parse, requires = "ci")]
    pub leak_kinds: Option<LeakKinds>,
    /// Compare the leaks with a manifest (the fixture's format); any missing or unexpected site fails.
    #[arg(long, value_name = "FILE")]
    pub expect: Option<PathBuf>,
    /// With --expect: only these scenarios of the manifest (default: all; refused without --expect).
    #[arg(long = "expect-scenario", value_name = "NAME", requires = "expect")]
    pub expect_scenarios: Vec<String>,
    /// Without --focus, never name this function as a call site: the caller is (repeatable; C++ and Rust names without parameters).
    #[arg(long = "alloc-wrapper", value_name = "NAME", value_parser = values::function_name)]
    pub alloc_wrappers: Vec<String>,
    /// Ignore sites matching a suppressions file (`function:NAME`, `module:TEXT`, `file:TEXT` lines).
    #[arg(long, value_name = "FILE")]
    pub suppress: Option<PathBuf>,
    /// Do not apply the built-in suppressions (memory the C runtime keeps by design).
    #[arg(long)]
    pub no_default_suppressions: bool,
    /// Probe this allocator instead of the one that serves malloc in the target.
    #[arg(long, value_name = "PATH")]
    pub allocator: Option<PathBuf>,
    /// Trace children of the target too.
    #[arg(long)]
    pub follow_forks: bool,
    /// Report descriptors 0, 1 and 2 left open like any other (a dup2 or
    /// open onto a standard stream; valgrind's --track-fds=all). Without it
    /// they are the process's standard streams, never a leak.
    #[arg(long)]
    pub track_std_fds: bool,
    /// User frames captured per allocation or handle (1-32); fewer is cheaper.
    #[arg(long, default_value_t = 32, value_parser = values::stack_depth, value_name = "N", allow_negative_numbers = true)]
    pub stack_depth: u32,
    /// How user stacks are walked: `cfi` (the binaries' own unwind tables,
    /// in the kernel: complete stacks in code without frame pointers) or
    /// `fp` (the kernel's frame-pointer walk: cheaper, wrong without them).
    #[arg(long, value_enum, default_value_t = UnwindMode::Cfi, value_name = "MODE")]
    pub unwind: UnwindMode,
    /// How the heap is traced: `inprocess` (a recorder library in the
    /// process: no trap per allocator call), `uprobe` (probes on the
    /// allocator), or `auto`: in-process where the image allows it
    /// (dynamically linked, not setuid, malloc not defined in the
    /// executable), uprobes elsewhere. `run` defaults to auto, `attach` to uprobe.
    #[arg(long, value_enum, value_name = "HOW")]
    pub heap_probes: Option<HeapProbesArg>,
    /// Sampling mode for production: trace about 1 in N allocator calls (N >= 2)
    /// and scale heap figures by N. Estimates: a site with k sampled blocks is
    /// off by about 1/sqrt(k). Descriptors stay exact.
    #[arg(long, value_name = "N", value_parser = values::sample, allow_negative_numbers = true)]
    pub sample: Option<u32>,
    /// Benchmarks only: attach empty programs at the allocator's probe points
    /// and record nothing (the cost floor of the probes themselves);
    /// `--probe-floor=floor-entries` leaves out the return probes.
    #[arg(long, hide = true, value_enum, num_args = 0..=1, default_missing_value = "floor", require_equals = true, value_name = "PROGRAMS")]
    pub probe_floor: Option<AllocatorPrograms>,
    /// Tests and benchmarks only: hang the allocator's uprobes with this
    /// kind of link, and no other (the best the kernel offers without it).
    #[arg(long, hide = true, value_enum, value_name = "KIND")]
    pub uprobe_links: Option<UprobeLinksArg>,
    /// Debugging the scan: for each heap block of at least BYTES bytes that
    /// a scan finds not lost, print on stderr the chain of pointers it was
    /// reached by, from the block back to the root (its address, its
    /// region in /proc/PID/maps, the thread whose stack it is, a register).
    #[arg(long, hide = true, value_name = "BYTES")]
    pub explain_reach: Option<u64>,
    /// Ring buffer size in MiB (a power of two): the kernel's, mapped twice
    /// into leaktrace's memory (the consumer is woken when a quarter is
    /// used), and twice that for the in-process recorders' (a recorder that finds it full waits).
    #[arg(long, default_value_t = 8, value_parser = values::ring_size, value_name = "MIB", allow_negative_numbers = true)]
    pub ring_size: u32,
    /// Open the live view even when stdin is not a terminal (keys are then read
    /// from the controlling terminal); it needs stdout to be a terminal.
    #[arg(long, conflicts_with = "no_tui")]
    pub tui: bool,
    /// No live view: trace quietly (with --interval, print the text report periodically).
    #[arg(long)]
    pub no_tui: bool,
    /// Print the text report every SECS seconds while tracing (no live view).
    #[arg(long, value_name = "SECS", value_parser = values::seconds, allow_negative_numbers = true, conflicts_with = "tui")]
    pub interval: Option<f64>,
    /// Serve OpenMetrics at http://ADDR/metrics while tracing (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// With --metrics: per-site series for at most the N largest sites of each kind.
    #[arg(long, value_name = "N", default_value_t = 20, requires = "metrics", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub metrics_top: u32,
    /// Fit each site's growth over the last SECS seconds (default: the whole session).
    #[arg(long, value_name = "SECS", value_parser = growth_window)]
    pub growth_window: Option<f64>,
    /// With --ci: fail when a site grows faster than RATE per minute (95% sure):
    /// bytes for heap sites, handles for descriptor sites (see --max-growth-handles).
    #[arg(long, value_name = "RATE", value_parser = rate, requires = "ci")]
    pub max_growth: Option<f64>,
    /// With --ci: the growth tolerated of a descriptor site, in handles per minute (default: --max-growth).
    #[arg(long, value_name = "RATE", value_parser = rate, requires = "ci")]
    pub max_growth_handles: Option<f64>,
}

fn socket_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| format!("`{s}` is not an address and port (e.g. 127.0.0.1:9464 or [::1]:9464)"))
}

fn growth_window(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 10.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds of at least 10")),
    }
}

fn rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a rate per minute (a number, 0 or more)")),
    }
}
