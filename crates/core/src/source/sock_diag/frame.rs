//! Pure decoder of the netlink framing of one NETLINK_SOCK_DIAG dump datagram.
//!
//! A datagram holds one or more netlink messages (struct nlmsghdr, include/uapi/linux/
//! netlink.h): SOCK_DIAG_BY_FAMILY messages, each with one socket's payload, until
//! NLMSG_DONE ends the dump or NLMSG_ERROR aborts it. This module checks the framing
//! (lengths, sequence, flags, errors) and hands each SOCK_DIAG_BY_FAMILY payload, in
//! place, to the payload decoder of the dump's family (`inet_diag::decode`,
//! `unix_diag::decode`): nothing per socket is allocated or kept.

use netlink_packet_core::{
    DoneBuffer, ErrorBuffer, NetlinkBuffer, NLMSG_ALIGNTO, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NLMSG_OVERRUN, NLM_F_DUMP_INTR,
};
use netlink_packet_sock_diag::constants::SOCK_DIAG_BY_FAMILY;

/// Size of struct nlmsghdr.
pub const NLMSG_HEADER_LEN: usize = 16;

/// What the decoder learned from one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams follow.
    More,
    /// NLMSG_DONE was seen: the dump is complete.
    Done,
}

/// Why a datagram could not be decoded. Every variant fails the dump: a partial count
/// would be a silently wrong number. `kind` names the payload's struct family
/// (`inet_diag`, `unix_diag`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("truncated netlink message at offset {offset}: {have} bytes left, header says {need}")]
    Truncated {
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error(
        "{kind} reply at offset {offset} is {have} bytes, shorter than {kind}_msg ({need} bytes)"
    )]
    ShortReply {
        kind: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    #[error("kernel answered the dump with error {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    #[error("netlink message at offset {offset} has sequence {got}, expected {expected}")]
    Sequence {
        offset: usize,
        expected: u32,
        got: u32,
    },
    #[error("unexpected netlink message type {message_type} at offset {offset}")]
    MessageType { offset: usize, message_type: u16 },
    #[error("the kernel reported a receive buffer overrun: messages were lost")]
    Overrun,
    #[error("the dump was interrupted (NLM_F_DUMP_INTR): the socket tables changed under it")]
    Interrupted,
    #[error("malformed {kind}_msg at offset {offset}: {reason}")]
    Malformed {
        kind: &'static str,
        offset: usize,
        reason: String,
    },
}

/// Decodes one received datagram, calling `payload` with each SOCK_DIAG_BY_FAMILY
/// message's payload and the message's offset in the datagram (for error reports).
pub fn decode_datagram(
    datagram: &[u8],
    expected_seq: u32,
    payload: &mut impl FnMut(&[u8], usize) -> Result<(), DecodeError>,
) -> Result<Progress, DecodeError> {
    let mut offset = 0;
    while offset < datagram.len() {
        let rest = &datagram[offset..];
        if rest.len() < NLMSG_HEADER_LEN {
            return Err(DecodeError::Truncated {
                offset,
                need: NLMSG_HEADER_LEN,
                have: rest.len(),
            });
        }
        let message = NetlinkBuffer::new(rest);
        let length = message.length() as usize;
        if length < NLMSG_HEADER_LEN || length > rest.len() {
            return Err(DecodeError::Truncated {
                offset,
                need: length.max(NLMSG_HEADER_LEN),
                have: rest.len(),
            });
        }
        if message.sequence_number() != expected_seq {
            return Err(DecodeError::Sequence {
                offset,
                expected: expected_seq,
                got: message.sequence_number(),
            });
        }
        if message.flags() & NLM_F_DUMP_INTR != 0 {
            return Err(DecodeError::Interrupted);
        }
        let body = &rest[NLMSG_HEADER_LEN..length];
        match message.message_type() {
            // A reply carries its request's type: TCPDIAG_GETSOCK for the TCP dump of both
            // families at once (super::TCPDIAG_GETSOCK).
            SOCK_DIAG_BY_FAMILY | super::TCPDIAG_GETSOCK => payload(body, offset)?,
            NLMSG_DONE => {
                // A dump that failed after it started ends in DONE with a negative errno.
                let code = DoneBuffer::new_checked(body)
                    .map(|done| done.code())
                    .unwrap_or(0);
                if code < 0 {
                    return Err(kernel_error("done", offset, code));
                }
                return Ok(Progress::Done);
            }
            NLMSG_ERROR => {
                let error =
                    ErrorBuffer::new_checked(body).map_err(|source| DecodeError::Malformed {
                        kind: "nlmsgerr",
                        offset,
                        reason: source.to_string(),
                    })?;
                // An ACK (code 0) is not expected without NLM_F_ACK; tolerate it.
                if let Some(code) = error.code() {
                    return Err(kernel_error("nlmsgerr", offset, code.get()));
                }
            }
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => return Err(DecodeError::Overrun),
            message_type => {
                return Err(DecodeError::MessageType {
                    offset,
                    message_type,
                })
            }
        }
        offset += align(length);
    }
    Ok(Progress::More)
}

