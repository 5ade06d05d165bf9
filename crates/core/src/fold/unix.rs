//! Folds UNIX socket records into one namespace's figures, one record at a time.
//!
//! Pure: no I/O, no clock. Every socket is counted by type and state; listeners keep
//! their queue figures and owner; every named socket is counted under its name, since
//! the connections a listener accepted carry the listener's name, so a name's socket
//! count is its listener plus its open connections.
//!
//! Cardinality is bounded in [`UnixAggregator::finish`]: the `max_unix_paths` listener
//! names with the longest accept queue, then the most sockets, keep their `path` label;
//! the rest are summed into one `path="other"` series and counted. Ranking by queue first
//! means a listener whose queue fills is never the one folded away.

use std::cmp::Reverse;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::listen::{ListenSample, Listener};
use super::owners::{Owner, Owners};
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

    /// One series per listener label, with its socket count, and the listeners left
    /// without an owner. Names that render to one label (bytes that are not UTF-8 shown as
    /// U+FFFD, or a cut at the length cap) are one series, summed under their lowest owner:
    /// two series with one label set would make the exposition invalid.
    fn series(
        &self,
        owners: &impl Owners,
        peaks: &ListenSample,
    ) -> (Vec<(u64, UnixListenerSeries)>, u64) {
        let unknown: Arc<str> = Arc::from("unknown");
        let settled = |l: &Listener| l.owner.unwrap_or_else(|| owners.settle(l.inode));
        let label = |owner: Owner| match owner {
            Owner::Process(id) => owners.name(id),
            Owner::Nobody => Arc::from(""),
            Owner::Unknown => Arc::clone(&unknown),
        };
        let mut by_path: FxHashMap<String, (u64, UnixListenerSeries)> = FxHashMap::default();
        let mut unattributed = 0;
        let groups = self
            .names
            .iter()
            .map(|(name, stats)| (&name[..], stats))
            .chain([(&[][..], &self.unnamed)]);
        for (name, stats) in groups {
            if stats.listeners.is_empty() {
                continue;
            }
            let owned: Vec<Owner> = stats.listeners.iter().map(settled).collect();
            unattributed += owned.iter().filter(|o| **o == Owner::Unknown).count() as u64;
            let process = owned
                .into_iter()
                .map(label)
                .min()
                .unwrap_or_else(|| Arc::clone(&unknown));
            let length: u64 = stats.listeners.iter().map(|l| l.length).sum();
            let peak = peaks.unix.get(name).copied().unwrap_or(0).max(length);
            let path = Name::of(name).label();
            let (sockets, series) = by_path.entry(path).or_insert_with_key(|path| {
                let series = UnixListenerSeries {
                    path: Arc::from(path.as_str()),
                    process: Arc::clone(&process),
                    length: 0,
                    limit: 0,
                    peak: 0,
                };
                (0, series)
            });
            *sockets += stats.sockets;
            series.process = series.process.clone().min(process);
            series.length += length;
            series.limit += stats.listeners.iter().map(|l| l.limit).sum::<u64>();
            series.peak += peak;
        }
        (by_path.into_values().collect(), unattributed)
    }

    /// Ends the poll: settles the owners, applies `max_unix_paths` and returns the
    /// namespace's UNIX figures. `peaks` holds the largest queues sampled since the last
    /// poll.
    pub fn finish(
        self,
        owners: &impl Owners,
        settings: &Settings,
        peaks: &ListenSample,
    ) -> UnixFigures {
        let (mut series, unattributed) = self.series(owners, peaks);
        series.sort_by(|(a_sockets, a), (b_sockets, b)| {
            (Reverse(a.length), Reverse(*a_sockets), &a.path, &a.process).cmp(&(
                Reverse(b.length),
                Reverse(*b_sockets),
                &b.path,
                &b.process,
            ))
        });
        let folded = series.split_off(settings.max_unix_paths.min(series.len()));
        let mut listeners: Vec<UnixListenerSeries> =
            series.into_iter().map(|(_, series)| series).collect();
        if !folded.is_empty() {
            let other: Arc<str> = Arc::from("other");
            listeners.push(UnixListenerSeries {
                path: Arc::clone(&other),
                process: other,
                length: folded.iter().map(|(_, s)| s.length).sum(),
                limit: folded.iter().map(|(_, s)| s.limit).sum(),
                peak: folded.iter().map(|(_, s)| s.peak).sum(),
            });
        }
        listeners.sort_by(|a, b| (&a.path, &a.process).cmp(&(&b.path, &b.process)));
        UnixFigures {
            sockets: self.sockets,
            listeners,
            folded_paths: folded.len() as u64,
            unattributed,
            sockets_scanned: self.scanned,
        }
    }
}

#[cfg(test)]
mod tests;
