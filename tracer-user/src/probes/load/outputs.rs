//! What the kernel side hands leaktrace, taken out of the loaded object:
//! the event and lifecycle-notice rings and the loss counters, read by the
//! pipeline on threads of their own.

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::Ebpf;
use tracer_common::Counter;

use super::object;
use crate::probes::errors::ProbeError;

/// Reads the kernel side's loss counters; movable to the consumer thread.
pub struct CounterReader(PerCpuArray<MapData, u64>);

/// The rings and counters the pipeline reads.
pub struct Outputs {
    pub events: RingBuf<MapData>,
    pub counters: CounterReader,
    /// `attach`: forks, execs and exits of traced processes (see process.rs on the kernel side).
    pub notices: RingBuf<MapData>,
}

impl Outputs {
    /// Takes the rings and counters out of the loaded object.
    pub(crate) fn take(ebpf: &mut Ebpf) -> Result<Self, ProbeError> {
        let events = object::map(ebpf, "EVENTS")?;
        let notices = object::map(ebpf, "NOTICES")?;
        let counters = CounterReader(object::map(ebpf, "COUNTERS")?);
        Ok(Self { events, counters, notices })
    }
}

impl CounterReader {
    /// Totals over all CPUs, indexed by [`Counter`].
    pub fn read(&self) -> [u64; Counter::COUNT as usize] {
        let mut out = [0u64; Counter::COUNT as usize];
        for c in Counter::ALL {
            if let Ok(values) = self.0.get(&(c as u32), 0) {
                out[c as usize] = values.iter().sum();
            }
        }
        out
    }
}