/// The error of a message carrying `code`, a negative errno. Any other code (a positive
/// one, or i32::MIN, whose negation overflowed: a panic in debug builds, a negative
/// errno in release ones) is a malformed message, not a kernel error.
fn kernel_error(kind: &'static str, offset: usize, code: i32) -> DecodeError {
    match code.checked_neg() {
        Some(errno) if errno > 0 => DecodeError::Kernel { errno },
        _ => DecodeError::Malformed {
            kind,
            offset,
            reason: format!("error code {code} is not a negative errno"),
        },
    }
}

fn align(length: usize) -> usize {
    let to = usize::from(NLMSG_ALIGNTO);
    (length + to - 1) & !(to - 1)
}

/// Size of struct nlattr.
const NLA_HEADER_LEN: usize = 4;
/// nla_type without the NLA_F_NESTED and NLA_F_NET_BYTEORDER bits.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Walks the netlink attributes (`struct nlattr`, each padded to 4 bytes) of `payload`
/// from byte `start`, handing each one's type and data to `visit`. Stray bytes and an
/// attribute running past the payload are errors: the reason, for the decoder to wrap with
/// its message's offset. The last attribute's padding may be cut by the message's own
/// length. Shared by the unix_diag and udp_diag decoders.
pub fn for_each_attribute<'a>(
    payload: &'a [u8],
    start: usize,
    visit: &mut dyn FnMut(u16, &'a [u8]) -> Result<(), String>,
) -> Result<(), String> {
    let mut at = start;
    while at < payload.len() {
        let left = payload.len() - at;
        if left < NLA_HEADER_LEN {
            return Err(format!(
                "{left} stray bytes after the attributes at byte {at}"
            ));
        }
        let length = usize::from(u16::from_ne_bytes([payload[at], payload[at + 1]]));
        let kind = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]) & NLA_TYPE_MASK;
        if length < NLA_HEADER_LEN || length > left {
            return Err(format!(
                "attribute {kind} at byte {at} has length {length}, {left} bytes left"
            ));
        }
        visit(kind, &payload[at + NLA_HEADER_LEN..at + length])?;
        at = (at + length + 3) & !3;
    }
    Ok(())
}

