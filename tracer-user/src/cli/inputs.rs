//! Everything read or checked before tracing starts, so that a bad argument
//! or input file is one line and exit code 2 with nothing loaded.

use anyhow::Context;
use tracer_common::manifest::{Expectation, Manifest};

use super::{Format, Options};
use crate::probes::LoadOptions;
use crate::report::{Attribution, Suppressions};
use crate::session::SessionConfig;

/// What the options resolve to once their files are read.
pub struct Inputs {
    pub config: SessionConfig,
    pub expected: Option<Expectation>,
}

pub fn prepare(opts: &Options) -> anyhow::Result<Inputs> {
    let expected = match &opts.expect {
        Some(path) => {
            let manifest = Manifest::load(path).with_context(|| format!("--expect {}", path.display()))?;
            let names: Vec<&str> = opts.expect_scenarios.iter().map(String::as_str).collect();
            Some(manifest.expectation(&names).with_context(|| format!("--expect {}", path.display()))?)
        }
        None => None,
    };
    let mut suppressions = if opts.no_default_suppressions { Suppressions::default() } else { Suppressions::builtin() };
    if let Some(path) = &opts.suppress {
        suppressions.extend(Suppressions::load(path)?);
    }
    let config = SessionConfig {
        load: LoadOptions {
            ring_bytes: opts.ring_size << 20,
            stack_frames: opts.stack_depth,
            follow_forks: opts.follow_forks,
            sample_every: opts.sample.unwrap_or(0),
            unwind: opts.unwind,
            ..LoadOptions::default()
        },
        allocator: opts.allocator.clone(),
        attribution: Attribution { focus: opts.focus.clone(), allocator: None, wrappers: opts.alloc_wrappers.clone() },
        suppressions,
        allocator_programs: opts.probe_floor.unwrap_or_default(),
        keep_stacks: matches!(opts.format, Format::Pprof | Format::Folded | Format::Flamegraph),
        scan_at_exit: false,
    };
    Ok(Inputs { config, expected })
}
