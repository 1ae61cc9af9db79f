"""A WebSocket client that stops reading is released (issue 14, item 2).

The client sets a tiny receive buffer (SO_RCVBUF before connect), asks the edge
for far more than the socket buffers hold (acks of an echo rule), then never
reads again: the edge's send buffer stays full, its pings go unanswered, and
the session's close frame cannot leave. After pingInterval + pingTimeout +
limits.http.writeTimeout the edge holds no descriptor for the client any more
(/proc/<pid>/fd back to what it was before), and counts it
(switchboard_limit_hits_total{limit="http_write_timeout"}). Over plain TCP and
over TLS (--tls-cert: the TCP socket and the relay's socketpair).

    SB_BIN_DIR=build/bin /usr/bin/python3 tests/interop/write_timeout_test.py
"""

import base64
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SB_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN_DIR = os.environ.get("SB_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin"))
LISTENING_RE = re.compile(r"listening on https?://127\.0\.0\.1:(\d+)")
ADMIN_RE = re.compile(r"^admin on 127\.0\.0\.1:(\d+)")

PING_INTERVAL_MS = 300
PING_TIMEOUT_MS = 300
WRITE_TIMEOUT_MS = 1000
CONFIG = {
    "engine": {"pingInterval": PING_INTERVAL_MS, "pingTimeout": PING_TIMEOUT_MS},
    "limits": {"http": {"writeTimeout": WRITE_TIMEOUT_MS}},
    "namespaces": {
        "/": {
            "eventRate": {"perSecond": 1000, "burst": 1000},
            "rules": [{"event": "echo", "action": "relay", "target": {"socket": "$socket.id"},
                       "exceptSender": True, "ack": "$"}],
        }
    },
}
PAYLOAD_BYTES = 50_000
EVENTS = 120  # 6 MB of acks: more than any socket buffer, less than the send queue's 8 MB
# Generous: the release is due PING_INTERVAL + PING_TIMEOUT + WRITE_TIMEOUT after the stall.
RELEASE_WAIT_S = 15.0


class Edge:
    """`switchboard standalone` on free ports; `tls`: (cert, key)."""

    def __init__(self, config_file, tls=None):
        binary = os.path.join(BIN_DIR, "switchboard")
        if not os.path.exists(binary):
            raise RuntimeError(f"{binary} does not exist (build first; SB_BIN_DIR={BIN_DIR})")
        args = [binary, "standalone", "--config", config_file, "--threads", "1",
                "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
                "--admin-listen", "127.0.0.1:0", "--drain-window-ms", "200"]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1)
        found = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                sys.stderr.write(f"[switchboard:{self.proc.pid}] {line}")
                for name, regex in (("port", LISTENING_RE), ("admin", ADMIN_RE)):
                    m = regex.search(line)
                    if m:
                        found.put((name, int(m.group(1))))
            found.put(None)

        threading.Thread(target=pump, daemon=True).start()
        ports = {}
        deadline = time.monotonic() + 10
        while len(ports) < 2 and time.monotonic() < deadline:
            try:
                item = found.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                break
            ports[item[0]] = item[1]
        if len(ports) < 2:
            self.stop()
            raise RuntimeError("switchboard did not print its listening and admin lines")
        self.port = ports["port"]
        self.admin_port = ports["admin"]

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def limit_hits(self, limit):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=2) as r:
            body = r.read().decode()
        m = re.search(r'^switchboard_limit_hits_total\{limit="%s"\} (\S+)$' % limit, body, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode


def client_frame(text):
    """A masked text frame (the all-zero mask: the payload goes as it is)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        header = bytes([0x81, 0x80 | n])
    elif n < 65536:
        header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + data


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock):
    b0, b1 = read_exactly(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exactly(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(read_exactly(sock, 8), "big")
    return b0 & 0x0F, read_exactly(sock, n)


def stalled_client(port, tls_context=None):
    """Connects, joins "/", asks for EVENTS acks of PAYLOAD_BYTES, and never reads them."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
    raw.settimeout(5)
    raw.connect(("127.0.0.1", port))
    sock = tls_context.wrap_socket(raw, server_hostname="localhost") if tls_context else raw
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exactly(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    opcode, payload = read_frame(sock)
    assert payload.startswith(b"0{"), payload  # Engine.IO open
    sock.sendall(client_frame("40"))
    while True:
        opcode, payload = read_frame(sock)
        if payload.startswith(b"40"):
            break
    arg = "x" * PAYLOAD_BYTES
    burst = b"".join(client_frame(f'42{i}["echo","{arg}"]') for i in range(EVENTS))
    sock.sendall(burst)
    return sock  # held, never read again


def wait_until(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class WriteTimeoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sb-write-timeout-")
        cls.config = os.path.join(cls.dir, "config.json")
        with open(cls.config, "w") as f:
            json.dump(CONFIG, f)
        cls.cert = os.path.join(cls.dir, "cert.pem")
        cls.key = os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", cls.key, "-out",
                        cls.cert, "-days", "1", "-subj", "/CN=localhost"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def released(self, tls):
        edge = Edge(self.config, (self.cert, self.key) if tls else None)
        self.addCleanup(edge.stop)
        context = None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        baseline = edge.open_fds()
        client = stalled_client(edge.port, context)
        self.addCleanup(client.close)
        held = 3 if tls else 1  # the socket; with TLS also the relay's socketpair
        self.assertTrue(wait_until(lambda: edge.open_fds() >= baseline + held, 5),
                        f"the edge holds the client's {held} descriptor(s)")
        self.assertTrue(
            wait_until(lambda: edge.open_fds() <= baseline, RELEASE_WAIT_S),
            f"after ping timeout + writeTimeout the edge still holds {edge.open_fds() - baseline} "
            f"descriptor(s) for a client that stopped reading")
        self.assertGreaterEqual(edge.limit_hits("http_write_timeout") or 0, 1,
                                "the write timeout is counted")
        self.assertIsNone(edge.proc.poll(), "the edge is still up")
        self.assertEqual(edge.stop(), 0)

    def test_plain(self):
        self.released(tls=False)

    def test_tls(self):
        self.released(tls=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
