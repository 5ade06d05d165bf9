//! Folds socket records into a [`Snapshot`], one record at a time.
//!
//! Pure: no I/O, no clock. The poller feeds it every record of a dump as the decoder
//! produces them and asks for the snapshot at the end, so memory does not grow with the
//! number of sockets.

use std::time::{Duration, SystemTime};

use crate::snapshot::{Snapshot, StateCounts};
use crate::sock_diag::Record;

/// Accumulates one poll.
#[derive(Debug, Default)]
pub struct Aggregator {
    tcp_sockets: StateCounts,
    scanned: u64,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// Folds one socket.
    pub fn add(&mut self, record: &Record) {
        self.scanned += 1;
        self.tcp_sockets.add(record.family, record.state);
    }

    /// Ends the poll.
    pub fn finish(self, poll_duration: Duration, completed_at: SystemTime) -> Snapshot {
        Snapshot {
            tcp_sockets: self.tcp_sockets,
            sockets_scanned: self.scanned,
            poll_duration,
            completed_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock_diag::{Family, TcpState};

    fn record(family: Family, state: TcpState) -> Record {
        let (local, remote) = match family {
            Family::Ipv4 => (
                "127.0.0.1:80".parse().unwrap(),
                "127.0.0.1:40000".parse().unwrap(),
            ),
            Family::Ipv6 => ("[::1]:80".parse().unwrap(), "[::1]:40000".parse().unwrap()),
        };
        Record {
            family,
            state,
            local,
            remote,
            recv_queue: 0,
            send_queue: 0,
            uid: 0,
            inode: 0,
            cookie: 0,
        }
    }

    #[test]
    fn counts_per_family_and_state() {
        let mut aggregator = Aggregator::new();
        for _ in 0..3 {
            aggregator.add(&record(Family::Ipv4, TcpState::TimeWait));
        }
        aggregator.add(&record(Family::Ipv6, TcpState::TimeWait));
        aggregator.add(&record(Family::Ipv6, TcpState::Unknown));
        let snapshot = aggregator.finish(Duration::from_millis(3), SystemTime::UNIX_EPOCH);
        assert_eq!(
            snapshot.tcp_sockets.get(Family::Ipv4, TcpState::TimeWait),
            3
        );
        assert_eq!(
            snapshot.tcp_sockets.get(Family::Ipv6, TcpState::TimeWait),
            1
        );
        assert_eq!(snapshot.tcp_sockets.get(Family::Ipv6, TcpState::Unknown), 1);
        assert_eq!(snapshot.tcp_sockets.get(Family::Ipv4, TcpState::Listen), 0);
        assert_eq!(snapshot.sockets_scanned, 5);
        assert_eq!(snapshot.tcp_sockets.total(), 5);
    }
}
