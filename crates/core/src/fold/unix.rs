//! Folds UNIX socket records into one namespace's figures, one record at a time.
//!
//! Pure: no I/O, no clock. Every socket is counted by type and state; listeners keep
//! their queue figures and owner; every named socket is counted under its name, since
//! the connections a listener accepted carry the listener's name, so a name's socket
//! count is its listener plus its open connections.
//!
//! Each listening socket keeps its own figures: two sockets bound at one path (from other
//! mount namespaces, or other processes) are never summed, so that a second listener can
//! never lower the fill shown for the first. Series are per (path, process); should two
//! sockets share both, the fuller one is the series and the other goes to `other`.
//!
//! Cardinality is bounded in [`UnixAggregator::finish`]: the `max_unix_paths` listeners
//! that are fullest (full ones first, then peak over backlog, queue length, sockets on the
//! name) keep their `path` label, and full ones beyond them up to the anomaly ceiling
//! ([`anomaly::kept`]); the rest are summed into one `path="other"` series and counted.
//! Ranking by fill, what the alert watches, means a listener whose queue fills is never
//! the one folded away.

use std::cmp::Ordering;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::anomaly::{self, cmp_fill};
use super::listen::{ListenSample, Listener};
use super::owners::{Owner, Owners, PENDING};
use super::settings::Settings;
use crate::snapshot::{UnixCounts, UnixFigures, UnixListenerSeries};
use crate::source::unix_diag::{Name, Record, UnixState};

#[derive(Debug, Default)]
struct NameStats {
    sockets: u64,
    listeners: Vec<Listener>,
}

/// Accumulates one poll's UNIX dump of one namespace.
#[derive(Debug, Default)]
pub struct UnixAggregator {
    sockets: UnixCounts,
    scanned: u64,
    /// By raw bound name: one small allocation per distinct name, none per socket.
    names: FxHashMap<Box<[u8]>, NameStats>,
    /// Listeners without a name (the kernel refuses listen() on an unbound socket, so
    /// this stays empty unless that changes).
    unnamed: NameStats,
}

impl UnixAggregator {
    pub fn new() -> UnixAggregator {
        UnixAggregator::default()
    }

    /// Folds a record of the every-state dump. Only listeners ask for an owner.
    pub fn add(&mut self, record: &Record<'_>, owners: &impl Owners) {
        self.scanned += 1;
        self.sockets.add(record.kind, record.state);
        let listening = record.state == UnixState::Listen;
        if record.name.is_empty() && !listening {
            return;
        }
        let stats = if record.name.is_empty() {
            &mut self.unnamed
        } else {
            if !self.names.contains_key(record.name) {
                self.names
                    .insert(Box::from(record.name), NameStats::default());
            }
            self.names
                .get_mut(record.name)
                .expect("the name was just inserted")
        };
        stats.sockets += 1;
        if listening {
            stats.listeners.push(Listener {
                owner: owners.owner(record.inode),
                inode: record.inode,
                length: u64::from(record.recv_queue),
                limit: u64::from(record.send_queue),
            });
        }
    }

    fn listeners(&self) -> impl Iterator<Item = &Listener> {
        self.names
            .values()
            .chain([&self.unnamed])
            .flat_map(|stats| &stats.listeners)
    }

    /// Listener inodes waiting for an owner.
    pub fn missing_inodes(&self) -> Vec<u32> {
        self.listeners()
            .filter(|l| l.owner.is_none())
            .map(|l| l.inode)
            .collect()
    }

