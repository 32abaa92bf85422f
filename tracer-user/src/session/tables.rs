//! Keeping the kernel walker's tables ahead of the target: the modules a
//! command will load are compiled before it starts (or those a process has
//! mapped, before attaching); modules met later (dlopen, a new image) are
//! compiled by a thread of their own when the pipeline reports a walk that
//! stopped for want of one.

use std::path::Path;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::pipeline::{Shared, TableRequest};
use crate::probes::{load_order, KernelTables};

pub struct TableService {
    tables: Arc<Mutex<KernelTables>>,
}

fn lock(t: &Mutex<KernelTables>) -> MutexGuard<'_, KernelTables> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

impl TableService {
    pub fn new(tables: KernelTables) -> Self {
        Self { tables: Arc::new(Mutex::new(tables)) }
    }

    /// The objects `program` loads at start, as the dynamic linker will find them.
    pub fn preload_command(&self, program: &Path, shared: &Shared) {
        let objects = load_order(program, std::env::var_os("LD_PRELOAD").as_deref(), std::env::var_os("LD_LIBRARY_PATH").as_deref());
        let mut t = lock(&self.tables);
        for path in objects {
            if let Err(e) = t.load_path(&path) {
                shared.state().warn(e.to_string());
            }
        }
    }

    /// What a running process has mapped.
    pub fn preload_process(&self, pid: u32, shared: &Shared) {
        for e in lock(&self.tables).load_process(pid) {
            shared.state().warn(e.to_string());
        }
    }

    /// The thread that serves the pipeline's requests; the sender goes to the ingestor.
    pub fn serve(&self, shared: Arc<Shared>) -> std::io::Result<Sender<TableRequest>> {
        let (tx, rx) = channel::<TableRequest>();
        let tables = self.tables.clone();
        std::thread::Builder::new().name("leaktrace-tables".into()).spawn(move || {
            // Walks through a module copy the stack until its table is in: as soon as possible.
            let _ = rustix::process::setpriority_process(None, -10);
            for req in rx {
                let errors = lock(&tables).load_process(req.pid);
                for e in errors {
                    shared.state().warn(e.to_string());
                }
            }
        })?;
        Ok(tx)
    }
}
