//! Dumps TCP sockets of the current network namespace through netlink sock_diag.
//!
//! Kernel interface: a NETLINK_SOCK_DIAG socket (net/core/sock_diag.c) and the inet_diag
//! dump (net/ipv4/inet_diag.c, tcp_diag.c): one SOCK_DIAG_BY_FAMILY request with
//! NLM_F_DUMP per address family and a state bitmask, answered by a stream of
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

use super::sock_diag::{SockDiag, SockDiagError};

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
}
