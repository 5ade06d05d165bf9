//! One straight recipe for one network namespace, on a thread that is in it: read the
//! kernel counters (and the sysctls, unless the collector's [`super::sysctls`] cache has
//! them fresh), dump every TCP socket of both families in one request (listeners first),
//! dump every UNIX socket, dump every UDP socket, folding each record as it is decoded. A collector turned off
//! ([`Collectors`]) is a step skipped: its files are not read, its dump not sent. What the
//! recipe leaves for after every namespace's dump (the /proc scan for owners the cache did
//! not know, the caps) is in [`super::collector`].

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::collectors::{CollectorKind, Collectors};
use crate::fold::close_wait::CloseWaitTracker;
use crate::fold::owners::Owners;
use crate::fold::tcp::Aggregator;
use crate::fold::udp::UdpAggregator;
use crate::fold::unix::UnixAggregator;
use crate::fold::Settings;
use crate::snapshot::KernelStats;
use crate::source::inet_diag::{Family, StateFilter, TcpState};
use crate::source::kernel_value::KernelSource;
use crate::source::proc_net_snmp::NetCounters;
use crate::source::proc_sys_net::NetSysctls;
use crate::source::sock_diag::{SockDiag, SockDiagError};
use crate::source::unix_diag::UnixFilter;
use crate::source::{proc_net_snmp, proc_sys_net};

/// One namespace's dumps, folded, waiting for the owners the cache did not know.
#[derive(Debug)]
pub struct NetnsDump {
    pub aggregator: Aggregator,
    pub unix: UnixAggregator,
    pub udp: UdpAggregator,
    pub kernel: KernelStats,
    /// Kernel counter or sysctl files that could not be read (the values are missing).
    pub kernel_errors: Vec<String>,
    /// The sysctls were read by this recipe, without error: the collector keeps them.
    /// False when they came from the cache, or a file failed.
    pub sysctls_read: bool,
    /// Time spent reading the kernel counter and sysctl files (the poll's timings).
    pub kernel_time: Duration,
}

/// The recipe. `netns` is the namespace's inode, which keys its CLOSE_WAIT sockets;
/// `sysctls` are the namespace's sysctls when the cache has them fresh (`None`: read them).
pub fn dump(
    sock_diag: &mut SockDiag,
    netns: u64,
    owners: &impl Owners,
    close_wait: &Mutex<CloseWaitTracker>,
    settings: &Settings,
    collectors: Collectors,
    sysctls: Option<NetSysctls>,
) -> Result<NetnsDump, SockDiagError> {
    let mut kernel_errors = Vec::new();
    let started = Instant::now();
    let (kernel, sysctls_read) = read_kernel(collectors, sysctls, &mut kernel_errors);
    let kernel_time = started.elapsed();
    let mut aggregator = Aggregator::new(settings, kernel.sysctls.ip_local_port_range);
    // One dump of both families: the kernel sends every listener first, so the fold
    // knows the listening ports before the first other socket.
    sock_diag.dump_both_families(StateFilter::All, &mut |record| {
        if record.state == TcpState::Listen {
            aggregator.add_listener(record, owners);
            return;
        }
        let age = if record.state == TcpState::CloseWait {
            // A lock per CLOSE_WAIT record, not per record: the tracker is shared by
            // the namespaces dumped at once, and CLOSE_WAIT is the rare state.
            close_wait
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .observe((netns, record.cookie))
        } else {
            None
        };
        aggregator.add(record, age, owners)
    })?;
    let mut unix = UnixAggregator::new();
    if collectors.enabled(CollectorKind::Unix) {
        sock_diag.dump_unix(UnixFilter::All, &mut |record| unix.add(record, owners))?;
    }
    let mut udp = UdpAggregator::new(kernel.sysctls.ip_local_port_range);
    if collectors.enabled(CollectorKind::Udp) {
        for family in Family::ALL {
            sock_diag.dump_udp(family, &mut |record| udp.add(record, owners))?;
        }
    }
    Ok(NetnsDump {
        aggregator,
        unix,
        udp,
        kernel,
        kernel_errors,
        sysctls_read,
        kernel_time,
    })
}

/// Reads the namespace's kernel counters, and its sysctls unless `cached` has them; true
/// beside the stats when the sysctls were read now without error. These files are read
/// from the calling thread, which is what binds them to its network namespace. A file that
/// cannot be read leaves its values missing (and counted) instead of failing the poll.
/// With the netstat collector off no counter file is read (none is missing); with the
/// sysctl collector off only `ip_local_port_range` is, which the TCP fold needs.
fn read_kernel(
    collectors: Collectors,
    cached: Option<NetSysctls>,
    errors: &mut Vec<String>,
) -> (KernelStats, bool) {
    let netstat = collectors.enabled(CollectorKind::Netstat);
    let sysctl = collectors.enabled(CollectorKind::Sysctl);
    let counters = if netstat {
        let (counters, failed) = proc_net_snmp::read(Path::new(proc_net_snmp::DEFAULT_ROOT));
        errors.extend(failed.iter().map(ToString::to_string));
        counters
    } else {
        NetCounters::default()
    };
    let (sysctls, read) = match cached {
        Some(sysctls) => (sysctls, false),
        None => read_sysctls(sysctl, errors),
    };
    let mut stats = KernelStats::new(counters, sysctls);
    // What a collector turned off did not read is not missing; the port range is read
    // either way.
    for source in KernelSource::ALL {
        if !netstat && NetCounters::reads(source) {
            stats.missing[source.index()] = 0;
        }
    }
    if !sysctl {
        stats.missing[KernelSource::Sysctl.index()] =
            u64::from(stats.sysctls.ip_local_port_range.is_none());
    }
    (stats, read)
}

/// Reads the sysctls (the port range alone with the sysctl collector off); true beside
/// them when the read had no error.
fn read_sysctls(sysctl: bool, errors: &mut Vec<String>) -> (NetSysctls, bool) {
    let sys = Path::new(proc_sys_net::DEFAULT_ROOT);
    let read = match sysctl {
        true => proc_sys_net::read(sys),
        false => proc_sys_net::read_port_range(sys),
    };
    match read {
        Ok(sysctls) => (sysctls, true),
        Err(error) => {
            errors.push(error.to_string());
            (NetSysctls::default(), false)
        }
    }
}
