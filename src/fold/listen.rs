//! The fast listener sampler's fold: accept-queue lengths per listening address, kept
//! between main polls so that the largest one is reported as the peak.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::source::inet_diag::{Record, TcpState};

/// Accept-queue lengths per listening (address, port), summed over SO_REUSEPORT groups:
/// one sample of the fast listener sampler.
pub type ListenSample = FxHashMap<(IpAddr, u16), u64>;

/// Adds a LISTEN-dump record to a sample.
pub fn add_to_sample(sample: &mut ListenSample, record: &Record) {
    if record.state == TcpState::Listen {
        *sample
            .entry((record.local.ip(), record.local.port()))
            .or_default() += u64::from(record.recv_queue);
    }
}
