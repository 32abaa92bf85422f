//! SIGINT and SIGTERM counted instead of killing leaktrace, so it can detach
//! cleanly and report. A thread of signal-hook's reads them; nothing unsafe here.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How many interrupts leaktrace has received so far.
#[derive(Clone)]
pub struct Interrupts(Arc<AtomicU32>);

impl Interrupts {
    pub fn install() -> std::io::Result<Self> {
        let count = Arc::new(AtomicU32::new(0));
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let c = count.clone();
        std::thread::Builder::new().name("leaktrace-signals".into()).spawn(move || {
            for _ in signals.forever() {
                c.fetch_add(1, Ordering::SeqCst);
            }
        })?;
        Ok(Self(count))
    }

    pub fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }

    /// The counter, for the live view's loop.
    pub fn counter(&self) -> &AtomicU32 {
        &self.0
    }
}
