//! Which allocator each traced process's image uses, and its probes on it:
//! chosen again at every exec (the executable — a script's interpreter —,
//! LD_PRELOAD and LD_LIBRARY_PATH from the new environment, DT_NEEDED),
//! inherited at fork, taken off when the process is gone. A process whose
//! image defines no allocator (a static binary without malloc) has its
//! descriptors traced and no heap: the report is then incomplete, and says
//! which process and why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::inprocess::SharedFile;
use crate::pipeline::Shared;
use crate::probes::{AllocatorChoice, EventLoopLibrary, ImageKey, Probes};

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
    /// The in-process recorders' file, when the heap is recorded in the process where it can be.
    recorder: Option<Arc<SharedFile>>,
    /// Processes whose heap the recorder in them records (no allocator probes).
    in_process: std::collections::HashSet<u32>,
    target_in_process: bool,
    /// Processes leaktrace loaded the recorder into (their first image only).
    loaded: std::collections::HashSet<u32>,
    /// The libuv of each image that has one, so many children of one program cost one search.
    event_loops: HashMap<ImageKey, Option<Arc<EventLoopLibrary>>>,
    /// The libuv each traced process's probes are on (from its image or a
    /// dlopen): what a fork inherits.
    libuv_of: HashMap<u32, Arc<EventLoopLibrary>>,
    /// Files mapped by traced processes already read for libuv: whether they define it.
    libuv_files: HashMap<(u64, u64), bool>,
}

impl Placement {
    pub fn new(probes: Arc<Mutex<Probes>>, shared: Arc<Shared>, fixed: Option<AllocatorChoice>, target: u32) -> Self {
        Self {
            probes,
            shared,
            fixed: fixed.map(Arc::new),
            cache: HashMap::new(),
            current: HashMap::new(),
            target,
            target_allocator: None,
            recorder: None,
            in_process: Default::default(),
            target_in_process: false,
            loaded: Default::default(),
            event_loops: HashMap::new(),
            libuv_of: HashMap::new(),
            libuv_files: HashMap::new(),
        }
    }

    /// Heaps are recorded in the process by the recorder sharing `file`, where an image allows it.
    pub fn record_in_process(&mut self, file: Arc<SharedFile>) {
        self.recorder = Some(file);
    }

    /// leaktrace loaded the recorder into `pid` (attach): its heap is recorded in-process.
    pub fn loaded_into(&mut self, pid: u32) {
        self.loaded.insert(pid);
    }

    /// Whether the recorder in the target's latest image records its heap.
    pub fn target_in_process(&self) -> bool {
        self.target_in_process
    }

    /// `run`: the target's pid, once it is forked.
    pub fn set_target(&mut self, pid: u32) {
        self.target = pid;
    }

    /// A new image of `pid`: after exec, or the image of a process first seen (attach).
    pub fn image(&mut self, pid: u32) {
        let choice = self.choose(pid);
        self.place(pid, choice);
        self.libuv_of.remove(&pid);
        self.place_event_loop(pid);
    }

    /// A child that shares its parent's image.
    pub fn forked(&mut self, pid: u32, parent: Option<u32>) {
        let parent = parent.or_else(|| parent_of(pid));
        // A fork keeps its parent's recorder (children are followed: it stays active).
        if let Some(c) = parent.filter(|p| self.in_process.contains(p)).and_then(|p| self.current.get(&p).cloned()) {
            self.in_process.insert(pid);
            self.current.insert(pid, c);
        } else {
            let inherited = parent.and_then(|p| self.current.get(&p).cloned());
            let choice = match inherited {
                Some(c) => Some(c),
                None => self.choose(pid),
            };
            self.place(pid, choice);
        }
        match parent.and_then(|p| self.libuv_of.get(&p).cloned()) {
            Some(lib) => self.follow_event_loop(pid, lib),
            None => self.place_event_loop(pid),
        }
    }

    /// The dynamic linker of `pid` mapped new objects: a libuv loaded by
    /// dlopen (a plugin, a runtime's module) gets its probes, under `run`
    /// before the thread that loaded it goes on.
    pub fn objects_mapped(&mut self, pid: u32) {
        if self.libuv_of.contains_key(&pid) {
            return;
        }
        if let Some(lib) = EventLoopLibrary::among_mapped(pid, &mut self.libuv_files) {
            self.follow_event_loop(pid, Arc::new(lib));
        }
    }

