#!/usr/bin/python3
"""The chat backend's core in Python, on the Switchboard gRPC API only.

    /usr/bin/python3 chat_backend.py --server 127.0.0.1:50051 [--namespace /] [--token T]

user-join (ack with the list, notification "X joined the chat" to the others), chat-message
(to everyone, with username and timestamp), the user list to everyone on every change, and
cleanup on disconnect ("X left the chat"); the contract of ../chat.h. Needs Debian's python3-grpcio and python3-grpc-tools:
the stubs are generated from proto/ at start (python3 -m grpc_tools.protoc).
"""

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "..", "proto")


def load_stubs():
    out = tempfile.mkdtemp(prefix="sb-chat-py-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR, "-I", "/usr/include",
         f"--python_out={out}", f"--grpc_python_out={out}", "switchboard/v1/switchboard.proto"],
        check=True)
    sys.path.insert(0, out)
    from switchboard.v1 import switchboard_pb2, switchboard_pb2_grpc  # noqa: E402
    return switchboard_pb2, switchboard_pb2_grpc


pb, pb_grpc = load_stubs()


class ChatBackend:
    def __init__(self, stub, nsp, metadata):
        self.stub, self.nsp, self.metadata = stub, nsp, metadata
        self.users = {}  # socket id -> username, in join order

    def publish(self, event, value, except_socket=None):
        target = pb.Target(namespace=self.nsp,
                           except_socket_ids=[except_socket] if except_socket else [])
        self.stub.Publish(pb.PublishRequest(target=target, event=event,
                                            args=[pb.Argument(json=json.dumps(value))]),
                          metadata=self.metadata, timeout=5)

    def ack(self, event, value):
        if event.wants_ack and event.ack_ref:
            try:
                self.stub.Ack(pb.AckRequest(ack_ref=event.ack_ref,
                                            args=[pb.Argument(json=json.dumps(value))]),
                              metadata=self.metadata, timeout=5)
            except grpc.RpcError as err:  # the client's ack timed out, or it left
                print(f"chat backend: Ack: {err.details()}", file=sys.stderr)

    def on_client_event(self, event):
        arg = json.loads(event.args[0].json) if event.args and event.args[0].json else None
        if event.event == "user-join":
            name = arg.get("username") if isinstance(arg, dict) else arg
            name = name.strip() if isinstance(name, str) else ""
            if event.socket_id in self.users:
                return self.ack(event, {"ok": False, "error": "already joined"})
            if not name or len(name.encode()) > 32:
                return self.ack(event, {"ok": False, "error": "invalid username"})
            self.users[event.socket_id] = name
            self.publish("notification", f"{name} joined the chat", event.socket_id)
            self.publish("user-list", list(self.users.values()))
            self.ack(event, {"ok": True, "username": name, "users": list(self.users.values())})
        elif event.event == "chat-message":
            name = self.users.get(event.socket_id)
            text = arg.get("message") if isinstance(arg, dict) else arg
            if name is None:
                return self.ack(event, {"ok": False, "error": "join first"})
            if not isinstance(text, str) or not text.strip():
                return self.ack(event, {"ok": False, "error": "invalid message"})
            self.publish("chat-message", {"username": name, "message": text,
                                          "timestamp": int(time.time() * 1000)})
            self.ack(event, {"ok": True})
        else:
            self.ack(event, {"ok": False, "error": "unknown event"})

    def on_disconnect(self, socket_id):
        name = self.users.pop(socket_id, None)
        if name is not None:
            self.publish("notification", f"{name} left the chat", socket_id)
            self.publish("user-list", list(self.users.values()))

    def watch(self, stop):
        """One WatchEvents stream, until it ends or `stop` is set."""
        request = pb.WatchEventsRequest(
            namespace=self.nsp, events=["user-join", "chat-message"],
            kinds=[pb.EVENT_KIND_CLIENT_EVENT, pb.EVENT_KIND_DISCONNECTED])
        stream = self.stub.WatchEvents(request, metadata=self.metadata)
        stop.stream = stream
        stream.initial_metadata()  # sent by the broker once the watch is registered
        # Users whose sockets left while nobody watched.
        live = {s.id for s in self.stub.ListSockets(
            pb.ListSocketsRequest(namespace=self.nsp, page_size=1000),
            metadata=self.metadata, timeout=5).sockets}
        for socket_id in [s for s in self.users if s not in live]:
            self.on_disconnect(socket_id)
        print(f"chat backend watching {self.server}", flush=True)
        for response in stream:
            kind = response.WhichOneof("event")
            if kind == "client_event" and response.client_event.namespace == self.nsp:
                self.on_client_event(response.client_event)
            elif kind == "disconnected" and response.disconnected.namespace == self.nsp:
                self.on_disconnect(response.disconnected.socket_id)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", action="append", required=True, help="broker HOST:PORT")
    parser.add_argument("--namespace", default="/")
    parser.add_argument("--token", default=os.environ.get("SWITCHBOARD_TOKEN", ""))
    args = parser.parse_args()
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []

    stop = threading.Event()
    stop.stream = None

    def on_signal(*_):
        stop.set()
        if stop.stream is not None:
            stop.stream.cancel()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    users = {}
    attempt = 0
    while not stop.is_set():
        server = args.server[attempt % len(args.server)]
        attempt += 1
        with grpc.insecure_channel(server) as channel:
            backend = ChatBackend(pb_grpc.SwitchboardStub(channel), args.namespace, metadata)
            backend.server, backend.users = server, users
            try:
                backend.watch(stop)
            except grpc.RpcError as err:
                if not stop.is_set():
                    print(f"chat backend: {server}: {err.code()} {err.details()}; reconnecting",
                          file=sys.stderr, flush=True)
        stop.wait(0.5)


if __name__ == "__main__":
    main()
