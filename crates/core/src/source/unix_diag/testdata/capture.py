#!/usr/bin/env python3
"""Captures real unix_diag dump replies for the decoder's tests and the fuzz corpus.

Run as root: `python3 capture.py OUT.bin`. It re-runs itself under `unshare --net`, so
every socket lives in a private network namespace (unix_diag answers for the caller's
namespace only) and every name is abstract: nothing touches the filesystem. It makes a
stream listener with two accepted connections (one with unread bytes) and one left in its
accept queue, a seqpacket listener, a connected datagram pair and an unnamed stream pair,
then dumps every state twice: with UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN (what the exporter
asks for), then with every show flag (attributes the decoder must skip). Each received
datagram is written as a native-endian u32 length and the bytes (host-endian fields: the
file is for this byte order).
"""
import os
import socket
import struct
import sys
import time

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
UDIAG_SHOW_NAME, UDIAG_SHOW_RQLEN = 0x01, 0x10
UDIAG_SHOW_ALL = 0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x20 | 0x40


def dump(out, show, seq):
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    nl.bind((0, 0))
    # unix_diag_req: family, protocol, pad, states, ino, show, cookie[2] (all ones: any).
    req = struct.pack("=BBHIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, show) + b"\xff" * 8
    hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    nl.send(hdr + req)
    while True:
        data = nl.recv(65536)
        out.write(struct.pack("=I", len(data)) + data)
        if struct.unpack_from("=H", data, 4)[0] == 3:  # NLMSG_DONE
            break
    nl.close()


def main(path):
    held = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("\0sockdiag-capture/php-fpm")
    listener.listen(8)
    held.append(listener)
    for unread in (b"", b"y" * 100):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect("\0sockdiag-capture/php-fpm")
        server, _ = listener.accept()
        client.send(unread) if unread else None
        held += [client, server]
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting.connect("\0sockdiag-capture/php-fpm")  # left in the accept queue
    held.append(waiting)
    seqpacket = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    seqpacket.bind("\0sockdiag-capture\0gunicorn")  # a NUL inside an abstract name
    seqpacket.listen(4)
    held.append(seqpacket)
    held += socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    held += socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    time.sleep(0.1)
    with open(path, "wb") as out:
        dump(out, UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN, 5)
        dump(out, UDIAG_SHOW_ALL, 6)


if __name__ == "__main__":
    if os.environ.get("CAPTURE_IN_NETNS") != "1":
        os.environ["CAPTURE_IN_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", sys.executable] + sys.argv)
    main(sys.argv[1])
