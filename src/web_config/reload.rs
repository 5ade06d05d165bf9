//! The live web config: what connections and requests read, and the task that re-reads
//! the file and the files it names when they change (certificate rotation without a
//! restart), or at once on SIGHUP. A broken new config keeps the previous good one, is
//! logged once, and counted.
//!
//! This module decides (which TLS acceptor, whether a request's credentials pass); the
//! HTTP stack in `crate::http` asks and answers. It never imports `crate::http`.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::HeaderValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Notify};

use super::verify::{Client, Verifier};
use super::{load, Active, AuthFailure, Current, Tls, WebConfigError};

/// How often the watched files are checked for a change (a stat of each).
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct WebConfigMetrics {
    reloads: Family<Outcome, Counter>,
    last_successful: Gauge,
}

impl WebConfigMetrics {
    pub fn register(registry: &mut Registry) -> WebConfigMetrics {
        let metrics = WebConfigMetrics::default();
        registry.register(
            "sockdiag_web_config_reloads",
            "Reloads of --web.config.file after a change or SIGHUP, by result; on failure the previous config stays in force.",
            metrics.reloads.clone(),
        );
        registry.register(
            "sockdiag_web_config_last_reload_successful",
            "1 if the last load of --web.config.file succeeded, 0 if the config in force is an older one.",
            metrics.last_successful.clone(),
        );
        metrics.last_successful.set(1);
        metrics
    }
}

/// Handle on the web config in force; cheap to clone.
#[derive(Clone)]
pub struct WebSecurity {
    current: Current,
    file: PathBuf,
    /// `/-/healthy` and `/-/ready` answer without credentials (`web.probes_without_auth`).
    probes_open: bool,
    reload_now: Arc<Notify>,
    /// Outlives reloads: a flood under way keeps its place in the queues.
    verifier: Arc<Verifier>,
}

impl WebSecurity {
    /// Loads `file`; an error here stops the start (exit 78).
    pub fn load(file: &Path, probes_open: bool) -> Result<WebSecurity, WebConfigError> {
        let active = load(file)?;
        Ok(WebSecurity {
            current: Arc::new(RwLock::new(Arc::new(active))),
            file: file.to_path_buf(),
            probes_open,
            reload_now: Arc::new(Notify::new()),
            verifier: Arc::new(Verifier::default()),
        })
    }

    /// The config in force; a request takes it once and keeps it to the end.
    pub fn active(&self) -> Arc<Active> {
        match self.current.read() {
            Ok(active) => Arc::clone(&active),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The TLS acceptor in force, if TLS is configured.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.active().tls.clone()
    }

    /// Asks the watcher to reload now (SIGHUP).
    pub fn reload(&self) {
        self.reload_now.notify_one();
    }

    /// Whether a request for `path` from `peer` with this Authorization header may pass
    /// under `active`.
    pub async fn admit(
        &self,
        active: &Active,
        path: &str,
        authorization: Option<&HeaderValue>,
        peer: IpAddr,
    ) -> Result<(), AuthFailure> {
        let exempt = self.probes_open && matches!(path, "/-/healthy" | "/-/ready");
        match (&active.auth, exempt) {
            (Some(auth), false) => {
                auth.check(authorization, Client::of(peer), &self.verifier)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Re-reads the config when a watched file changes, or on [`WebSecurity::reload`].
    /// A change is applied once the files have stayed the same for one check, so that a
    /// certificate and its key written one after the other are read together.
    pub async fn watch(self, metrics: WebConfigMetrics, mut stop: watch::Receiver<bool>) {
        let mut applied = fingerprint(&self.active().watched);
        let mut pending: Option<Vec<Stamp>> = None;
        let mut failed: Option<Vec<Stamp>> = None;
        let mut ticker = tokio::time::interval(CHECK_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                _ = ticker.tick() => false,
                _ = self.reload_now.notified() => true,
            };
            let now = fingerprint(&self.active().watched);
            if !forced {
                if now == applied || failed.as_ref() == Some(&now) {
                    pending = None;
                    continue;
                }
                if pending.as_ref() != Some(&now) {
                    pending = Some(now);
                    continue;
                }
            }
            pending = None;
            match load(&self.file) {
                Ok(active) => {
                    applied = fingerprint(&active.watched);
                    failed = None;
                    // A reader never panics while holding the lock; take it even if poisoned.
                    let mut current = match self.current.write() {
                        Ok(current) => current,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    *current = Arc::new(active);
                    drop(current);
                    metrics
                        .reloads
                        .get_or_create(&Outcome { result: "success" })
                        .inc();
                    metrics.last_successful.set(1);
                    tracing::info!(file = %self.file.display(), forced, "web config reloaded");
                }
                Err(error) => {
                    metrics
                        .reloads
                        .get_or_create(&Outcome { result: "failure" })
                        .inc();
                    metrics.last_successful.set(0);
                    if failed.as_ref() != Some(&now) {
                        tracing::warn!(%error, "web config reload failed, keeping the previous one");
                    }
                    failed = Some(now);
                }
            }
        }
    }
}

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

fn fingerprint(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|file| match std::fs::metadata(file) {
            Ok(meta) => Stamp {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            },
            // A missing file is a state of its own: its return is a change.
            Err(_) => Stamp {
                dev: 0,
                ino: 0,
                len: 0,
                mtime: (0, 0),
            },
        })
        .collect()
}
