//! Dumps UNIX domain sockets of the current network namespace through netlink sock_diag.
//!
//! Kernel interface: the unix_diag dump (net/unix/diag.c): one SOCK_DIAG_BY_FAMILY request
//! with NLM_F_DUMP, family AF_UNIX, a state bitmask and `udiag_show` flags, answered by a
//! `unix_diag_msg` per socket followed by the attributes asked for. This is what `ss -x`
//! uses; it needs no privilege for the sockets of the caller's own network namespace.
//!
//! Only `UDIAG_SHOW_NAME` (the bound name) and `UDIAG_SHOW_RQLEN` (the queues) are asked
//! for: the owner comes from the /proc index by inode, so neither VFS (the path's inode)
//! nor PEER is needed. Unlike inet_diag, the kernel walks the whole UNIX socket table for
//! every dump whatever the state filter: a LISTEN-only dump saves the encoding of the
//! others, not the walk (docs/benchmarks.md).
//!
//! The socket, receive loop and framing are [`super::sock_diag`]'s; [`decode`] turns each
//! payload, in place, into a [`Record`] that borrows the receive buffer.

pub mod decode;

use netlink_packet_sock_diag::constants::{
    SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, TCP_ESTABLISHED, TCP_LISTEN,
};
use netlink_packet_sock_diag::unix::{ShowFlags, StateFlags, UnixRequest};
use netlink_packet_sock_diag::SockDiagMessage;

use super::sock_diag::{SockDiag, SockDiagError};
use crate::label::label_enum;

pub use decode::{Name, Record};

/// Which UNIX sockets a dump asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixFilter {
    /// Every state: the main poll.
    All,
    /// Listeners only: the listener sampler.
    Listen,
}

impl UnixFilter {
    fn flags(self) -> StateFlags {
        match self {
            // Every bit, as ss does: unconnected sockets are TCP_CLOSE (7), which the
            // crate's flags do not name.
            UnixFilter::All => StateFlags::from_bits_retain(u32::MAX),
            UnixFilter::Listen => StateFlags::LISTEN,
        }
    }
}

label_enum! {
    /// The socket type (`udiag_type`), the `socket_type` label.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum UnixType {
        Stream => "stream",
        Seqpacket => "seqpacket",
        Dgram => "dgram",
        /// A type this exporter does not know (AF_UNIX has had only these three since
        /// SOCK_RAW became SOCK_DGRAM): counted, never a failed poll.
        Other => "other",
    }
}

impl UnixType {
    pub fn from_kernel(value: u8) -> UnixType {
        match value {
            SOCK_STREAM => UnixType::Stream,
            SOCK_SEQPACKET => UnixType::Seqpacket,
            SOCK_DGRAM => UnixType::Dgram,
            _ => UnixType::Other,
        }
    }
}

label_enum! {
    /// The socket state (`udiag_state`, TCP numbers), the `state` label.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum UnixState {
        Listen => "listen",
        Established => "established",
        /// Anything else; in practice TCP_CLOSE: an unconnected datagram socket, or a stream
        /// socket neither connected nor listening.
        Other => "other",
    }
}

impl UnixState {
    pub fn from_kernel(value: u8) -> UnixState {
        match value {
            TCP_LISTEN => UnixState::Listen,
            TCP_ESTABLISHED => UnixState::Established,
            _ => UnixState::Other,
        }
    }
}

impl SockDiag {
    /// Dumps the UNIX sockets matching `filter` with their names and queues, calling
    /// `visit` for each. On error, drop the socket (see [`SockDiag::dump_raw`]).
    pub fn dump_unix(
        &mut self,
        filter: UnixFilter,
        visit: &mut impl FnMut(&Record<'_>),
    ) -> Result<(), SockDiagError> {
        let request = SockDiagMessage::UnixRequest(UnixRequest {
            state_flags: filter.flags(),
            inode: 0,
            show_flags: ShowFlags::NAME | ShowFlags::RQLEN,
            // All ones: no particular socket.
            cookie: [0xff; 8],
        });
        self.dump_raw("unix", request, &mut |payload, offset| {
            visit(&decode::decode_unix_diag_msg(payload, offset)?);
            Ok(())
        })
    }
}
