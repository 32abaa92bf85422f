//! Starting a session on a new command (`run`) or a running process (`attach`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::tables::TableService;
use super::{Handle, Session};
use crate::aggregate::State;
use crate::pipeline::{Consumer, Ingestor, Shared};
use crate::probes::{AllocatorChoice, AllocatorPrograms, LoadOptions, ProbeError, Probes};
use crate::process::attach::{self, Unfit};
use crate::process::{command_line, proc_alive, resolve_program, Hooks, SpawnError, Supervised, Watched};
use crate::report::model::{Target, TargetState};
use crate::report::{Attribution, SiteCache, Suppressions};
use crate::symbolize::ProcessMaps;

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
    #[error("pid {0} is {1}; choose a running user-space process")]
    BadTarget(u32, &'static str),
    #[error("pid {0} exited while leaktrace was attaching")]
    ExitedDuringAttach(u32),
    #[error("starting a thread: {0}")]
    Thread(std::io::Error),
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
            self.shared.state().warn(format!("child {pid}: its heap is not traced ({e})"));
        }
    }

    fn exit_stop(&mut self, pid: u32) {
        if let Ok(maps) = ProcessMaps::capture(pid) {
            self.shared.state().add_maps(pid, maps);
        }
        self.shared.sync();
    }

    fn gone(&mut self, pid: u32) {
        lock(&self.probes).detach_process(pid);
    }
}

/// A target accepted, its probes attached, not yet running (`run`).
struct Started {
    handle: Handle,
    pid: u32,
    command: String,
    alloc: AllocatorChoice,
}

fn validate(spec: &TargetSpec) -> Result<Option<PathBuf>, SessionError> {
    match spec {
        TargetSpec::Run { argv } => Ok(Some(resolve_program(&argv[0])?)),
        TargetSpec::Attach { pid } => match attach::check(*pid) {
            Ok(()) => Ok(None),
            Err(Unfit::NoSuchProcess) => Err(SessionError::NoSuchProcess(*pid)),
            Err(why) => Err(SessionError::BadTarget(*pid, why.describe())),
        },
    }
}

fn start_run(
    program: &Path,
    argv: Vec<OsString>,
    config: &SessionConfig,
    shared: &Arc<Shared>,
    probes: &Arc<Mutex<Probes>>,
) -> Result<Started, SessionError> {
    let alloc = match &config.allocator {
        Some(p) => AllocatorChoice::from_path(p)?,
        None => AllocatorChoice::for_command(
            program,
            std::env::var_os("LD_PRELOAD").as_deref(),
            std::env::var_os("LD_LIBRARY_PATH").as_deref(),
        )?,
    };
    let command = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let hooks = RunHooks { shared: shared.clone(), probes: probes.clone(), alloc: alloc.clone(), programs: config.allocator_programs };
    let child = Supervised::spawn(program.to_path_buf(), argv, config.load.follow_forks, Box::new(hooks))?;
    let pid = child.pid;
    let mut p = lock(probes);
    p.add_target(pid)?;
    p.attach_allocator(&alloc, pid, config.allocator_programs)?;
    drop(p);
    Ok(Started { handle: Handle::Child(child), pid, command, alloc })
}

fn start_attach(pid: u32, config: &SessionConfig, shared: &Arc<Shared>, probes: &Mutex<Probes>) -> Result<Started, SessionError> {
    // Anything failing while the process is gone means it exited meanwhile.
    let gone_or = |e: SessionError| if proc_alive(pid) { e } else { SessionError::ExitedDuringAttach(pid) };
    let alloc = match &config.allocator {
        Some(p) => AllocatorChoice::from_path(p)?,
        None => AllocatorChoice::for_pid(pid).map_err(|e| gone_or(e.into()))?,
    };
    let watched = Watched::open(pid).ok_or(SessionError::ExitedDuringAttach(pid))?;
    let mut p = lock(probes);
    p.add_target(pid)?;
    p.attach_allocator(&alloc, pid, config.allocator_programs).map_err(|e| gone_or(e.into()))?;
    drop(p);
    let maps = ProcessMaps::capture(pid).map_err(|_| SessionError::ExitedDuringAttach(pid))?;
    shared.state().add_maps(pid, maps);
    Ok(Started { handle: Handle::Pid(watched), pid, command: command_line(pid), alloc })
}

impl Session {
    pub fn start(spec: TargetSpec, mut config: SessionConfig) -> Result<Self, SessionError> {
        // Validate the target before loading anything.
        let program = validate(&spec)?;
        let (mut probes, ring, counters) = Probes::load(&config.load)?;
        let tables = probes.unwind_tables(&config.load)?.map(TableService::new);
        let probes = Arc::new(Mutex::new(probes));
        let shared = Shared::new(State::new());
        if let Some(t) = &tables {
            match (&spec, &program) {
                (TargetSpec::Run { .. }, Some(program)) => t.preload_command(program, &shared),
                (TargetSpec::Attach { pid }, _) => t.preload_process(*pid, &shared),
                _ => {}
            }
        }
        let requests = tables.as_ref().map(|t| t.serve(shared.clone())).transpose().map_err(SessionError::Thread)?;
        let started = match (spec, program) {
            (TargetSpec::Run { argv }, Some(program)) => start_run(&program, argv, &config, &shared, &probes)?,
            (TargetSpec::Attach { pid }, _) => start_attach(pid, &config, &shared, &probes)?,
            (TargetSpec::Run { .. }, None) => unreachable!("validate resolves the program of `run`"),
        };
        config.attribution.allocator = Some(started.alloc.path.display().to_string());
        let ingestor = Ingestor::new(config.load.stack_frames as usize, requests);
        let consumer = Consumer::start(ring, shared.clone(), ingestor).map_err(SessionError::Thread)?;
        if let Handle::Child(c) = &started.handle {
            c.start()?;
        }
        let target = Target {
            pid: started.pid,
            command: started.command,
            state: TargetState::Running,
            exit: None,
            duration_secs: 0.0,
            allocator: Some(format!("{} ({})", started.alloc.path.display(), started.alloc.reason)),
        };
        Ok(Self {
            shared,
            _probes: probes,
            consumer: Some(consumer),
            counters,
            handle: started.handle,
            target,
            started: Instant::now(),
            ended: None,
            detached: false,
            config,
            cache: SiteCache::default(),
        })
    }
}
