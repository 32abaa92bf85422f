//! `--metrics ADDR`: OpenMetrics at http://ADDR/metrics while tracing. The
//! listener is bound before tracing starts (a taken port is exit code 2);
//! a thread serves scrapes from the reports the trace loop publishes, in
//! the exposition of `outputs/openmetrics.rs`.

mod http;
mod hub;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::outputs::openmetrics;
use crate::report::Report;
use hub::Hub;

/// How long a scrape waits for the trace loop to build a fresh report.
const FRESH_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics {addr}: cannot listen there: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("--metrics: starting its thread: {0}")]
    Thread(std::io::Error),
}

pub struct MetricsServer {
    hub: Arc<Hub>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `addr` and serves the `top` largest sites of each kind.
    pub fn start(addr: SocketAddr, top: usize) -> Result<Self, MetricsError> {
        let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
        let hub = Arc::new(Hub::default());
        let h = hub.clone();
        let handler = move |path: &str| match path {
            "/metrics" => match h.fresh(FRESH_WAIT) {
                Some(p) => (200, openmetrics::CONTENT_TYPE, openmetrics::render(&p.report, p.events_per_sec, top)),
                None => (503, "text/plain; charset=utf-8", "no report yet\n".to_owned()),
            },
            _ => (404, "text/plain; charset=utf-8", "leaktrace serves /metrics\n".to_owned()),
        };
        std::thread::Builder::new()
            .name("leaktrace-metrics".into())
            .spawn(move || http::serve(listener, Box::new(handler)))
            .map_err(MetricsError::Thread)?;
        Ok(Self { hub, addr })
    }

    /// Where it listens (the port chosen, for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a scrape waits for a fresh report.
    pub fn wanted(&self) -> bool {
        self.hub.wanted()
    }

    pub fn publish(&self, report: &Report) {
        self.hub.publish(report);
    }
}

#[cfg(test)]
mod tests;
