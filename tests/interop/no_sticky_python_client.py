"""A python-socketio (Debian's python3-socketio) long-polling client for no_sticky.test.mjs.

Not a test on its own (no_sticky.test.mjs starts the cluster and the proxy, spawns this with
/usr/bin/python3 and publishes). Talks JSON lines: on stdout one {"ready": ...} line once
connected and in ROOM, then one {"result": ...} line; on stdin it waits for "published N"
(the test published N numbered "seq" events to each of ROOM, USER, this socket's id and the
namespace).

    no_sticky_python_client.py URL USER ROOM PINGS

Every step is bounded: a step that times out ends the script with a {"error": ...} line.
"""

import json
import sys
import threading
import time

import engineio
import socketio

WAIT = 10.0


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    url, user, room, want_pings = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lock = threading.Lock()
    seqs = {"room": [], "user": [], "sid": [], "ns": []}
    private = []
    disconnects = []
    pings = [0]

    sio = socketio.Client(reconnection=False)

    # Count the server's heartbeats (engineio answers PING itself and tells nobody).
    receive = sio.eio._receive_packet

    def counting(pkt):
        if pkt.packet_type == engineio.packet.PING:
            with lock:
                pings[0] += 1
        return receive(pkt)

    sio.eio._receive_packet = counting

    @sio.on("seq")
    def on_seq(arg):
        with lock:
            seqs[arg["k"]].append(arg["n"])

    @sio.on("private-message")
    def on_private(arg):
        with lock:
            private.append(arg["message"])

    @sio.event
    def disconnect():
        disconnects.append(time.time())

    sio.connect(url, transports=["polling"], auth={"userId": user}, wait_timeout=WAIT)
    if sio.transport() != "polling":
        say({"error": f"transport {sio.transport()}, want polling"})
        return 1
    joined = sio.call("join-room", room, timeout=WAIT)
    say({"ready": {"sid": sio.get_sid("/"), "engine_sid": sio.eio.sid, "joined": joined}})

    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "published":
        say({"error": f"unexpected command {line!r}"})
        return 1
    n = int(line[1])

    # Every publish, then heartbeats, each bounded.
    deadline = time.time() + WAIT
    while time.time() < deadline:
        with lock:
            if all(len(v) >= n for v in seqs.values()):
                break
        time.sleep(0.02)
    deadline = time.time() + WAIT + want_pings * 3.0
    while time.time() < deadline and pings[0] < want_pings and not disconnects:
        time.sleep(0.05)

    # Emits with an ack, each also relayed back to this socket by id (the private-message rule).
    acks = []
    for i in range(3):
        acks.append(sio.call("private-message", {"to": sio.get_sid("/"), "message": i}, timeout=WAIT))
    deadline = time.time() + WAIT
    while time.time() < deadline and len(private) < 3:
        time.sleep(0.02)
    time.sleep(0.3)  # anything extra would show up now

    with lock:
        result = {
            "seqs": seqs,
            "private": private,
            "acks": acks,
            "pings": pings[0],
            "disconnects": len(disconnects),
            "connected": sio.connected,
            "transport": sio.transport(),
        }
    say({"result": result})
    sio.disconnect()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as err:  # reported to the test, which prints our stderr
        say({"error": f"{type(err).__name__}: {err}"})
        sys.exit(1)
