//! Starting a session on a new command (`run`) or a running process (`attach`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::config::{SessionConfig, SessionError, TargetSpec};
use super::follow::Follower;
use super::placement::{lock, Placement};
use super::reachability;
use super::tables::TableService;
use super::{Handle, Session};
use crate::aggregate::State;
use crate::inprocess::{InProcessReader, SharedFile};
use crate::pipeline::{Consumer, Ingestor, Shared, TableRequest};
use crate::probes::{AllocatorChoice, Probes, PAUSE_SIGNAL};
use crate::process::attach::{self, Unfit};
use crate::process::{command_line, monotonic_ns, proc_alive, resolve_program, ChildSignals, Command, Hooks, Supervised, Watched};
use crate::report::attribution::SiteCache;
use crate::report::model::{Target, TargetState};
use crate::symbolize::ProcessMaps;

/// What `run` does as the supervisor reports the target's processes.
struct RunHooks {
    shared: Arc<Shared>,
    placement: Arc<Mutex<Placement>>,
    probes: Arc<Mutex<Probes>>,
    tables: Option<Arc<TableService>>,
    /// Scan each process's memory at its end (reach/).
    scan: bool,
    /// `--explain-reach`.
    explain: Option<u64>,
    /// `--sample`: the outstanding table holds some blocks only.
    sampled: bool,
}

impl Hooks for RunHooks {
    fn exec(&mut self, pid: u32) {
        lock(&self.placement).image(pid);
    }

    fn new_process(&mut self, pid: u32, parent: Option<u32>) {
        // The kernel already lists the child (it follows forks in the target
        // table); its allocator probes go on before it runs.
        lock(&self.placement).forked(pid, parent);
    }

    fn exit_stop(&mut self, pid: u32, threads: &[u32]) {
        // Everything before the exit first (an exec among it starts the
        // image these maps belong to), then the maps while they exist.
        self.shared.sync();
        if let Ok(maps) = ProcessMaps::capture(pid) {
            self.shared.state().add_maps(pid, maps);
        }
        if self.scan {
            let glibc = reachability::is_glibc(lock(&self.placement).allocator_of(pid).as_deref());
            match reachability::scan_stopped(&self.shared, pid, threads, glibc, self.sampled, self.explain) {
                Ok(scan) => self.shared.state().add_scan(scan),
                Err(e) => self.shared.state().untraced(format!("no reachability scan of pid {pid}: {e}")),
            }
        }
    }

    fn gone(&mut self, pid: u32) {
        lock(&self.placement).gone(pid);
    }

    fn intercept(&mut self, tid: u32, sig: i32) -> bool {
        // The kernel stopped the thread as the dynamic linker announced new
        // objects: their tables go in before their code runs, and the
        // signal is never delivered.
        if sig != PAUSE_SIGNAL {
            return false;
        }
        let Some(pid) = lock(&self.probes).take_paused(tid) else { return false };
        if let Some(t) = &self.tables {
            t.preload_process(pid, &self.shared);
        }
        // And the image's maps, while it is stopped: a descriptor it opens and
        // passes through an exec is named with them even if the pipeline
        // reaches its record after the exec. Everything before the stop
        // first, so that they go to this image.
        self.shared.sync();
        if let Ok(maps) = ProcessMaps::capture(pid) {
            self.shared.state().add_maps(pid, maps);
        }
        lock(&self.placement).objects_mapped(pid);
        true
    }
}

/// What either kind of start hands the session.
struct Started {
    handle: Handle,
    pid: u32,
    command: String,
    placement: Arc<Mutex<Placement>>,
}

/// Checks the target before anything is loaded: the program `run` resolves to.
fn validate(spec: &TargetSpec, config: &SessionConfig) -> Result<(Option<PathBuf>, Option<AllocatorChoice>), SessionError> {
    let program = match spec {
        TargetSpec::Run { argv, .. } => Some(resolve_program(&argv[0])?),
        TargetSpec::Attach { pid } => match attach::check(*pid) {
            Ok(()) => None,
            Err(Unfit::NoSuchProcess) => return Err(SessionError::NoSuchProcess(*pid)),
            Err(why) => return Err(SessionError::BadTarget(*pid, why.describe())),
        },
    };
    let fixed = config.allocator.as_deref().map(AllocatorChoice::from_path).transpose()?;
    Ok((program, fixed))
}

/// Forks the command waiting before exec, and puts it in the target table.
/// What a start shares with the session: the pipeline's state, the probes, the tables.
struct Parts {
    shared: Arc<Shared>,
    probes: Arc<Mutex<Probes>>,
    tables: Option<Arc<TableService>>,
    scan_at_exit: bool,
    explain_reach: Option<u64>,
    sampled: bool,
    /// The in-process recorders' file (`run` with --heap-probes auto or inprocess).
    recorder: Option<Arc<SharedFile>>,
}

fn start_run(
    program: PathBuf,
    argv: Vec<OsString>,
    signals: ChildSignals,
    fixed: Option<AllocatorChoice>,
    follow_forks: bool,
    parts: &Parts,
) -> Result<Started, SessionError> {
    let (shared, probes) = (&parts.shared, &parts.probes);
    let command = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    // The placement learns the target's pid once it is forked.
    let placement = Arc::new(Mutex::new(Placement::new(probes.clone(), shared.clone(), fixed, 0)));
    let env = match &parts.recorder {
        Some(file) => {
            lock(&placement).record_in_process(file.clone());
            file.environment()
        }
        None => Vec::new(),
    };
    let hooks = RunHooks {
        shared: shared.clone(),
        placement: placement.clone(),
        probes: probes.clone(),
        tables: parts.tables.clone(),
        scan: parts.scan_at_exit,
        explain: parts.explain_reach,
        sampled: parts.sampled,
    };
    let child = Supervised::spawn(Command { program, argv, follow_forks, signals, env }, Box::new(hooks))?;
    let pid = child.pid;
    lock(&placement).set_target(pid);
    shared.state().spawned(pid);
    lock(probes).add_target(pid)?;
    Ok(Started { handle: Handle::Child(child), pid, command, placement })
}