/// Builders of netlink bytes for tests, here and in the daemon's fault tests (feature
/// `test-support`).
#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    use super::{NLA_HEADER_LEN, NLMSG_HEADER_LEN};

    /// struct nlattr + data, padded to 4 bytes.
    pub fn attribute(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = ((NLA_HEADER_LEN + data.len()) as u16)
            .to_ne_bytes()
            .to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    /// Builds a netlink message: nlmsghdr (len, type, flags, seq, pid) + payload, padded.
    pub fn nlmsg(message_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HEADER_LEN + payload.len()) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&message_type.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&4242u32.to_ne_bytes()); // nlmsg_pid
        out.extend_from_slice(payload);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    /// The datagrams of a capture file (the testdata/capture.py scripts): each a
    /// native-endian u32 length and the bytes.
    pub fn capture_datagrams(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        let mut rest = bytes;
        while let Some((length, tail)) = rest.split_first_chunk::<4>() {
            let (datagram, tail) = tail.split_at(u32::from_ne_bytes(*length) as usize);
            datagrams.push(datagram.to_vec());
            rest = tail;
        }
        datagrams
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// A payload handed on: (offset, length, first byte).
    type Seen = (usize, usize, u8);

    /// The payloads handed on.
    fn collect(datagram: &[u8], seq: u32) -> (Result<Progress, DecodeError>, Vec<Seen>) {
        let mut seen = Vec::new();
        let result = decode_datagram(datagram, seq, &mut |body: &[u8], offset| {
            seen.push((offset, body.len(), body[0]));
            Ok(())
        });
        (result, seen)
    }

    /// A payload of `len` bytes, each `tag` (the framing never looks inside).
    fn body(tag: u8, len: usize) -> Vec<u8> {
        vec![tag; len]
    }

    #[test]
    fn several_messages_then_done() {
        let mut datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &body(1, 72));
        // 16 + 18 = 34 bytes, padded to 36: the next message starts aligned.
        datagram.extend(nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &body(2, 18)));
        datagram.extend(nlmsg(NLMSG_NOOP, 2, 3, &[]));
        datagram.extend(nlmsg(NLMSG_DONE, 2, 3, &0i32.to_ne_bytes()));
        let (result, seen) = collect(&datagram, 3);
        assert_eq!(result, Ok(Progress::Done));
        assert_eq!(seen, vec![(0, 72, 1), (88, 18, 2)]);
    }

    #[test]
    fn a_datagram_without_done_asks_for_more() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &body(1, 16));
        assert_eq!(collect(&datagram, 3).0, Ok(Progress::More));
    }

    #[test]
    fn a_payload_error_fails_the_datagram() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 3, &body(1, 16));
        let result = decode_datagram(&datagram, 3, &mut |_: &[u8], offset| {
            Err(DecodeError::ShortReply {
                kind: "unix_diag",
                offset,
                need: 17,
                have: 16,
            })
        });
        assert_eq!(
            result.unwrap_err().to_string(),
            "unix_diag reply at offset 0 is 16 bytes, shorter than unix_diag_msg (17 bytes)"
        );
    }

    #[test]
    fn nlmsg_error_carries_errno() {
        // struct nlmsgerr: int error; struct nlmsghdr msg (the request that failed).
        let mut payload = (-16i32).to_ne_bytes().to_vec(); // -EBUSY
        payload.extend_from_slice(&[0; NLMSG_HEADER_LEN]);
        let datagram = nlmsg(NLMSG_ERROR, 0, 9, &payload);
        let (result, _) = collect(&datagram, 9);
        let error = result.unwrap_err();
        assert_eq!(error, DecodeError::Kernel { errno: 16 });
        assert_eq!(
            error.to_string(),
            "kernel answered the dump with error 16 (Device or resource busy (os error 16))"
        );
    }

    #[test]
    fn nlmsg_error_too_short_is_malformed() {
        let datagram = nlmsg(NLMSG_ERROR, 0, 9, &[0xf0, 0xff]);
        let (result, _) = collect(&datagram, 9);
        assert!(matches!(
            result,
            Err(DecodeError::Malformed {
                kind: "nlmsgerr",
                offset: 0,
                ..
            })
        ));
    }

    /// Found by fuzzing (fuzz/corpus/sock_diag_*/crash-a8df2978..., crash-e20214dc...):
    /// DONE or ERROR carrying i32::MIN negated it with overflow, a panic in debug builds
    /// and errno -2147483648 in release ones; a positive ERROR code gave a negative errno.
    #[test]
    fn error_code_i32_min_overflowed_its_negation() {
        for (message_type, code) in [
            (NLMSG_DONE, i32::MIN),
            (NLMSG_ERROR, i32::MIN),
            (NLMSG_ERROR, 5),
        ] {
            let mut payload = code.to_ne_bytes().to_vec();
            payload.extend_from_slice(&[0; NLMSG_HEADER_LEN]);
            let datagram = nlmsg(message_type, 2, 7, &payload);
            let kind = if message_type == NLMSG_DONE {
                "done"
            } else {
                "nlmsgerr"
            };
            assert_eq!(
                collect(&datagram, 7).0.unwrap_err().to_string(),
                format!(
                    "malformed {kind}_msg at offset 0: error code {code} is not a negative errno"
                )
            );
        }
    }

    #[test]
    fn done_with_negative_code_is_an_error() {
        let datagram = nlmsg(NLMSG_DONE, 2, 1, &(-12i32).to_ne_bytes()); // -ENOMEM
        let (result, _) = collect(&datagram, 1);
        assert_eq!(result, Err(DecodeError::Kernel { errno: 12 }));
    }

    #[test]
    fn truncated_message_is_an_error_not_a_skip() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &body(1, 72));
        let cut = &datagram[..datagram.len() - 10];
        let (result, seen) = collect(cut, 1);
        assert!(seen.is_empty());
        assert_eq!(
            result.unwrap_err().to_string(),
            "truncated netlink message at offset 0: 78 bytes left, header says 88"
        );
    }

    #[test]
    fn length_field_below_the_header_is_truncated() {
        let mut datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &body(1, 8));
        datagram[..4].copy_from_slice(&8u32.to_ne_bytes()); // nlmsg_len 8 < 16
        assert_eq!(
            collect(&datagram, 1).0,
            Err(DecodeError::Truncated {
                offset: 0,
                need: 16,
                have: 24
            })
        );
    }

    #[test]
    fn partial_header_is_an_error() {
        let mut datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &body(1, 72));
        datagram.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (result, seen) = collect(&datagram, 1);
        assert_eq!(seen.len(), 1, "the complete message before it was decoded");
        assert_eq!(
            result,
            Err(DecodeError::Truncated {
                offset: 88,
                need: 16,
                have: 8
            })
        );
    }

    #[test]
    fn stale_sequence_is_rejected() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 4, &body(1, 72));
        let (result, _) = collect(&datagram, 5);
        assert_eq!(
            result,
            Err(DecodeError::Sequence {
                offset: 0,
                expected: 5,
                got: 4
            })
        );
    }

    #[test]
    fn interrupted_dump_is_rejected() {
        let datagram = nlmsg(SOCK_DIAG_BY_FAMILY, 2 | NLM_F_DUMP_INTR, 1, &body(1, 72));
        assert_eq!(collect(&datagram, 1).0, Err(DecodeError::Interrupted));
    }

    #[test]
    fn overrun_and_unknown_types_are_errors() {
        let datagram = nlmsg(NLMSG_OVERRUN, 0, 1, &[]);
        assert_eq!(collect(&datagram, 1).0, Err(DecodeError::Overrun));
        let datagram = nlmsg(99, 0, 1, &[]);
        assert_eq!(
            collect(&datagram, 1).0,
            Err(DecodeError::MessageType {
                offset: 0,
                message_type: 99
            })
        );
    }

    /// Where a framed message sits: offset, unpadded length, payload (None: no payload
    /// handed on, NOOP or DONE).
    type Layout = Vec<(usize, usize, Option<Vec<u8>>)>;

    /// Messages (NOOP or SOCK_DIAG_BY_FAMILY with a payload), framed one after the other
    /// with sequence 7, optionally ended by DONE; with each message's place.
    fn frame_all(messages: &[(bool, Vec<u8>)], done: bool) -> (Vec<u8>, Layout) {
        let mut datagram = Vec::new();
        let mut layout = Vec::new();
        for (noop, payload) in messages {
            let (kind, body) = if *noop {
                (NLMSG_NOOP, None)
            } else {
                (SOCK_DIAG_BY_FAMILY, Some(payload.clone()))
            };
            let bytes = nlmsg(kind, 2, 7, body.as_deref().unwrap_or(&[]));
            let length = NLMSG_HEADER_LEN + body.as_ref().map_or(0, Vec::len);
            layout.push((datagram.len(), length, body));
            datagram.extend(bytes);
        }
        if done {
            let bytes = nlmsg(NLMSG_DONE, 2, 7, &0i32.to_ne_bytes());
            layout.push((datagram.len(), bytes.len(), None));
            datagram.extend(bytes);
        }
        (datagram, layout)
    }

    fn payloads_of(datagram: &[u8]) -> (Result<Progress, DecodeError>, Vec<Vec<u8>>) {
        let mut seen = Vec::new();
        let result = decode_datagram(datagram, 7, &mut |body: &[u8], _| {
            seen.push(body.to_vec());
            Ok(())
        });
        (result, seen)
    }

    fn arb_messages() -> impl proptest::strategy::Strategy<Value = Vec<(bool, Vec<u8>)>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            (
                prop::bool::weighted(0.2),
                proptest::collection::vec(any::<u8>(), 0..90),
            ),
            0..8,
        )
    }

    proptest::proptest! {
        /// Any concatenation of valid messages hands on exactly their payloads, in order.
        #[test]
        fn any_concatenation_yields_exactly_its_payloads(
            messages in arb_messages(),
            done in proptest::prelude::any::<bool>(),
        ) {
            let (datagram, layout) = frame_all(&messages, done);
            let (result, seen) = payloads_of(&datagram);
            let want: Vec<Vec<u8>> = layout.into_iter().filter_map(|(_, _, p)| p).collect();
            proptest::prop_assert_eq!(seen, want);
            let progress = if done { Progress::Done } else { Progress::More };
            proptest::prop_assert_eq!(result, Ok(progress));
        }

        /// Every truncation that cuts into a message is an error (never a panic, never a
        /// short count); one at a message boundary is a datagram of the whole messages
        /// before it. Either way only whole messages' payloads were handed on.
        #[test]
        fn any_truncation_into_a_message_is_an_error(
            messages in arb_messages(),
            done in proptest::prelude::any::<bool>(),
        ) {
            let (datagram, layout) = frame_all(&messages, done);
            for cut in 0..datagram.len() {
                let (result, seen) = payloads_of(&datagram[..cut]);
                let whole: Vec<Vec<u8>> = layout
                    .iter()
                    .filter(|(at, length, _)| at + length <= cut)
                    .filter_map(|(_, _, p)| p.clone())
                    .collect();
                proptest::prop_assert_eq!(&seen, &whole, "cut at {}", cut);
                let into_a_message = layout
                    .iter()
                    .any(|(at, length, _)| *at < cut && cut < at + length);
                if into_a_message {
                    proptest::prop_assert!(
                        matches!(result, Err(DecodeError::Truncated { .. })),
                        "cut at {}: {:?}", cut, result
                    );
                } else {
                    proptest::prop_assert_eq!(result, Ok(Progress::More), "cut at {}", cut);
                }
            }
        }
    }
}