    /// libuv's probes on `pid` when its image uses libuv: where its handles
    /// are created, for the descriptors the loop makes for them.
    fn place_event_loop(&mut self, pid: u32) {
        let Ok(key) = ImageKey::of(pid) else { return };
        let lib = self.event_loops.entry(key.clone()).or_insert_with(|| EventLoopLibrary::for_image(pid, &key).map(Arc::new)).clone();
        if let Some(lib) = lib {
            self.follow_event_loop(pid, lib);
        }
    }

    fn follow_event_loop(&mut self, pid: u32, lib: Arc<EventLoopLibrary>) {
        if let Err(e) = lock(&self.probes).attach_event_loop(&lib, pid) {
            self.shared.state().warn(format!(
                "libuv handles of pid {pid} not followed (descriptors are, without where their handles were created): {:#}",
                anyhow::Error::from(e)
            ));
        }
        // Once, even when refused: a later dlopen does not try again.
        self.libuv_of.insert(pid, lib);
    }

    /// A process is gone: its probes come off (in the background).
    pub fn gone(&mut self, pid: u32) {
        self.current.remove(&pid);
        self.in_process.remove(&pid);
        self.libuv_of.remove(&pid);
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
                self.shared.state().untraced(format!("heap of pid {pid} not traced: {:#}", anyhow::Error::from(e)));
                return None;
            }
        };
        if let Some(known) = self.cache.get(&key) {
            return known.clone();
        }
        let choice = match AllocatorChoice::for_image(pid, &key) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                let why = anyhow::Error::from(e);
                self.shared.state().untraced(format!("heap of {} (pid {pid}) not traced, descriptors only: {why:#}", key.exe.display()));
                None
            }
        };
        self.cache.insert(key, choice.clone());
        choice
    }

    fn place(&mut self, pid: u32, choice: Option<Arc<AllocatorChoice>>) {
        if pid == self.target {
            self.target_allocator = choice.clone();
            self.target_in_process = false;
        }
        self.in_process.remove(&pid);
        if let (Some(file), Some(c)) = (&self.recorder, &choice) {
            let works = if self.loaded.remove(&pid) { Ok(()) } else { recorder_works(pid, file, c) };
            match works {
                Ok(()) => {
                    self.target_in_process |= pid == self.target;
                    self.in_process.insert(pid);
                    self.current.insert(pid, c.clone());
                    let mut probes = lock(&self.probes);
                    probes.attach_linker_hook_only(pid);
                    let warnings = probes.take_warnings();
                    drop(probes);
                    for w in warnings {
                        self.shared.state().warn(w);
                    }
                    return;
                }
                Err(why) => self.shared.state().warn(format!("heap of pid {pid} traced by uprobes, not in-process: {why}")),
            }
        }
        let mut probes = lock(&self.probes);
        match choice {
            // Probes on a path follow the process across exec: the same allocator keeps them.
            Some(c) if probes.allocator_of(pid) == Some(c.identity) => {
                self.current.insert(pid, c);
            }
            Some(c) => match probes.attach_allocator(&c, pid) {
                Ok(()) => {
                    self.shared.state().thread_cache_unprobed |= c.thread_cache_unprobed;
                    self.current.insert(pid, c);
                }
                Err(e) => {
                    self.current.remove(&pid);
                    self.shared.state().untraced(format!("heap of pid {pid} not traced: {:#}", anyhow::Error::from(e)));
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

/// Whether the recorder is active in `pid`'s new image: the dynamic linker
/// preloads it (leaktrace's environment reached the image, which is not
/// run in secure mode) and the allocator it interposes serves the image.
fn recorder_works(pid: u32, file: &SharedFile, choice: &AllocatorChoice) -> Result<(), &'static str> {
    if choice.in_executable {
        return Err("the executable defines its own allocator (or is static)");
    }
    let environ = std::fs::read(format!("/proc/{pid}/environ")).map_err(|_| "its environment cannot be read")?;
    if !file.is_in(&environ) {
        return Err(
            "its environment does not preload leaktrace's recorder (whatever started it changed LD_PRELOAD or cleared the environment)",
        );
    }
    if secure_mode(pid) {
        return Err("it runs in secure mode (setuid, setgid or file capabilities): preloading is refused");
    }
    Ok(())
}

/// AT_SECURE from the process's auxiliary vector.
fn secure_mode(pid: u32) -> bool {
    const AT_SECURE: u64 = 23;
    let Ok(auxv) = std::fs::read(format!("/proc/{pid}/auxv")) else { return true };
    auxv.chunks_exact(16)
        .map(|c| (u64::from_ne_bytes(c[..8].try_into().unwrap_or_default()), u64::from_ne_bytes(c[8..].try_into().unwrap_or_default())))
        .any(|(k, v)| k == AT_SECURE && v != 0)
}
