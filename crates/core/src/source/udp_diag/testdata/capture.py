#!/usr/bin/env python3
"""Captures real udp_diag dump replies, with INET_DIAG_SKMEMINFO, for the decoder's tests.

Run as root: `python3 capture.py OUT.bin`. It re-runs itself under `unshare --net`, so
every socket lives in a private network namespace on loopback. It makes, for IPv4 and
IPv6: a receiver on port 8125 with SO_RCVBUF 4096 that never reads, flooded with 1000
datagrams (most are dropped: its sk_drops); a receiver on 8126 that holds 3 unread
datagrams; a client connect()ed to the 8126 receiver (sk_state TCP_ESTABLISHED). Then it
dumps both families with every state and writes each received datagram as a native-endian
u32 length and the bytes (the decoder reads host-endian fields, so the file is for this
byte order). `ss -uamnOH` of the namespace goes to stderr (kept beside the capture as
loopback-udp.ss.txt: the expected values of the tests).
"""
import os
import socket
import struct
import subprocess
import sys
import time

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
INET_DIAG_SKMEMINFO = 7


def dump(out, family, seq):
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    nl.bind((0, 0))
    ext = 1 << (INET_DIAG_SKMEMINFO - 1)
    # inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid.
    req = struct.pack("=BBBBI", family, socket.IPPROTO_UDP, ext, 0, 0xFFF) + bytes(48)
    hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    nl.send(hdr + req)
    while True:
        data = nl.recv(65536)
        out.write(struct.pack("=I", len(data)) + data)
        if struct.unpack_from("=H", data, 4)[0] == 3:  # NLMSG_DONE
            break
    nl.close()


def main(path):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    held = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sink = socket.socket(family, socket.SOCK_DGRAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sink.bind((host, 8125))
        held.append(sink)
        sender = socket.socket(family, socket.SOCK_DGRAM)
        for _ in range(1000):
            sender.sendto(b"m" * 64, (host, 8125))
        sender.close()
        slow = socket.socket(family, socket.SOCK_DGRAM)
        slow.bind((host, 8126))
        held.append(slow)
        client = socket.socket(family, socket.SOCK_DGRAM)
        client.connect((host, 8126))
        for _ in range(3):
            client.send(b"q" * 100)
        held.append(client)
    time.sleep(0.2)
    with open(path, "wb") as out:
        dump(out, socket.AF_INET, 7)
        dump(out, socket.AF_INET6, 8)
    subprocess.run(["ss", "-uamnOH"], stdout=sys.stderr, check=True)


if __name__ == "__main__":
    if os.environ.get("CAPTURE_IN_NETNS") != "1":
        os.environ["CAPTURE_IN_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", sys.executable] + sys.argv)
    main(sys.argv[1])
