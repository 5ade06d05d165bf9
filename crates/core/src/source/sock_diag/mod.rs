//! The NETLINK_SOCK_DIAG socket that every socket dump goes through, and its receive loop.
//!
//! Kernel interface: a NETLINK_SOCK_DIAG socket (net/core/sock_diag.c). One
//! SOCK_DIAG_BY_FAMILY request with NLM_F_DUMP is answered by a stream of datagrams, one
//! message per socket, until NLMSG_DONE. The families differ only in the request and in
//! the payload of each message: [`super::inet_diag`] (TCP) and [`super::unix_diag`] (UNIX)
//! build their request and decode their payload; the socket, the receive buffer, the
//! sequence numbers and the framing ([`frame`]) are shared here.
//!
//! The socket belongs to the network namespace of the thread that opened it, so dumping
//! another namespace is a matter of opening [`SockDiag`] from a thread that entered it.
//!
//! The socket is reached through [`Transport`] (send a request, receive one datagram):
//! the seam where tests replay captured datagrams and inject faults (ENOBUFS, EINTR, a
//! cut or interrupted reply) under the real receive loop, framing and poll. An
//! [`Opener`] makes a `SockDiag` in the calling thread's namespace; the poll is built
//! with one ([`Opener::netlink`] in production).

pub mod frame;

/// The netlink message type of the TCP dump request that predates SOCK_DIAG_BY_FAMILY
/// (`struct inet_diag_req`, include/uapi/linux/inet_diag.h), still served by
/// inet_diag_rcv_msg_compat: the kernel answers it with the sockets of both families from
/// one walk of its hash tables, where SOCK_DIAG_BY_FAMILY takes one walk per family.
pub const TCPDIAG_GETSOCK: u16 = 18;
#[cfg(any(test, feature = "test-support"))]
pub mod script;

use std::fmt;
use std::io;
use std::sync::Arc;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr};

pub use frame::{DecodeError, Progress};

/// Receive buffer capacity. The kernel sizes dump datagrams from the reader's buffer
/// (capped at 32 KiB in netlink_recvmsg); 64 KiB leaves room, and MSG_TRUNC catches the
/// case where it would not.
pub const RECV_BUFFER_BYTES: usize = 64 * 1024;

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

impl SockDiagError {
    /// NLM_F_DUMP_INTR: the socket tables changed under the dump, which is worth one more
    /// try (from a fresh socket) rather than a failed poll.
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            SockDiagError::Decode {
                source: DecodeError::Interrupted,
                ..
            }
        )
    }
}

/// What a dump needs of a NETLINK_SOCK_DIAG socket. One indirect call per datagram (a
/// datagram holds up to 32 KiB of replies): nothing next to the decoding.
pub trait Transport: Send {
    /// Sends one request message.
    fn send(&mut self, request: &[u8]) -> io::Result<()>;

    /// Receives one datagram into `buffer` (cleared by the caller; filled up to its
    /// capacity) and returns the datagram's real length, which is larger than
    /// `buffer.len()` when the datagram did not fit (MSG_TRUNC semantics).
    fn recv(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize>;
}

/// The kernel's NETLINK_SOCK_DIAG socket.
#[derive(Debug)]
pub struct Netlink(Socket);

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink(socket))
    }
}

impl Transport for Netlink {
    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.0.send(request, 0)?;
        Ok(())
    }

    fn recv(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        // MSG_TRUNC makes recv return the datagram's real length, so a datagram larger
        // than the buffer is detected instead of silently cut.
        self.0.recv(buffer, libc::MSG_TRUNC)
    }
}

/// Makes a [`SockDiag`] in the calling thread's network namespace. Called by the poll for
/// its own namespace (again after any failure) and once per other namespace per poll,
/// from the thread that entered it.
#[derive(Clone)]
pub struct Opener(Arc<dyn Fn() -> Result<SockDiag, SockDiagError> + Send + Sync>);

impl Opener {
    /// The kernel's socket: [`SockDiag::open`].
    pub fn netlink() -> Opener {
        Opener(Arc::new(SockDiag::open))
    }

    /// Any other way to make one (tests: a scripted [`Transport`]).
    pub fn new(
        open: impl Fn() -> Result<SockDiag, SockDiagError> + Send + Sync + 'static,
    ) -> Opener {
        Opener(Arc::new(open))
    }

