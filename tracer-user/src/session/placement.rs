//! Which allocator each traced process's image uses, and its probes on it:
//! chosen again at every exec (the executable — a script's interpreter —,
//! LD_PRELOAD and LD_LIBRARY_PATH from the new environment, DT_NEEDED),
//! inherited at fork, taken off when the process is gone. A process whose
//! image defines no allocator (a static binary without malloc) has its
//! descriptors traced and no heap: the report is then incomplete, and says
//! which process and why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::pipeline::Shared;
use crate::probes::{AllocatorChoice, ImageKey, Probes};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Placement {
    probes: Arc<Mutex<Probes>>,
    shared: Arc<Shared>,
    /// `--allocator PATH`: the same for every image.
    fixed: Option<Arc<AllocatorChoice>>,
    /// Choices by image, so many children of one program cost one detection.
    cache: HashMap<ImageKey, Option<Arc<AllocatorChoice>>>,
    /// The allocator of each traced process's current image.
    current: HashMap<u32, Arc<AllocatorChoice>>,
    /// The process the session is about, and the allocator of its latest
    /// image (the report's, kept once the process is gone).
    target: u32,
    target_allocator: Option<Arc<AllocatorChoice>>,
}

impl Placement {
    pub fn new(probes: Arc<Mutex<Probes>>, shared: Arc<Shared>, fixed: Option<AllocatorChoice>, target: u32) -> Self {
        Self { probes, shared, fixed: fixed.map(Arc::new), cache: HashMap::new(), current: HashMap::new(), target, target_allocator: None }
    }

    /// `run`: the target's pid, once it is forked.
    pub fn set_target(&mut self, pid: u32) {
        self.target = pid;
    }

    /// A new image of `pid`: after exec, or the image of a process first seen (attach).
    pub fn image(&mut self, pid: u32) {
        let choice = self.choose(pid);
        self.place(pid, choice);
    }

    /// A child that shares its parent's image.
    pub fn forked(&mut self, pid: u32, parent: Option<u32>) {
        let inherited = parent.or_else(|| parent_of(pid)).and_then(|p| self.current.get(&p).cloned());
        let choice = match inherited {
            Some(c) => Some(c),
            None => self.choose(pid),
        };
        self.place(pid, choice);
    }

    /// A process is gone: its probes come off (in the background).
    pub fn gone(&mut self, pid: u32) {
        self.current.remove(&pid);
        lock(&self.probes).detach_process(pid);
    }

    /// The allocator of a traced process's current image.
    pub fn allocator_of(&self, pid: u32) -> Option<Arc<AllocatorChoice>> {
        self.current.get(&pid).cloned()
    }

    /// The allocator of the target's latest image.
    pub fn target_allocator(&self) -> Option<Arc<AllocatorChoice>> {
        self.target_allocator.clone()
    }

    fn choose(&mut self, pid: u32) -> Option<Arc<AllocatorChoice>> {
        if let Some(fixed) = &self.fixed {
            return Some(fixed.clone());
        }
        let key = match ImageKey::of(pid) {
            Ok(k) => k,
            Err(e) => {
                self.shared.state().untraced(format!("heap of pid {pid} not traced: {e}"));
                return None;
            }
        };
        if let Some(known) = self.cache.get(&key) {
            return known.clone();
        }
        let choice = match AllocatorChoice::for_image(pid, &key) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                self.shared.state().untraced(format!("heap of {} (pid {pid}) not traced, descriptors only: {e}", key.exe.display()));
                None
            }
        };
        self.cache.insert(key, choice.clone());
        choice
    }

    fn place(&mut self, pid: u32, choice: Option<Arc<AllocatorChoice>>) {
        if pid == self.target {
            self.target_allocator = choice.clone();
        }
        let mut probes = lock(&self.probes);
        match choice {
            // Probes on a path follow the process across exec: the same allocator keeps them.
            Some(c) if probes.allocator_of(pid) == Some(c.identity) => {
                self.current.insert(pid, c);
            }
            Some(c) => match probes.attach_allocator(&c, pid) {
                Ok(()) => {
                    self.current.insert(pid, c);
                }
                Err(e) => {
                    self.current.remove(&pid);
                    self.shared.state().untraced(format!("heap of pid {pid} not traced: {e}"));
                }
            },
            None => {
                self.current.remove(&pid);
                probes.detach_process(pid);
            }
        }
        let warnings = probes.take_warnings();
        drop(probes);
        for w in warnings {
            self.shared.state().warn(w);
        }
    }
}

/// The parent of `pid`, from /proc/PID/stat.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = crate::process::proc_text(&format!("/proc/{pid}/stat"))?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}
