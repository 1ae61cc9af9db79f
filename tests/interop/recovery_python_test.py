"""python-socketio (Debian's python3-socketio 5.7) on a namespace with connection state recovery.

That client predates Socket.IO's connection state recovery: it sends no pid or offset, so each
reconnection is a new session. What must hold for it anyway: it connects, the events it gets
carry the offset as one more (last) argument, as the reference server sends them, in increasing
order, and a reconnection after a broken transport is an ordinary new session, never an error.
An official client in the same namespace recovers meanwhile (tests/interop/recovery*.test.mjs).

    SB_BIN_DIR=build/bin /usr/bin/python3 tests/interop/recovery_python_test.py
"""

import json
import os
import socket
import tempfile
import threading
import time
import unittest

import socketio

from python_client_test import Inbox, Server, WAIT

CONFIG = {
    "namespaces": {
        "/": {
            "userIdFromAuth": "userId",
            "connectionStateRecovery": {"maxDisconnectionDuration": 60000},
            "rules": [
                {"event": "join-room", "action": "join", "room": "$.room|$", "ack": {"ok": True}},
                {"event": "count", "action": "relay", "target": "namespace",
                 "exceptSender": False, "ack": {"ok": True}},
            ],
        },
    },
}

SERVER = None
CONFIG_FILE = None


def setUpModule():
    global SERVER, CONFIG_FILE
    fd, CONFIG_FILE = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(CONFIG, f)
    SERVER = Server("switchboard", ["standalone", "--config", CONFIG_FILE, "--threads", "2",
                                    "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()
    if CONFIG_FILE:
        os.unlink(CONFIG_FILE)


class RecoveryNamespaceTest(unittest.TestCase):
    def test_offsets_arrive_as_a_last_argument_and_a_reconnection_is_a_new_session(self):
        for transport in ("websocket", "polling"):
            with self.subTest(transport=transport):
                client = socketio.Client(reconnection=True, reconnection_delay=0.1,
                                         reconnection_delay_max=0.2, randomization_factor=0)
                counts = Inbox(client, "count")
                connects = []
                connected = threading.Event()

                def on_connect():
                    connects.append(client.get_sid())
                    connected.set()

                client.on("connect", on_connect)
                client.connect(SERVER.url, auth={"userId": "py"}, transports=[transport],
                               wait_timeout=WAIT)
                try:
                    offsets = []
                    for i in range(5):
                        self.assertEqual(client.call("count", {"n": i}, timeout=WAIT), {"ok": True})
                        args = counts.get()
                        self.assertEqual(len(args), 2, f"the event and its offset: {args}")
                        self.assertEqual(args[0], {"n": i})
                        self.assertRegex(args[1], r"^\d+$", "a decimal offset string")
                        offsets.append(int(args[1]))
                    self.assertEqual(offsets, sorted(set(offsets)), "offsets increase")

                    if transport != "websocket":
                        continue
                    # The connection breaks under the client (its socket shut down, as a
                    # network blip); it reconnects as a new session.
                    first_sid = connects[0]
                    connected.clear()
                    client.eio.ws.sock.shutdown(socket.SHUT_RDWR)
                    self.assertTrue(connected.wait(10), "reconnected")
                    deadline = time.time() + WAIT
                    while client.get_sid() is None and time.time() < deadline:
                        time.sleep(0.05)
                    self.assertNotEqual(client.get_sid(), first_sid, "a new session")
                    self.assertEqual(client.call("count", {"n": 99}, timeout=WAIT), {"ok": True})
                    args = counts.get()
                    self.assertEqual(args[0], {"n": 99})
                    self.assertGreater(int(args[1]), offsets[-1], "the log goes on")
                finally:
                    client.disconnect()


if __name__ == "__main__":
    unittest.main(verbosity=2)
