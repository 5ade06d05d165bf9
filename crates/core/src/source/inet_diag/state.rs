//! The TCP state table and address families as the kernel numbers them
//! (include/net/tcp_states.h) and as the exporter labels them.
//!
//! Label values are written by hand in each enum's `label_enum!` table, never derived
//! from `Debug`: they are a public contract that dashboards and alerts match on.

use crate::label::label_enum;

label_enum! {
    /// Address family of a dumped socket (`idiag_family`); the `family` label.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Family {
        Ipv4 => "ipv4",
        Ipv6 => "ipv6",
    }
}

impl Family {
    /// The AF_* constant the kernel uses on the wire.
    pub fn af(self) -> u8 {
        match self {
            Family::Ipv4 => netlink_packet_sock_diag::constants::AF_INET,
            Family::Ipv6 => netlink_packet_sock_diag::constants::AF_INET6,
        }
    }
}

label_enum! {
    /// A TCP state, the `state` label, in kernel order (the order of exported series).
    /// `Unknown` keeps a value the kernel may add in the future from failing a poll; it is
    /// counted under the `unknown` label instead.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum TcpState {
        Established => "established",
        SynSent => "syn_sent",
        SynRecv => "syn_recv",
        FinWait1 => "fin_wait1",
        FinWait2 => "fin_wait2",
        TimeWait => "time_wait",
        Close => "close",
        CloseWait => "close_wait",
        LastAck => "last_ack",
        Listen => "listen",
        Closing => "closing",
        Unknown => "unknown",
    }
}

impl TcpState {
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
