//! One straight recipe for one network namespace, on a thread that is in it: read the
//! kernel counters and sysctls, dump the TCP listeners, dump every other TCP socket, dump
//! every UNIX socket, dump every UDP socket, folding each record as it is decoded. What the recipe leaves for after every namespace's dump (the
//! /proc scan for owners the cache did not know, the caps) is in [`super::collector`].

use std::path::Path;
use std::sync::Mutex;

use crate::fold::close_wait::CloseWaitTracker;
use crate::fold::owners::Owners;
use crate::fold::tcp::Aggregator;
use crate::fold::udp::UdpAggregator;
use crate::fold::unix::UnixAggregator;
use crate::fold::Settings;
use crate::snapshot::KernelStats;
use crate::source::inet_diag::{Family, StateFilter, TcpState};
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
}

/// The recipe. `netns` is the namespace's inode, which keys its CLOSE_WAIT sockets.
pub fn dump(
    sock_diag: &mut SockDiag,
    netns: u64,
    owners: &impl Owners,
    close_wait: &Mutex<CloseWaitTracker>,
    settings: &Settings,
) -> Result<NetnsDump, SockDiagError> {
    let mut kernel_errors = Vec::new();
    let kernel = read_kernel(&mut kernel_errors);
    let mut aggregator = Aggregator::new(settings, kernel.sysctls.ip_local_port_range);
    for family in Family::ALL {
        sock_diag.dump(family, StateFilter::Listen, &mut |record| {
            aggregator.add_listener(record, owners)
        })?;
    }
    for family in Family::ALL {
        sock_diag.dump(family, StateFilter::NotListen, &mut |record| {
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
    }
    let mut unix = UnixAggregator::new();
    sock_diag.dump_unix(UnixFilter::All, &mut |record| unix.add(record, owners))?;
    let mut udp = UdpAggregator::new(kernel.sysctls.ip_local_port_range);
    for family in Family::ALL {
        sock_diag.dump_udp(family, &mut |record| udp.add(record, owners))?;
    }
    Ok(NetnsDump {
        aggregator,
        unix,
        udp,
        kernel,
        kernel_errors,
    })
}

/// Reads the namespace's kernel counters and sysctls. These files are read from the calling
/// thread, which is what binds them to its network namespace. A file that cannot be read
/// leaves its values missing (and counted) instead of failing the poll.
fn read_kernel(errors: &mut Vec<String>) -> KernelStats {
    let (counters, failed) = proc_net_snmp::read(Path::new(proc_net_snmp::DEFAULT_ROOT));
    errors.extend(failed.iter().map(ToString::to_string));
    let sysctls =
        proc_sys_net::read(Path::new(proc_sys_net::DEFAULT_ROOT)).unwrap_or_else(|error| {
            errors.push(error.to_string());
            Default::default()
        });
    KernelStats::new(counters, sysctls)
}
