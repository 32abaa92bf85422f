//! The in-process recorder's place in a session: its shared file for a
//! command `run` preloads it into, or loaded into a running process
//! (`attach --heap-probes inprocess`) and taken out again at the end.

use std::sync::Arc;

use super::config::{SessionConfig, SessionError, TargetSpec};
use crate::inprocess::{shared_file, HeapProbes, SharedFile};
use crate::pipeline::Shared;
use crate::probes::PAGES_PER_ROW;
use crate::process::{InjectError, Injection};

/// The recorder as a session holds it.
pub struct Recorder {
    pub file: Arc<SharedFile>,
    /// Loaded into the attached process at this address (None under `run`).
    pub injected: Option<(u32, u64)>,
}

/// The recorder for `spec`, if its heap is to be recorded in-process.
pub fn start(spec: &TargetSpec, config: &SessionConfig, shared: &Shared) -> Result<Option<Recorder>, SessionError> {
    let rows = config.load.unwind_rows;
    // Twice the kernel's: it is mapped once, and its records are larger.
    let ring = (2 * u64::from(config.load.ring_bytes)).next_power_of_two().max(shared_file::RING_CHUNK);
    let layout = shared_file::layout(ring, rows, (rows / PAGES_PER_ROW).max(1));
    let (follow, frames) = (config.load.follow_forks, config.load.stack_frames);
    match (spec, config.heap) {
        (_, HeapProbes::Uprobe) | (TargetSpec::Attach { .. }, HeapProbes::Default | HeapProbes::Auto) => Ok(None),
        (TargetSpec::Attach { pid }, HeapProbes::InProcess) => {
            let e = |e: InjectError| SessionError::Recorder(e.to_string());
            let mut inj = Injection::load(*pid, crate::inprocess::RECORDER).map_err(e)?;
            let target = inj.create_shared(layout.total()).map_err(e)?;
            let file = SharedFile::over(
                target.file.try_clone().map_err(|x| SessionError::Recorder(x.to_string()))?,
                &layout,
                follow,
                frames,
                None,
            )
            .map_err(|x| SessionError::Recorder(x.to_string()))?;
            inj.attach(&target).map_err(e)?;
            inj.redirect().map_err(e)?;
            inj.close_in_target(target.target_fd).map_err(e)?;
            let base = inj.library_base();
            inj.resume();
            Ok(Some(Recorder { file: Arc::new(file), injected: Some((*pid, base)) }))
        }
        (TargetSpec::Run { .. }, wanted) => match SharedFile::create(&layout, follow, frames) {
            Ok(file) => Ok(Some(Recorder { file: Arc::new(file), injected: None })),
            Err(e) if wanted == HeapProbes::InProcess => Err(SessionError::Recorder(e.to_string())),
            Err(e) => {
                shared.state().warn(format!("heap traced by uprobes, not in-process: {e}"));
                Ok(None)
            }
        },
    }
}

impl Recorder {
    /// The end of an attached session: the recorder put out of the
    /// program's way (its GOT entries restored), inert. Says so if it cannot.
    pub fn take_out(&self, shared: &Shared) {
        let Some((pid, base)) = self.injected else { return };
        if !crate::process::proc_alive(pid) {
            return;
        }
        if let Err(e) = Injection::detach_recorder(pid, base) {
            shared.state().warn(format!("the recorder could not be taken out of pid {pid}: {e}"));
            // At least make it stop recording.
            self.file.disable();
        }
    }
}
