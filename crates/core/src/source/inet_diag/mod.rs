//! Dumps TCP sockets of the current network namespace through netlink sock_diag.
//!
//! Kernel interface: a NETLINK_SOCK_DIAG socket (net/core/sock_diag.c) and the inet_diag
//! dump (net/ipv4/inet_diag.c, tcp_diag.c): one SOCK_DIAG_BY_FAMILY request with
//! NLM_F_DUMP per address family and a state bitmask, or one TCPDIAG_GETSOCK request for
//! both families ([`SockDiag::dump_both_families`]), answered by a stream of
//! `inet_diag_msg` records. This is what `ss` uses; it needs no privilege for the sockets
//! of the caller's own network namespace.
//!
//! The socket, its receive loop and the netlink framing are shared with the UNIX dump
//! ([`super::sock_diag`]); this module builds the TCP request, and [`decode`] turns each
//! message's payload, in place, into a [`Record`] handed to a visitor: no per-socket
//! allocation, no list of sockets.

pub mod decode;
pub mod state;

use netlink_packet_sock_diag::constants::IPPROTO_TCP;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;

use super::sock_diag::{SockDiag, SockDiagError, TCPDIAG_GETSOCK};

pub use decode::Record;
pub use state::{Family, TcpState};

/// Which sockets a dump asks the kernel for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Every state (request sockets are reported as syn_recv).
    All,
    /// LISTEN only: the kernel walks the listening hash alone, so this costs the same
    /// whatever the number of other sockets.
    Listen,
    /// Every state but LISTEN.
    NotListen,
}

impl StateFilter {
    fn flags(self) -> StateFlags {
        match self {
            StateFilter::All => StateFlags::all(),
            StateFilter::Listen => StateFlags::LISTEN,
            StateFilter::NotListen => StateFlags::all() - StateFlags::LISTEN,
        }
    }
}

impl SockDiag {
    /// Dumps the TCP sockets of one family matching `filter`, calling `visit` for each.
    /// On error, drop the socket (see [`SockDiag::dump_raw`]).
    pub fn dump(
        &mut self,
        family: Family,
        filter: StateFilter,
        visit: &mut impl FnMut(&Record),
    ) -> Result<(), SockDiagError> {
        let socket_id = match family {
            Family::Ipv4 => SocketId::new_v4(),
            Family::Ipv6 => SocketId::new_v6(),
        };
        let request = SockDiagMessage::InetRequest(InetRequest {
            family: family.af(),
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: filter.flags(),
            socket_id,
        });
        self.dump_raw(family.label(), request, &mut |payload, offset| {
            visit(&decode::decode_inet_diag_msg(payload, offset)?);
            Ok(())
        })
    }

    /// Dumps the TCP sockets of both families matching `filter` in one request, calling
    /// `visit` for each: the kernel walks its listening and established hash tables once
    /// for both families, where [`SockDiag::dump`] walks them once per family (on a host
    /// whose namespaces share the established table, `tcp_child_ehash_entries = 0`, each
    /// walk covers every bucket of the host's table). Every LISTEN socket of both
    /// families comes before any other socket: the kernel walks the listening table first.
    /// The request is the one before SOCK_DIAG_BY_FAMILY (`TCPDIAG_GETSOCK`, `struct
    /// inet_diag_req`, family AF_UNSPEC), which only TCP has.
    pub fn dump_both_families(
        &mut self,
        filter: StateFilter,
        visit: &mut impl FnMut(&Record),
    ) -> Result<(), SockDiagError> {
        self.dump_raw_bytes(
            "tcp",
            TCPDIAG_GETSOCK,
            &compat_request(filter),
            &mut |payload, offset| {
                visit(&decode::decode_inet_diag_msg(payload, offset)?);
                Ok(())
            },
        )
    }
}

/// `struct inet_diag_req` for every socket of both families in `filter`'s states: family
/// AF_UNSPEC, no address lengths, no extensions, an empty socket id (ports, addresses,
/// interface, cookie: 48 bytes), the state mask, no `idiag_dbs`.
fn compat_request(filter: StateFilter) -> [u8; COMPAT_REQUEST_LEN] {
    let mut request = [0u8; COMPAT_REQUEST_LEN];
    request[52..56].copy_from_slice(&filter.flags().bits().to_ne_bytes());
    request
}

/// The size of `struct inet_diag_req`.
const COMPAT_REQUEST_LEN: usize = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compat_request_asks_both_families_for_the_filters_states() {
        let listen = compat_request(StateFilter::Listen);
        assert_eq!(listen[0], 0, "AF_UNSPEC");
        assert_eq!(listen[1..52], [0; 51]);
        assert_eq!(listen[52..56], (1u32 << 10).to_ne_bytes(), "TCPF_LISTEN");
        assert_eq!(listen[56..60], [0; 4]);
        let all = compat_request(StateFilter::All);
        assert_eq!(
            u32::from_ne_bytes(all[52..56].try_into().unwrap()),
            StateFlags::all().bits()
        );
    }
}
