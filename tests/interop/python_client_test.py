"""python-socketio (Debian's python3-socketio 5.7) against sb-interop-server.

Run with the system interpreter, which has the Debian packages:
    SB_BIN_DIR=build/bin /usr/bin/python3 tests/interop/python_client_test.py

See interop_server.cc for what each event does. Every case runs over
WebSocket and over HTTP long-polling.
"""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

import socketio

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SB_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN_DIR = os.environ.get("SB_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin"))
WAIT = 5.0
LISTENING_RE = re.compile(r"listening on (https?://(\[[^\]]+\]|[^\s:/]+):(\d+))")


class Server:
    """One of our binaries on a free port (same contract as lib/server.mjs)."""

    def __init__(self, binary, args=()):
        path = os.path.join(BIN_DIR, binary)
        if not os.path.exists(path):
            raise RuntimeError(f"{path} does not exist (build first; SB_BIN_DIR={BIN_DIR})")
        args = list(args)
        if not any(a == "--listen" or a.startswith("--listen=") for a in args):
            args += ["--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen([path] + args, stdout=subprocess.PIPE, stderr=None,
                                     text=True, bufsize=1)
        found = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                sys.stderr.write(f"[{binary}:{self.proc.pid}] {line}")
                m = LISTENING_RE.search(line)
                if m:
                    found.put(m)
            found.put(None)

        threading.Thread(target=pump, daemon=True).start()
        try:
            m = found.get(timeout=10)
        except queue.Empty:
            m = None
        if m is None:
            self.stop()
            raise RuntimeError(f"{binary} did not print its listening line")
        self.url = m.group(1)
        self.port = int(m.group(3))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


SERVER = None


def setUpModule():
    global SERVER
    SERVER = Server("sb-interop-server", ["--threads", "2"])


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


class Inbox:
    """Events of one name, received on the client's background thread."""

    def __init__(self, client, event, namespace="/"):
        self.q = queue.Queue()
        client.on(event, self._on, namespace=namespace)

    def _on(self, *args):
        self.q.put(list(args))

    def get(self, timeout=WAIT):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("event not received") from None

    def empty_after(self, delay=0.2):
        time.sleep(delay)
        return self.q.empty()


