//! The TCP state table and address families as the kernel numbers them
//! (include/net/tcp_states.h) and as the exporter labels them.
//!
//! Label values are written by hand, lowercase snake_case, never derived from `Debug`:
//! they are a public contract that dashboards and alerts match on.

/// Address family of a dumped socket (`idiag_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// The `family` label value.
    pub fn label(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// The AF_* constant the kernel uses on the wire.
    pub fn af(self) -> u8 {
        match self {
            Family::Ipv4 => netlink_packet_sock_diag::constants::AF_INET,
            Family::Ipv6 => netlink_packet_sock_diag::constants::AF_INET6,
        }
    }

    /// Index into per-family arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A TCP state. `Unknown` keeps a value the kernel may add in the future from failing a
/// poll; it is counted under the `unknown` label instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    Unknown,
}

impl TcpState {
    /// Number of states, `Unknown` included: the length of per-state arrays.
    pub const COUNT: usize = 12;

    /// Every state in kernel order, `Unknown` last: the order of exported series.
    pub const ALL: [TcpState; TcpState::COUNT] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::Unknown,
    ];

    /// Maps `idiag_state`. Request sockets (TCP_NEW_SYN_RECV = 12 inside the kernel) are
    /// reported by inet_diag as TCP_SYN_RECV already, so 12 is not expected here; like any
    /// other value outside 1..=11 it becomes `Unknown`.
    pub fn from_kernel(state: u8) -> TcpState {
        match state {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            _ => TcpState::Unknown,
        }
    }

    /// The `state` label value.
    pub fn label(self) -> &'static str {
        match self {
            TcpState::Established => "established",
            TcpState::SynSent => "syn_sent",
            TcpState::SynRecv => "syn_recv",
            TcpState::FinWait1 => "fin_wait1",
            TcpState::FinWait2 => "fin_wait2",
            TcpState::TimeWait => "time_wait",
            TcpState::Close => "close",
            TcpState::CloseWait => "close_wait",
            TcpState::LastAck => "last_ack",
            TcpState::Listen => "listen",
            TcpState::Closing => "closing",
            TcpState::Unknown => "unknown",
        }
    }

    /// Index into per-state arrays (the position in [`TcpState::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_numbers_map_to_hand_written_labels() {
        let expected = [
            (1, "established"),
            (2, "syn_sent"),
            (3, "syn_recv"),
            (4, "fin_wait1"),
            (5, "fin_wait2"),
            (6, "time_wait"),
            (7, "close"),
            (8, "close_wait"),
            (9, "last_ack"),
            (10, "listen"),
            (11, "closing"),
        ];
        for (kernel, label) in expected {
            assert_eq!(
                TcpState::from_kernel(kernel).label(),
                label,
                "state {kernel}"
            );
        }
    }

    #[test]
    fn values_outside_the_table_are_unknown() {
        for kernel in [0u8, 12, 13, 255] {
            assert_eq!(TcpState::from_kernel(kernel), TcpState::Unknown);
        }
    }

    #[test]
    fn all_is_in_index_order() {
        for (i, state) in TcpState::ALL.iter().enumerate() {
            assert_eq!(state.index(), i);
        }
        assert_eq!(TcpState::ALL.len(), TcpState::COUNT);
    }
}
