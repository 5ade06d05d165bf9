//! Top-K tables of the exhaustion signals: destinations by ephemeral ports used, and
//! peers by socket count, each with `other` for the rest.

use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::source::inet_diag::TcpState;

/// A destination (remote address, port), `None` for `other`, and its ephemeral ports used.
pub type Destination = (Option<(IpAddr, u16)>, u64);

/// Destinations by ephemeral ports used toward them, the maximum over local addresses (a
/// connect() needs a free local port per local address and destination); the top `k`
/// plus `other`, the largest of the rest.
pub fn top_destinations(
    ephemeral: &FxHashMap<(IpAddr, IpAddr, u16), u64>,
    k: usize,
) -> (Vec<Destination>, u64) {
    let mut used: FxHashMap<(IpAddr, u16), u64> = FxHashMap::default();
    for ((_, remote, port), n) in ephemeral {
        let entry = used.entry((*remote, *port)).or_default();
        *entry = (*entry).max(*n);
    }
    let mut ranked: Vec<((IpAddr, u16), u64)> = used.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let folded = ranked.len().saturating_sub(k) as u64;
    let mut out: Vec<Destination> = ranked
        .iter()
        .take(k)
        .map(|(destination, n)| (Some(*destination), *n))
        .collect();
    if let Some(largest_rest) = ranked.iter().skip(k).map(|(_, n)| *n).max() {
        out.push((None, largest_rest));
    }
    (out, folded)
}

/// Remote addresses by socket count: the top `k` (all states together) and `other`.
pub fn top_peers(
    peers: &FxHashMap<(IpAddr, TcpState), u64>,
    k: usize,
) -> (Vec<(Option<IpAddr>, TcpState, u64)>, u64) {
    let mut totals: FxHashMap<IpAddr, u64> = FxHashMap::default();
    for ((address, _), n) in peers {
        *totals.entry(*address).or_default() += n;
    }
    let mut ranked: Vec<(IpAddr, u64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let folded = ranked.len().saturating_sub(k) as u64;
    let kept: FxHashSet<IpAddr> = ranked.iter().take(k).map(|(address, _)| *address).collect();
    let mut out: FxHashMap<(Option<IpAddr>, TcpState), u64> = FxHashMap::default();
    for ((address, state), n) in peers {
        let label = kept.contains(address).then_some(*address);
        *out.entry((label, *state)).or_default() += n;
    }
    let mut out: Vec<(Option<IpAddr>, TcpState, u64)> =
        out.into_iter().map(|((a, s), n)| (a, s, n)).collect();
    // Kept addresses first, `other` last.
    out.sort_by_key(|(address, state, _)| (address.is_none(), *address, *state));
    (out, folded)
}