    pub fn open(&self) -> Result<SockDiag, SockDiagError> {
        (self.0)()
    }
}

impl Default for Opener {
    fn default() -> Opener {
        Opener::netlink()
    }
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opener")
    }
}

/// One NETLINK_SOCK_DIAG socket and its receive buffer. One dump at a time: the kernel
/// answers EBUSY to a second concurrent dump on the same socket, and `&mut self` makes
/// that impossible to write. The TCP and UNIX dumps of a namespace share one.
pub struct SockDiag {
    transport: Box<dyn Transport>,
    buffer: Vec<u8>,
    sequence: u32,
}

impl fmt::Debug for SockDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockDiag")
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

impl SockDiag {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<SockDiag, SockDiagError> {
        Ok(SockDiag::over(Box::new(
            Netlink::open().map_err(SockDiagError::Open)?,
        )))
    }

    /// Dumps through `transport` instead of the kernel's socket.
    pub fn over(transport: Box<dyn Transport>) -> SockDiag {
        SockDiag {
            transport,
            buffer: Vec::with_capacity(RECV_BUFFER_BYTES),
            sequence: 0,
        }
    }

    /// Sends `request` as a dump and hands each socket's payload, in place, to `payload`
    /// until the dump ends. `family` names the dump in errors (`ipv4`, `ipv6`, `unix`).
    ///
    /// On error the socket may still hold the rest of the failed dump; the caller should
    /// drop it and open a new one (the sequence check would reject the leftovers anyway).
    pub fn dump_raw(
        &mut self,
        family: &'static str,
        request: SockDiagMessage,
        payload: &mut impl FnMut(&[u8], usize) -> Result<(), DecodeError>,
    ) -> Result<(), SockDiagError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        self.send_request(request, sequence)
            .map_err(|source| SockDiagError::Send { family, source })?;
        self.receive(family, sequence, payload)
    }

    /// Receives the dump of request `sequence` until it ends.
    fn receive(
        &mut self,
        family: &'static str,
        sequence: u32,
        payload: &mut impl FnMut(&[u8], usize) -> Result<(), DecodeError>,
    ) -> Result<(), SockDiagError> {
        loop {
            self.buffer.clear();
            let length = match self.transport.recv(&mut self.buffer) {
                Ok(length) => length,
                Err(source) if source.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(SockDiagError::Receive { family, source }),
            };
            if length > self.buffer.len() {
                return Err(SockDiagError::Oversized {
                    family,
                    length,
                    capacity: self.buffer.capacity(),
                });
            }
            match frame::decode_datagram(&self.buffer, sequence, payload) {
                Ok(Progress::Done) => return Ok(()),
                Ok(Progress::More) => {}
                Err(source) => return Err(SockDiagError::Decode { family, source }),
            }
        }
    }

    /// [`SockDiag::dump_raw`] for a request netlink-packet-sock_diag does not build: a
    /// netlink message of type `message_type` whose payload is `body`.
    pub fn dump_raw_bytes(
        &mut self,
        family: &'static str,
        message_type: u16,
        body: &[u8],
        payload: &mut impl FnMut(&[u8], usize) -> Result<(), DecodeError>,
    ) -> Result<(), SockDiagError> {
        self.sequence = self.sequence.wrapping_add(1);
        let sequence = self.sequence;
        // struct nlmsghdr: length, type, flags, sequence, port id (0: the kernel).
        let length = u32::try_from(frame::NLMSG_HEADER_LEN + body.len()).unwrap_or(u32::MAX);
        let mut bytes = Vec::with_capacity(frame::NLMSG_HEADER_LEN + body.len());
        bytes.extend_from_slice(&length.to_ne_bytes());
        bytes.extend_from_slice(&message_type.to_ne_bytes());
        bytes.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        bytes.extend_from_slice(&sequence.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(body);
        self.transport
            .send(&bytes)
            .map_err(|source| SockDiagError::Send { family, source })?;
        self.receive(family, sequence, payload)
    }

    fn send_request(&mut self, request: SockDiagMessage, sequence: u32) -> std::io::Result<()> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = sequence;
        let mut message = NetlinkMessage::new(header, request.into());
        message.finalize();
        let mut bytes = [0u8; 128];
        let length = message.buffer_len();
        message.serialize(&mut bytes[..length]);
        self.transport.send(&bytes[..length])
    }
}
