//! The userspace side of unwinding: CFI rows of the modules a stack crosses,
//! for [`super::unwind`]. Owned by the event pipeline, apart from the
//! report's [`super::Symbolizer`], so neither waits for the other.

use std::collections::HashMap;

use super::module::UnwindRow;
use super::modules::ModuleSet;
use super::{unwind, ProcessMaps, UnwindInput, Unwound};

#[derive(Default)]
pub struct Unwinder {
    modules: ModuleSet,
    rows: HashMap<(usize, u64), Option<UnwindRow>>,
    ctx: gimli::UnwindContext<usize>,
}

impl Unwinder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Repairs a kernel stack through frameless code (see [`unwind`]).
    pub fn unwind(&mut self, maps: &ProcessMaps, input: &UnwindInput) -> Unwound {
        let mut row_at = |pc: u64| -> Option<UnwindRow> {
            let probe = pc.saturating_sub(1);
            let m = maps.find(probe)?.clone();
            let i = self.modules.index_of(&m)?;
            let module = self.modules.get(i)?;
            let svma = module.svma_of_offset(probe - m.start + m.offset)?;
            if let Some(row) = self.rows.get(&(i, svma)) {
                return *row;
            }
            let row = module.unwind_row(svma, &mut self.ctx);
            self.rows.insert((i, svma), row);
            row
        };
        unwind::unwind(input, &mut row_at)
    }
}
