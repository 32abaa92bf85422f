//! What the layers below know, in the report's types: how the target ended
//! (`process`) and how descriptors are traced (`probes`). The report's
//! model names neither layer; the session, which holds both, converts.

use crate::probes::DescriptorProbes;
use crate::process::Ended;
use crate::report::model::{DescriptorTracing, ExitStatus};

pub fn exit_status(e: Ended) -> ExitStatus {
    match e {
        Ended::Code(c) => ExitStatus { code: Some(c), signal: None },
        Ended::Signal(s) => ExitStatus { code: None, signal: Some(s) },
    }
}

pub fn descriptor_tracing(p: &DescriptorProbes) -> DescriptorTracing {
    DescriptorTracing { mechanism: p.mechanism, syscalls: p.syscalls, not_on_this_kernel: p.not_on_this_kernel.clone() }
}
