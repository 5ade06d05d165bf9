//! Dumps UDP sockets of the current network namespace, with their memory figures,
//! through netlink sock_diag.
//!
//! Kernel interface: the inet_diag dump for IPPROTO_UDP (net/ipv4/udp_diag.c): one
//! SOCK_DIAG_BY_FAMILY request with NLM_F_DUMP per address family, every state, and the
//! `INET_DIAG_SKMEMINFO` extension bit set, answered by an `inet_diag_msg` per socket
//! followed by the `INET_DIAG_SKMEMINFO` attribute: the `skmem:(r..,rb..,...,d..)` of
//! `ss -uam`, `sk_drops` included. Unconnected sockets are TCP_CLOSE, connected ones
//! TCP_ESTABLISHED. Needs no privilege for the caller's own namespace.
//!
//! The socket, receive loop and framing are [`super::sock_diag`]'s; [`decode`] turns each
//! payload, in place, into a [`Record`].

pub mod decode;

use netlink_packet_sock_diag::constants::IPPROTO_UDP;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;

use super::inet_diag::Family;
use super::sock_diag::{SockDiag, SockDiagError};

pub use decode::Record;

impl SockDiag {
    /// Dumps the UDP sockets of one family, every state, calling `visit` for each. On
    /// error, drop the socket (see [`SockDiag::dump_raw`]).
    pub fn dump_udp(
        &mut self,
        family: Family,
        visit: &mut impl FnMut(&Record),
    ) -> Result<(), SockDiagError> {
        let socket_id = match family {
            Family::Ipv4 => SocketId::new_v4(),
            Family::Ipv6 => SocketId::new_v6(),
        };
        let request = SockDiagMessage::InetRequest(InetRequest {
            family: family.af(),
            protocol: IPPROTO_UDP,
            extensions: ExtensionFlags::SKMEMINFO,
            // Every state, as `ss -ua` asks: unconnected UDP sockets are TCP_CLOSE.
            states: StateFlags::all(),
            socket_id,
        });
        let name = match family {
            Family::Ipv4 => "udp ipv4",
            Family::Ipv6 => "udp ipv6",
        };
        self.dump_raw(name, request, &mut |payload, offset| {
            visit(&decode::decode_udp_diag_msg(payload, offset)?);
            Ok(())
        })
    }
}
