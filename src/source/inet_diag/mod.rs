//! Dumps TCP sockets of the current network namespace through netlink sock_diag.
//!
//! Kernel interface: a NETLINK_SOCK_DIAG socket (net/core/sock_diag.c) and the inet_diag
//! dump (net/ipv4/inet_diag.c, tcp_diag.c): one SOCK_DIAG_BY_FAMILY request with
//! NLM_F_DUMP per address family and a state bitmask, answered by a stream of
//! `inet_diag_msg` records. This is what `ss` uses; it needs no privilege for the sockets
//! of the caller's own network namespace.
//!
//! The socket belongs to the network namespace of the thread that opened it, so running
//! the collector inside another namespace is a matter of opening [`SockDiag`] from a thread
//! that entered it.
//!
//! Records are decoded in place ([`decode`]) from one reusable receive buffer and handed
//! to a visitor: no per-socket allocation, no list of sockets.

pub mod decode;
pub mod state;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_sock_diag::constants::IPPROTO_TCP;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};

pub use decode::{DecodeError, Progress, Record};
pub use state::{Family, TcpState};

/// Receive buffer capacity. The kernel sizes dump datagrams from the reader's buffer
/// (capped at 32 KiB in netlink_recvmsg); 64 KiB leaves room, and MSG_TRUNC catches the
/// case where it would not.
pub const RECV_BUFFER_BYTES: usize = 64 * 1024;

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

#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("cannot open a NETLINK_SOCK_DIAG socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("cannot send the {family} dump request: {source}")]
    Send {
        family: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("receive failed during the {family} dump: {source}")]
    Receive {
        family: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{family} dump datagram of {length} bytes does not fit the {capacity} byte receive buffer"
    )]
    Oversized {
        family: &'static str,
        length: usize,
        capacity: usize,
    },
    #[error("bad reply in the {family} dump: {source}")]
    Decode {
        family: &'static str,
        #[source]
        source: DecodeError,
    },
}

/// One NETLINK_SOCK_DIAG socket and its receive buffer. One dump at a time: the kernel
/// answers EBUSY to a second concurrent dump on the same socket, and `&mut self` makes
/// that impossible to write.
#[derive(Debug)]
pub struct SockDiag {
    socket: Socket,
    buffer: Vec<u8>,
    sequence: u32,
}

impl SockDiag {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<SockDiag, SockDiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Open)?;
        socket.bind_auto().map_err(SockDiagError::Open)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(SockDiagError::Open)?;
        Ok(SockDiag {
            socket,
            buffer: Vec::with_capacity(RECV_BUFFER_BYTES),
            sequence: 0,
        })
    }

    /// Dumps the TCP sockets of one family matching `filter`, calling `visit` for each.
    ///
    /// On error the socket may still hold the rest of the failed dump; the caller should
    /// drop it and open a new one (the sequence check would reject the leftovers anyway).
    pub fn dump(
        &mut self,
        family: Family,
        filter: StateFilter,
        visit: &mut impl FnMut(&Record),
    ) -> Result<(), SockDiagError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        let label = family.label();
        self.send_request(family, filter, sequence)
            .map_err(|source| SockDiagError::Send {
                family: label,
                source,
            })?;
        loop {
            self.buffer.clear();
            // MSG_TRUNC makes recv return the datagram's real length, so a datagram larger
            // than the buffer is detected instead of silently cut.
            let length = match self.socket.recv(&mut self.buffer, libc::MSG_TRUNC) {
                Ok(length) => length,
                Err(source) if source.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(SockDiagError::Receive {
                        family: label,
                        source,
                    })
                }
            };
            if length > self.buffer.len() {
                return Err(SockDiagError::Oversized {
                    family: label,
                    length,
                    capacity: self.buffer.capacity(),
                });
            }
            match decode::decode_datagram(&self.buffer, sequence, visit) {
                Ok(Progress::Done) => return Ok(()),
                Ok(Progress::More) => {}
                Err(source) => {
                    return Err(SockDiagError::Decode {
                        family: label,
                        source,
                    })
                }
            }
        }
    }

    fn send_request(
        &mut self,
        family: Family,
        filter: StateFilter,
        sequence: u32,
    ) -> std::io::Result<()> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = sequence;
        let socket_id = match family {
            Family::Ipv4 => SocketId::new_v4(),
            Family::Ipv6 => SocketId::new_v6(),
        };
        let mut message = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: family.af(),
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: filter.flags(),
                socket_id,
            })
            .into(),
        );
        message.finalize();
        let mut request = [0u8; 128];
        let length = message.buffer_len();
        message.serialize(&mut request[..length]);
        self.socket.send(&request[..length], 0)?;
        Ok(())
    }
}
