#!/usr/bin/env python3
"""Captures real inet_diag dump replies for the decoder's unit tests.

Run as root: `python3 capture.py OUT.bin`. It re-runs itself under `unshare --net`, so
every socket lives in a private network namespace on loopback. It makes LISTEN (one with
a connection left in its accept queue), ESTABLISHED with unread and unsent bytes,
CLOSE_WAIT / FIN_WAIT2 and TIME_WAIT sockets over IPv4 and IPv6, then dumps both families
with every state and writes each received datagram as a native-endian u32 length and
the bytes (the decoder reads host-endian fields, so the file is for this byte order).
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


def dump(out, family, seq):
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    nl.bind((0, 0))
    # inet_diag_req_v2: family, protocol, ext, pad, states, then a zero inet_diag_sockid.
    req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFF) + bytes(48)
    hdr = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    nl.send(hdr + req)
    while True:
        data = nl.recv(65536)
        out.write(struct.pack("=I", len(data)) + data)
        if struct.unpack_from("=H", data, 4)[0] == 3:  # NLMSG_DONE
            break
    nl.close()


def pair(family, host, port, listener):
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect((host, port))
    server, _ = listener.accept()
    return client, server


def main(path):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    held = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((host, 8080))
        listener.listen(16)
        held.append(listener)
        client, server = pair(family, host, 8080, listener)
        client.send(b"x" * 1000)  # unread at the server: its recv queue
        held += [client, server]
        client, server = pair(family, host, 8080, listener)
        client.shutdown(socket.SHUT_WR)  # FIN_WAIT2 here, CLOSE_WAIT at the server
        held += [client, server]
        for _ in range(3):
            client, server = pair(family, host, 8080, listener)
            client.close()  # the active closer is left in TIME_WAIT
            server.close()
        waiting = socket.socket(family, socket.SOCK_STREAM)
        waiting.connect((host, 8080))  # left in the accept queue: no inode yet
        held.append(waiting)
    time.sleep(0.2)
    with open(path, "wb") as out:
        dump(out, socket.AF_INET, 7)
        dump(out, socket.AF_INET6, 8)


if __name__ == "__main__":
    if os.environ.get("CAPTURE_IN_NETNS") != "1":
        os.environ["CAPTURE_IN_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", sys.executable] + sys.argv)
    main(sys.argv[1])