fn start_attach(pid: u32, fixed: Option<AllocatorChoice>, parts: &Parts) -> Result<Started, SessionError> {
    let (shared, probes) = (&parts.shared, &parts.probes);
    let watched = Watched::open(pid).ok_or(SessionError::ExitedDuringAttach(pid))?;
    lock(probes).add_target(pid).map_err(|e| if proc_alive(pid) { e.into() } else { SessionError::ExitedDuringAttach(pid) })?;
    let placement = Arc::new(Mutex::new(Placement::new(probes.clone(), shared.clone(), fixed, pid)));
    if let Some(file) = &parts.recorder {
        // leaktrace loaded the recorder into it: no environment to check.
        lock(&placement).record_in_process(file.clone());
        lock(&placement).loaded_into(pid);
    }
    lock(&placement).image(pid);
    let maps = ProcessMaps::capture(pid).map_err(|_| SessionError::ExitedDuringAttach(pid))?;
    shared.state().add_maps(pid, maps);
    Ok(Started { handle: Handle::Pid(watched), pid, command: command_line(pid), placement })
}

/// The table service (None with `--unwind fp`) and where the pipeline asks it for tables.
type TablesStarted = (Option<Arc<TableService>>, Option<Sender<TableRequest>>);

/// The kernel walker's tables, filled ahead of the target as far as its
/// objects are known; the sender takes the pipeline's requests for more.
fn start_tables(
    probes: &mut Probes,
    config: &SessionConfig,
    spec: &TargetSpec,
    program: Option<&PathBuf>,
    shared: &Arc<Shared>,
    recorder: Option<&Arc<SharedFile>>,
) -> Result<TablesStarted, SessionError> {
    let Some(mut tables) = probes.unwind_tables(&config.load)? else { return Ok((None, None)) };
    if let Some(file) = recorder {
        tables.mirror_into(file.clone());
    }
    let tables = TableService::new(tables);
    match (spec, program) {
        (TargetSpec::Run { .. }, Some(program)) => tables.preload_command(program, shared),
        (TargetSpec::Attach { pid }, _) => tables.preload_process(*pid, shared),
        _ => {}
    }
    let requests = tables.serve(shared.clone()).map_err(SessionError::Thread)?;
    Ok((Some(Arc::new(tables)), Some(requests)))
}

impl Session {
    pub fn start(spec: TargetSpec, mut config: SessionConfig) -> Result<Self, SessionError> {
        // Validate the target before loading anything.
        let (program, fixed) = validate(&spec, &config)?;
        let is_attach = matches!(spec, TargetSpec::Attach { .. });
        // Under `run` leaktrace is the ptrace tracer: a thread that maps new
        // objects can wait, unseen, until their tables are in.
        config.load.pause_on_load = !is_attach;
        let (mut probes, outputs) = Probes::load(&config.load, config.allocator_programs, is_attach)?;
        let link_stats = probes.link_stats();
        let descriptors = probes.descriptor_probes();
        let mut state = State::new();
        state.agg.track_std_fds(config.track_std_fds);
        let shared = Shared::new(state);
        let recorder = super::recorder::start(&spec, &config, &shared)?;
        let file = recorder.as_ref().map(|r| r.file.clone());
        let (tables, requests) = start_tables(&mut probes, &config, &spec, program.as_ref(), &shared, file.as_ref())?;
        let parts = Parts {
            shared: shared.clone(),
            probes: Arc::new(Mutex::new(probes)),
            tables,
            scan_at_exit: config.scan_at_exit,
            explain_reach: config.explain_reach,
            sampled: config.load.sample_every > 1,
            recorder: file.clone(),
        };
        let started = match (spec, program) {
            (TargetSpec::Run { argv, signals }, Some(program)) => {
                start_run(program, argv, signals, fixed, config.load.follow_forks, &parts)?
            }
            (TargetSpec::Attach { pid }, _) => start_attach(pid, fixed, &parts)?,
            (TargetSpec::Run { .. }, None) => unreachable!("validate resolves the program of `run`"),
        };
        let ingestor = Ingestor::new(config.load.stack_frames as usize, requests);
        let reader = file.clone().map(InProcessReader::new);
        let consumer = Consumer::start(outputs.events, shared.clone(), ingestor, reader).map_err(SessionError::Thread)?;
        let follower = match &started.handle {
            Handle::Pid(_) => Some(
                Follower::start(outputs.notices, started.placement.clone(), shared.clone(), config.load.follow_forks)
                    .map_err(SessionError::Thread)?,
            ),
            Handle::Child(_) => None,
        };
        let started_ns = monotonic_ns();
        if let Handle::Child(c) = &started.handle {
            c.start()?;
        }
        let target = Target {
            pid: started.pid,
            command: started.command,
            state: TargetState::Running,
            exit: None,
            duration_secs: 0.0,
            allocator: None,
            heap_probes: None,
        };
        Ok(Self {
            shared,
            probes: parts.probes,
            placement: started.placement,
            consumer: Some(consumer),
            follower,
            counters: outputs.counters,
            link_stats,
            handle: started.handle,
            target,
            started_ns,
            ended: None,
            detached: false,
            window_closed: None,
            config,
            cache: SiteCache::default(),
            descriptors,
            recorder,
        })
    }
}
