//! Starting a session on a new command (`run`) or a running process (`attach`).

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::probes::{AllocatorChoice, AllocatorPrograms, CounterReader, LoadOptions, ProbeError, Probes};
use crate::report::{self, model::Target, Attribution, Report, ReportInput, SiteCache, Suppressions};
use crate::symbolize::ProcessMaps;

use super::spawn::{resolve_program, Ended, Hooks, SpawnError, Supervised};
use super::{Consumer, Shared, Tracer};

#[derive(Debug, Clone)]
pub enum TargetSpec {
    Run { argv: Vec<OsString> },
    Attach { pid: u32 },
}

#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    pub load: LoadOptions,
    pub allocator: Option<PathBuf>,
    pub attribution: Attribution,
    pub suppressions: Suppressions,
    /// Benchmarks only: empty allocator probes (the probe floor).
    pub allocator_programs: AllocatorPrograms,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("no such process: {0}")]
    NoSuchProcess(u32),
    #[error("pid {0} is {1}; choose a user-space process")]
    BadTarget(u32, &'static str),
    #[error("pid {0} exited while leaktrace was attaching")]
    ExitedDuringAttach(u32),
}

enum Handle {
    Child(Supervised),
    /// A pidfd of the attached process: readable once it has exited.
    Pid(OwnedFd),
}

pub struct Session {
    pub shared: Arc<Shared>,
    /// Shared with the supervisor, which attaches followed children.
    _probes: Arc<Mutex<Probes>>,
    consumer: Option<Consumer>,
    counters: CounterReader,
    handle: Handle,
    target: Target,
    started: Instant,
    ended: Option<Option<Ended>>,
    detached: bool,
    config: SessionConfig,
    cache: SiteCache,
}

fn lock(probes: &Mutex<Probes>) -> MutexGuard<'_, Probes> {
    probes.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `run` does as the supervisor reports the target's processes.
struct RunHooks {
    shared: Arc<Shared>,
    probes: Arc<Mutex<Probes>>,
    alloc: AllocatorChoice,
    programs: AllocatorPrograms,
}

impl Hooks for RunHooks {
    fn new_process(&mut self, pid: u32) {
        // The kernel already lists the child (it follows forks in the target
        // table); its allocator probes go on before it runs.
        if let Err(e) = lock(&self.probes).attach_allocator(&self.alloc, pid, self.programs) {
            self.shared.tracer().warn(format!("child {pid}: its heap is not traced ({e})"));
        }
    }

    fn exit_stop(&mut self, pid: u32) {
        if let Ok(maps) = ProcessMaps::capture(pid) {
            self.shared.tracer().add_maps(pid, maps);
        }
        self.shared.sync();
    }

    fn gone(&mut self, pid: u32) {
        lock(&self.probes).detach_process(pid);
    }
}

fn proc_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" ")
}