class ClientCases:
    TRANSPORT = None  # set by the subclasses

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            try:
                c.disconnect()
            except Exception:  # pylint: disable=broad-except
                pass

    def client(self):
        c = socketio.Client(reconnection=False)
        self.clients.append(c)
        return c

    def connect(self, auth=None, namespaces=("/",)):
        """A connected client and the "hello" of each namespace."""
        c = self.client()
        hellos = {ns: Inbox(c, "hello", ns) for ns in namespaces}
        c.connect(SERVER.url, auth=auth, transports=[self.TRANSPORT],
                  namespaces=list(namespaces), wait_timeout=WAIT)
        self.assertEqual(c.transport(), self.TRANSPORT)
        return c, {ns: inbox.get()[0] for ns, inbox in hellos.items()}

    def fence(self, *clients):
        for c in clients:
            self.assertEqual(c.call("echo", "fence", timeout=WAIT), "fence")
        time.sleep(0.1)

    def test_connect_with_auth(self):
        auth = {"token": "good", "user": "py", "n": [1, 2]}
        c, hellos = self.connect(auth=auth)
        sid = c.get_sid("/")
        self.assertTrue(sid)
        self.assertEqual(hellos["/"], {"id": sid, "nsp": "/", "auth": auth})
        self.assertEqual(c.call("whoami", timeout=WAIT),
                         {"id": sid, "nsp": "/", "transport": self.TRANSPORT, "auth": auth})

    def test_rejected_connect(self):
        c = self.client()
        errors = Inbox(c, "connect_error")
        with self.assertRaises(socketio.exceptions.ConnectionError):
            c.connect(SERVER.url, auth={"token": "bad"}, transports=[self.TRANSPORT],
                      wait_timeout=WAIT)
        self.assertEqual(errors.get(), [{"message": "not authorized", "data": {"code": "E_AUTH"}}])
        self.assertFalse(c.connected)

    def test_emit_and_ack(self):
        c, _ = self.connect()
        # Several arguments come back as a tuple; one as itself.
        self.assertEqual(c.call("echo", ("a", 1, {"b": [True, None]}), timeout=WAIT),
                         ("a", 1, {"b": [True, None]}))
        self.assertEqual(c.call("echo", "ünï©ødé", timeout=WAIT), "ünï©ødé")
        # Without ack: the server emits "echo" back.
        echoed = Inbox(c, "echo")
        c.emit("echo", {"x": 1})
        self.assertEqual(echoed.get(), [{"x": 1}])
        # Server -> client ack: the handler's return value is the answer.
        c.on("ask", lambda *args: ("answer", list(args)))
        result = Inbox(c, "server-ack-result")
        c.emit("server-ack", {"args": ["q", 2]})
        self.assertEqual(result.get(), [{"ok": True, "args": ["answer", ["q", 2]]}])

    def test_binary(self):
        c, _ = self.connect()
        blob = bytes(range(256)) * 40
        back = c.call("echo", (b"\x00\x01\xff", {"nested": [b"x", {"deep": blob}]}, "t"),
                      timeout=WAIT)
        self.assertEqual(back, (b"\x00\x01\xff", {"nested": [b"x", {"deep": blob}]}, "t"))
        self.assertIsInstance(back[0], bytes)

        def ask(data):
            self.assertEqual(data, b"from-server")
            return b"from-client"

        c.on("ask", ask)
        result = Inbox(c, "server-ack-result")
        c.emit("server-ack", {"args": [b"from-server"]})
        self.assertEqual(result.get(), [{"ok": True, "args": [b"from-client"]}])

    def test_namespaces(self):
        c, hellos = self.connect(auth={"role": "admin"}, namespaces=("/", "/admin"))
        root_sid, admin_sid = c.get_sid("/"), c.get_sid("/admin")
        self.assertNotEqual(root_sid, admin_sid)
        self.assertEqual(hellos["/"], {"id": root_sid, "nsp": "/", "auth": {"role": "admin"}})
        self.assertEqual(hellos["/admin"],
                         {"id": admin_sid, "nsp": "/admin", "auth": {"role": "admin"}})
        self.assertEqual(c.call("echo", "r", namespace="/", timeout=WAIT), "r")
        self.assertEqual(c.call("echo", "a", namespace="/admin", timeout=WAIT), "a")
        self.assertEqual(c.call("whoami", namespace="/admin", timeout=WAIT)["nsp"], "/admin")

        root_all = Inbox(c, "all", "/")
        admin_all = Inbox(c, "all", "/admin")
        c.call("to-all", {"msg": "admin only"}, namespace="/admin", timeout=WAIT)
        self.assertEqual(admin_all.get(), [{"msg": "admin only", "from": admin_sid}])
        self.fence(c)
        self.assertTrue(root_all.empty_after())

        # "/admin" refuses without the role.
        other = self.client()
        with self.assertRaises(socketio.exceptions.ConnectionError):
            other.connect(SERVER.url, transports=[self.TRANSPORT], namespaces=["/admin"],
                          wait_timeout=WAIT)

    def test_rooms_broadcast(self):
        a, _ = self.connect()
        b, _ = self.connect()
        c, _ = self.connect()
        self.assertEqual(a.call("join", "py-room", timeout=WAIT), ["py-room"])
        self.assertEqual(b.call("join", "py-room", timeout=WAIT), ["py-room"])
        inbox = {name: Inbox(cl, "room-msg") for name, cl in (("a", a), ("b", b), ("c", c))}
        self.assertEqual(a.call("to-room", {"room": "py-room", "msg": "hi"}, timeout=WAIT), True)
        expected = [{"room": "py-room", "msg": "hi", "from": a.get_sid("/")}]
        self.assertEqual(inbox["a"].get(), expected)
        self.assertEqual(inbox["b"].get(), expected)
        self.fence(c)
        self.assertTrue(inbox["c"].empty_after())

        bc = {name: Inbox(cl, "broadcast") for name, cl in (("a", a), ("b", b), ("c", c))}
        b.call("broadcast-except-sender", {"msg": "not to b"}, timeout=WAIT)
        expected = [{"msg": "not to b", "from": b.get_sid("/")}]
        self.assertEqual(bc["a"].get(), expected)
        self.assertEqual(bc["c"].get(), expected)
        self.fence(b)
        self.assertTrue(bc["b"].empty_after())

    def test_server_disconnect(self):
        c, _ = self.connect()
        gone = threading.Event()
        c.on("disconnect", gone.set)
        c.emit("kick")
        self.assertTrue(gone.wait(WAIT), "no disconnect after kick")
        deadline = time.time() + WAIT
        while c.connected and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(c.connected)


class WebSocketTest(ClientCases, unittest.TestCase):
    TRANSPORT = "websocket"


class PollingTest(ClientCases, unittest.TestCase):
    TRANSPORT = "polling"


class ShutdownTest(unittest.TestCase):
    def test_zz_sigterm_exits_cleanly(self):
        server = Server("sb-interop-server", ["--threads", "2"])
        self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    # The clients leave sockets to the garbage collector; not our concern here.
    unittest.main(verbosity=2, warnings="ignore")
