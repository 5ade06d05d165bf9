//! Pure decoder of one UDP inet_diag message payload: the struct inet_diag_msg header
//! ([`crate::source::inet_diag::decode`]) and the attributes after it, decoded in place
//! into a [`Record`].
//!
//! ```text
//! struct inet_diag_msg            72 bytes, read by inet_diag::decode
//! then netlink attributes (struct nlattr: __u16 nla_len, __u16 nla_type; data padded
//! to 4 bytes):
//!   INET_DIAG_SKMEMINFO (7): __u32 mem[SK_MEMINFO_VARS], include/uapi/linux/sock_diag.h:
//!     SK_MEMINFO_RMEM_ALLOC 0   bytes held by the receive queue (ss: r)
//!     SK_MEMINFO_RCVBUF     1   the receive buffer size (ss: rb)
//!     SK_MEMINFO_WMEM_ALLOC 2 .. SK_MEMINFO_BACKLOG 7
//!     SK_MEMINFO_DROPS      8   sk_drops: datagrams dropped on this socket (ss: d)
//! ```
//! SK_MEMINFO_VARS is 9 today; a longer array from a later kernel is read by its first
//! nine words. Any other attribute is skipped by length. A missing or short SKMEMINFO is
//! an error: the request always asks for it, and without it the drops would be a wrong
//! zero.

use std::net::SocketAddr;

use netlink_packet_sock_diag::constants::{INET_DIAG_SKMEMINFO, TCP_ESTABLISHED};

use crate::source::inet_diag::decode::{decode_inet_diag_msg, INET_DIAG_MSG_LEN};
use crate::source::inet_diag::Family;
use crate::source::sock_diag::frame::for_each_attribute;
use crate::source::sock_diag::DecodeError;

/// Indices into the SKMEMINFO array (include/uapi/linux/sock_diag.h).
const SK_MEMINFO_RMEM_ALLOC: usize = 0;
const SK_MEMINFO_RCVBUF: usize = 1;
const SK_MEMINFO_DROPS: usize = 8;
/// SK_MEMINFO_VARS: the words this decoder needs.
pub const SK_MEMINFO_LEN: usize = 9 * 4;

/// One UDP socket as udp_diag reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub family: Family,
    /// connect()ed: the kernel reports TCP_ESTABLISHED; unconnected sockets are TCP_CLOSE.
    pub connected: bool,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub uid: u32,
    /// The socket's inode, as in `/proc/PID/fd` links.
    pub inode: u32,
    /// The kernel's unique socket cookie (sock_gen_cookie), stable for the socket's life.
    pub cookie: u64,
    /// Bytes the receive queue holds, skb overhead included (`ss -uam` r).
    pub queue_bytes: u32,
    /// The receive buffer, SO_RCVBUF doubled by the kernel (`ss -uam` rb).
    pub buffer_bytes: u32,
    /// Datagrams dropped on this socket since it was made (`ss -uam` d). The kernel's
    /// atomic_t, read as unsigned.
    pub drops: u32,
}

fn malformed(offset: usize, reason: String) -> DecodeError {
    DecodeError::Malformed {
        kind: "udp_diag",
        offset,
        reason,
    }
}

fn word(data: &[u8], index: usize) -> u32 {
    let at = index * 4;
    u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Decodes the payload of the message at `offset` of its datagram.
pub fn decode_udp_diag_msg(payload: &[u8], offset: usize) -> Result<Record, DecodeError> {
    let header = decode_inet_diag_msg(payload, offset).map_err(|error| match error {
        DecodeError::ShortReply {
            offset, need, have, ..
        } => DecodeError::ShortReply {
            kind: "udp_diag",
            offset,
            need,
            have,
        },
        DecodeError::Malformed { offset, reason, .. } => malformed(offset, reason),
        other => other,
    })?;
    let mut record = Record {
        family: header.family,
        connected: payload[1] == TCP_ESTABLISHED,
        local: header.local,
        remote: header.remote,
        uid: header.uid,
        inode: header.inode,
        cookie: header.cookie,
        queue_bytes: 0,
        buffer_bytes: 0,
        drops: 0,
    };
    let mut meminfo = false;
    for_each_attribute(payload, INET_DIAG_MSG_LEN, &mut |kind, data| {
        if kind == INET_DIAG_SKMEMINFO {
            if data.len() < SK_MEMINFO_LEN {
                return Err(format!(
                    "INET_DIAG_SKMEMINFO has {} bytes of data, expected at least {SK_MEMINFO_LEN}",
                    data.len()
                ));
            }
            record.queue_bytes = word(data, SK_MEMINFO_RMEM_ALLOC);
            record.buffer_bytes = word(data, SK_MEMINFO_RCVBUF);
            record.drops = word(data, SK_MEMINFO_DROPS);
            meminfo = true;
        }
        Ok(())
    })
    .map_err(|reason| malformed(offset, reason))?;
    if !meminfo {
        return Err(malformed(
            offset,
            format!(
                "socket {} (cookie {:#x}) came without INET_DIAG_SKMEMINFO",
                record.inode, record.cookie
            ),
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests;
