"""Socket roles for the landing-page check, each a process of its own name (comm).

Run inside the check's private network namespace; every socket is on 127.0.0.1.
  scene.py hold NAME PORT         accept and hold every connection (a CLOSE_WAIT leak
                                  once the clients close); each SIGUSR1 makes 5 clients
                                  connect and close
  scene.py backlog NAME PORT N    listen with backlog N, never accept; N+1 clients give up
  scene.py churn NAME PORT RATE   accept and close at once (the server closes first, its
                                  end stays in TIME_WAIT), with a client looping at RATE/s
  scene.py unix NAME @PATH N      a UNIX stream listener on the abstract name PATH with
                                  backlog N, never accepting; N+1 clients wait in its queue
  scene.py udp NAME PORT RCVBUF N a UDP receiver with SO_RCVBUF RCVBUF that never reads,
                                  sent N datagrams of 64 bytes (those past its buffer are
                                  dropped); each SIGUSR1 sends 100 more
Prints "ready" once set up, then runs until killed.
"""
import signal
import socket
import sys
import threading
import time


def name(comm):
    with open("/proc/self/comm", "w") as f:
        f.write(comm)


def listener(port, backlog=128):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    return s


def connect_and_close(port):
    socket.create_connection(("127.0.0.1", port)).close()


def send_datagrams(port, n):
    # A sender of its own, closed after: no socket but the receiver stays.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(n):
            sender.sendto(b"m" * 64, ("127.0.0.1", port))


def ready():
    print("ready", flush=True)


def main():
    role, comm = sys.argv[1], sys.argv[2]
    name(comm)
    held = []
    if role == "unix":
        # Abstract, so private to the check's namespace; the kernel admits backlog + 1.
        address, n = "\0" + sys.argv[3].removeprefix("@"), int(sys.argv[4])
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen(n)
        for _ in range(n + 1):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(address)
            held.append(client)
        ready()
        while True:
            time.sleep(60)
    port = int(sys.argv[3])
    if role == "udp":
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(sys.argv[4]))
        receiver.bind(("127.0.0.1", port))
        more = threading.Event()
        signal.signal(signal.SIGUSR1, lambda *_: more.set())
        send_datagrams(port, int(sys.argv[5]))
        ready()
        while True:
            if more.wait(1):
                more.clear()
                send_datagrams(port, 100)
    elif role == "hold":
        server = listener(port)

        def accept():
            while True:
                held.append(server.accept()[0])

        threading.Thread(target=accept, daemon=True).start()
        grow = threading.Event()
        signal.signal(signal.SIGUSR1, lambda *_: grow.set())
        for _ in range(3):
            connect_and_close(port)
        ready()
        while True:
            if grow.wait(1):
                grow.clear()
                for _ in range(5):
                    connect_and_close(port)
    elif role == "backlog":
        n = int(sys.argv[4])
        server = listener(port, n)
        for _ in range(n + 1):
            connect_and_close(port)
        ready()
        while True:
            time.sleep(60)
        server.close()
    elif role == "churn":
        rate = float(sys.argv[4])
        server = listener(port)

        def serve():
            while True:
                server.accept()[0].close()

        threading.Thread(target=serve, daemon=True).start()
        ready()
        while True:
            c = socket.create_connection(("127.0.0.1", port))
            c.recv(1)
            c.close()
            time.sleep(1 / rate)
    else:
        sys.exit(f"unknown role {role}")


main()
