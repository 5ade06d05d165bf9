//! One straight recipe for one network namespace: read the kernel counters and sysctls,
//! dump the listeners, dump every other socket, find the owners, fold, and build the
//! namespace's figures. Blocking; runs on a thread that is in the namespace.

use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use super::owners;
use super::{Peaks, PollError, PollerConfig, Reopening};
use crate::fold::close_wait::CloseWaitTracker;
use crate::fold::listen::ListenSample;
use crate::fold::tcp::Aggregator;
use crate::fold::Settings;
use crate::snapshot::{KernelStats, Snapshot};
use crate::source::inet_diag::{Family, SockDiag, SockDiagError, StateFilter, TcpState};
use crate::source::proc_fd::{ProcIndex, ProcIndexError, ScanReport};
use crate::source::{proc_net_snmp, proc_sys_net};

/// Side results of a poll that do not fail it.
#[derive(Debug, Default)]
pub struct PollNotes {
    pub scan: ScanReport,
    pub proc_index_error: Option<ProcIndexError>,
    /// Kernel counter or sysctl files that could not be read (the values are missing).
    pub kernel_errors: Vec<String>,
}

/// The state a main poll carries from one poll to the next.
#[derive(Debug)]
pub struct Collector {
    sock_diag: Reopening,
    index: ProcIndex,
    close_wait: CloseWaitTracker,
    settings: Settings,
    peaks: Peaks,
}

impl Collector {
    pub fn new(config: &PollerConfig, peaks: Peaks) -> Collector {
        Collector {
            sock_diag: Reopening::default(),
            index: ProcIndex::new(&config.proc_root),
            close_wait: CloseWaitTracker::new(config.close_wait_capacity),
            settings: config.settings.clone(),
            peaks,
        }
    }

    /// One complete poll. Blocking.
    pub fn poll(&mut self) -> Result<(Snapshot, PollNotes), PollError> {
        let Collector {
            sock_diag,
            index,
            close_wait,
            settings,
            peaks,
        } = self;
        sock_diag.with(PollError::Dump, |open| {
            poll_once(open, index, close_wait, settings, peaks)
        })
    }
}

/// One complete poll on an open socket: counters and sysctls, listeners, every other
/// socket, owners, then the figures, built once.
pub fn poll_once(
    sock_diag: &mut SockDiag,
    index: &mut ProcIndex,
    close_wait: &mut CloseWaitTracker,
    settings: &Settings,
    peaks: &Mutex<ListenSample>,
) -> Result<(Snapshot, PollNotes), SockDiagError> {
    let started = Instant::now();
    let mut notes = PollNotes::default();
    let kernel = read_kernel(&mut notes.kernel_errors);
    owners::begin(index, &mut notes);
    let mut aggregator = Aggregator::new(settings, kernel.sysctls.ip_local_port_range);
    for family in Family::ALL {
        sock_diag.dump(family, StateFilter::Listen, &mut |record| {
            aggregator.add_listener(record, index)
        })?;
    }
    close_wait.begin_poll(started);
    for family in Family::ALL {
        sock_diag.dump(family, StateFilter::NotListen, &mut |record| {
            let age = if record.state == TcpState::CloseWait {
                close_wait.observe(record.cookie)
            } else {
                None
            };
            aggregator.add(record, age, index)
        })?;
    }
    close_wait.end_poll();
    owners::resolve(index, &aggregator.missing_inodes(), &mut notes);
    let peaks = std::mem::take(
        &mut *peaks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    let tcp = aggregator.finish(index, settings, &peaks, close_wait.untracked());
    let snapshot = Snapshot {
        tcp,
        kernel,
        poll_duration: started.elapsed(),
        completed_at: SystemTime::now(),
    };
    Ok((snapshot, notes))
}

/// Reads the namespace's TCP counters and sysctls. These files are read from the calling
/// thread, which is what binds them to its network namespace. A file that cannot be read
/// leaves its values missing (and counted) instead of failing the poll.
fn read_kernel(errors: &mut Vec<String>) -> KernelStats {
    let net = std::path::Path::new(proc_net_snmp::DEFAULT_ROOT);
    let netstat = proc_net_snmp::read_netstat(net).unwrap_or_else(|error| {
        errors.push(error.to_string());
        Default::default()
    });
    let snmp = proc_net_snmp::read_snmp(net).unwrap_or_else(|error| {
        errors.push(error.to_string());
        Default::default()
    });
    let sysctls = proc_sys_net::read(std::path::Path::new(proc_sys_net::DEFAULT_ROOT))
        .unwrap_or_else(|error| {
            errors.push(error.to_string());
            Default::default()
        });
    let counters = proc_net_snmp::TcpCounters::from_parts(netstat, snmp);
    let missing = counters.missing_fields();
    KernelStats {
        missing_netstat: missing.iter().filter(|f| f.starts_with("TcpExt.")).count() as u64,
        missing_snmp: missing.iter().filter(|f| f.starts_with("Tcp.")).count() as u64,
        missing_sysctl: sysctls.missing_count() as u64,
        counters,
        sysctls,
    }
}