    /// One candidate per (path label, process), with the sockets on its name: the fullest
    /// of its listeners. The others (the same path bound in another mount namespace by a
    /// process of the same name, or another name rendering to the same label) are returned
    /// apart, for `other`; and the listeners whose owner was not found are counted.
    fn candidates(
        &self,
        owners: &impl Owners,
        peaks: &ListenSample,
    ) -> (Vec<(u64, UnixListenerSeries)>, Vec<UnixListenerSeries>, u64) {
        let unknown: Arc<str> = Arc::from("unknown");
        let label = |owner: Owner| match owner {
            Owner::Process(id) => owners.name(id),
            Owner::Nobody => Arc::from(""),
            Owner::Unknown => Arc::clone(&unknown),
            Owner::Pending => Arc::from(PENDING),
        };
        let (mut candidates, mut duplicates, mut unattributed) = (Vec::new(), Vec::new(), 0);
        let groups = self
            .names
            .iter()
            .map(|(name, stats)| (&name[..], stats))
            .chain([(&[][..], &self.unnamed)]);
        for (name, stats) in groups.filter(|(_, stats)| !stats.listeners.is_empty()) {
            let path: Arc<str> = Arc::from(Name::of(name).label());
            let mut by_process: Vec<UnixListenerSeries> = Vec::with_capacity(stats.listeners.len());
            for listener in &stats.listeners {
                let owner = listener
                    .owner
                    .unwrap_or_else(|| owners.settle(listener.inode));
                unattributed += u64::from(owner == Owner::Unknown);
                let peak = peaks.unix.get(&listener.inode).copied().unwrap_or(0);
                by_process.push(UnixListenerSeries {
                    path: Arc::clone(&path),
                    process: label(owner),
                    length: listener.length,
                    limit: listener.limit,
                    peak: peak.max(listener.length),
                });
            }
            candidates.extend(by_process.into_iter().map(|series| (stats.sockets, series)));
        }
        // One series per (path, process) label set, across names too: names that render to
        // one label (bytes that are not UTF-8 shown as U+FFFD, or a cut at the length cap)
        // must not make two series with one label set, an invalid exposition.
        candidates.sort_by(|(_, a), (_, b)| {
            (&a.path, &a.process)
                .cmp(&(&b.path, &b.process))
                .then_with(|| fuller(b, a))
        });
        let mut kept: Vec<(u64, UnixListenerSeries)> = Vec::with_capacity(candidates.len());
        for (sockets, series) in candidates {
            match kept.last() {
                Some((_, last)) if last.path == series.path && last.process == series.process => {
                    duplicates.push(series)
                }
                _ => kept.push((sockets, series)),
            }
        }
        (kept, duplicates, unattributed)
    }

    /// Ends the poll: settles the owners, applies `max_unix_paths` and returns the
    /// namespace's UNIX figures. `peaks` holds the largest queues sampled since the last
    /// poll, per listening socket.
    pub fn finish(
        self,
        owners: &impl Owners,
        settings: &Settings,
        peaks: &ListenSample,
    ) -> UnixFigures {
        let (mut candidates, duplicates, unattributed) = self.candidates(owners, peaks);
        let full = |s: &UnixListenerSeries| settings.anomaly.listen_full(s.peak, s.limit);
        candidates.sort_by(|(a_sockets, a), (b_sockets, b)| {
            full(b)
                .cmp(&full(a))
                .then_with(|| fuller(a, b).reverse())
                .then(b_sockets.cmp(a_sockets))
                .then_with(|| (&a.path, &a.process).cmp(&(&b.path, &b.process)))
        });
        let anomalies = candidates.iter().filter(|(_, s)| full(s)).count();
        let (kept, folded_anomalies) =
            anomaly::kept(candidates.len(), anomalies, settings.max_unix_paths);
        let mut folded = duplicates;
        folded.extend(candidates.split_off(kept).into_iter().map(|(_, s)| s));
        let mut listeners: Vec<UnixListenerSeries> =
            candidates.into_iter().map(|(_, series)| series).collect();
        if !folded.is_empty() {
            let other: Arc<str> = Arc::from("other");
            listeners.push(UnixListenerSeries {
                path: Arc::clone(&other),
                process: other,
                length: folded.iter().map(|s| s.length).sum(),
                limit: folded.iter().map(|s| s.limit).sum(),
                peak: folded.iter().map(|s| s.peak).sum(),
            });
        }
        listeners.sort_by(|a, b| (&a.path, &a.process).cmp(&(&b.path, &b.process)));
        UnixFigures {
            sockets: self.sockets,
            listeners,
            folded_paths: folded.len() as u64,
            folded_anomalies,
            unattributed,
            sockets_scanned: self.scanned,
        }
    }
}

/// Which of two listeners is fuller: peak over backlog, then length.
fn fuller(a: &UnixListenerSeries, b: &UnixListenerSeries) -> Ordering {
    cmp_fill((a.peak, a.limit), (b.peak, b.limit)).then(a.length.cmp(&b.length))
}

#[cfg(test)]
mod tests;