impl Session {
    pub fn start(spec: TargetSpec, mut config: SessionConfig) -> Result<Self, SessionError> {
        // Validate the target before loading anything.
        let program = match &spec {
            TargetSpec::Run { argv } => Some(resolve_program(&argv[0])?),
            TargetSpec::Attach { pid } => {
                if *pid == std::process::id() {
                    return Err(SessionError::BadTarget(*pid, "leaktrace itself"));
                }
                if !proc_alive(*pid) {
                    return Err(SessionError::NoSuchProcess(*pid));
                }
                if std::fs::read_link(format!("/proc/{pid}/exe")).is_err() {
                    return Err(if proc_alive(*pid) {
                        SessionError::BadTarget(*pid, "a kernel thread")
                    } else {
                        SessionError::NoSuchProcess(*pid)
                    });
                }
                None
            }
        };
        let (probes, ring, counters) = Probes::load(&config.load)?;
        let probes = Arc::new(Mutex::new(probes));
        let shared = Shared::new(Tracer::new());
        let (handle, pid, command, alloc) = match spec {
            TargetSpec::Run { argv } => {
                let program = program.expect("resolved above");
                let alloc = match &config.allocator {
                    Some(p) => AllocatorChoice::from_path(p)?,
                    None => AllocatorChoice::for_command(
                        &program,
                        std::env::var_os("LD_PRELOAD").as_deref(),
                        std::env::var_os("LD_LIBRARY_PATH").as_deref(),
                    )?,
                };
                let command = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
                let hooks =
                    RunHooks { shared: shared.clone(), probes: probes.clone(), alloc: alloc.clone(), programs: config.allocator_programs };
                let child = Supervised::spawn(program, argv, config.load.follow_forks, Box::new(hooks))?;
                let mut p = lock(&probes);
                p.add_target(child.pid)?;
                p.attach_allocator(&alloc, child.pid, config.allocator_programs)?;
                drop(p);
                (Handle::Child(child), 0, command, alloc)
            }
            TargetSpec::Attach { pid } => {
                let alloc = match &config.allocator {
                    Some(p) => AllocatorChoice::from_path(p)?,
                    None => AllocatorChoice::for_pid(pid).map_err(|e| {
                        if proc_alive(pid) {
                            SessionError::Probe(e)
                        } else {
                            SessionError::ExitedDuringAttach(pid)
                        }
                    })?,
                };
                // SAFETY: pidfd_open returns a new descriptor or -1.
                let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
                if fd < 0 {
                    return Err(SessionError::ExitedDuringAttach(pid));
                }
                // SAFETY: we own the fresh descriptor.
                let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
                let mut p = lock(&probes);
                p.add_target(pid)?;
                p.attach_allocator(&alloc, pid, config.allocator_programs).map_err(|e| {
                    if proc_alive(pid) {
                        SessionError::Probe(e)
                    } else {
                        SessionError::ExitedDuringAttach(pid)
                    }
                })?;
                match ProcessMaps::capture(pid) {
                    Ok(maps) => shared.tracer().add_maps(pid, maps),
                    Err(_) => return Err(SessionError::ExitedDuringAttach(pid)),
                }
                (Handle::Pid(pidfd), pid, command_line(pid), alloc)
            }
        };
        config.attribution.allocator = Some(alloc.path.display().to_string());
        let consumer = Consumer::start(ring, shared.clone());
        let pid = match &handle {
            Handle::Child(c) => {
                c.start()?;
                c.pid
            }
            Handle::Pid(_) => pid,
        };
        let target = Target {
            pid,
            command,
            state: "running".into(),
            exit: None,
            duration_secs: 0.0,
            allocator: Some(format!("{} ({})", alloc.path.display(), alloc.reason)),
        };
        Ok(Self {
            shared,
            _probes: probes,
            consumer: Some(consumer),
            counters,
            handle,
            target,
            started: Instant::now(),
            ended: None,
            detached: false,
            config,
            cache: SiteCache::default(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.target.pid
    }

    /// Whether the target has ended (non-blocking). A `run` target's exit code is kept.
    pub fn poll_ended(&mut self) -> bool {
        if self.ended.is_some() {
            return true;
        }
        match &self.handle {
            Handle::Child(c) => {
                if let Some(e) = c.try_wait() {
                    self.ended = Some(Some(e));
                }
            }
            Handle::Pid(fd) => {
                let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: polling one valid descriptor without blocking.
                if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 {
                    self.ended = Some(None);
                }
            }
        }
        self.ended.is_some()
    }

    /// Blocks until a `run` target ends.
    pub fn wait_child(&mut self) {
        if let (None, Handle::Child(c)) = (&self.ended, &self.handle) {
            self.ended = Some(c.wait());
        }
    }

    /// Sends a signal to the target (a second Ctrl-C under `run`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our target.
        unsafe { libc::kill(self.target.pid as i32, sig) };
    }

    /// A report of the current state.
    pub fn report(&mut self) -> Report {
        let mut target = self.target.clone();
        target.duration_secs = self.started.elapsed().as_secs_f64();
        match &self.ended {
            Some(Some(e)) => {
                target.state = "exited".into();
                target.exit = Some(e.to_string());
            }
            Some(None) => target.state = "exited".into(),
            None if self.detached => target.state = "detached".into(),
            None => {}
        }
        let counters = self.counters.read();
        let mut tracer = self.shared.tracer();
        let input = ReportInput {
            target,
            counters,
            attribution: &self.config.attribution,
            suppressions: &self.config.suppressions,
            now_ns: monotonic_ns(),
            sample_every: self.config.load.sample_every,
        };
        report::build(&mut tracer, &mut self.cache, input)
    }

    /// Stops consuming (after draining everything) and detaches; the final report.
    pub fn finish(mut self) -> Report {
        if let Some(c) = self.consumer.take() {
            c.stop();
        }
        if self.ended.is_none() {
            self.detached = true;
        }
        self.report()
    }

    /// Events ingested so far.
    pub fn events(&self) -> u64 {
        self.shared.tracer().events
    }
}

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writing into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
