#!/usr/bin/env python3
"""svbind.py BIND_IP TOOL [ARGS...]

Runs a SIPVicious 0.3.3 tool (svmap, svwar or svcrack) from the source
address BIND_IP. svwar and svcrack ignore -b and bind their UDP socket to
every address, so on loopback all of them would look like one host; this
wrapper makes a bind to '' or 0.0.0.0 bind to BIND_IP instead. Pass
-x BIND_IP as well so that Via and Contact carry the same address.

If the environment variable SVBIND_TRACE names a file, every datagram the
tool sends or receives is appended to it as one JSON object a line:
{"t": unix time, "dir": "send"|"recv", "local": "ip:port",
 "peer": "ip:port", "data": text}. The tools' own output says little
(and they always exit 0); the trace tells a test what really went over
the wire.

The tools' Python modules are looked for where Debian puts them
(/usr/share/sipvicious), or in SVBIND_PATH if set, then on sys.path.
"""

import importlib
import json
import os
import socket
import sys
import threading
import time

TOOLS = ("svmap", "svwar", "svcrack")


def fail(msg):
    sys.stderr.write("svbind: %s\n" % msg)
    sys.exit(2)


def addr_str(addr):
    if isinstance(addr, tuple) and len(addr) >= 2:
        return "%s:%s" % (addr[0], addr[1])
    return str(addr)


def main():
    if len(sys.argv) < 3:
        fail("usage: svbind.py BIND_IP TOOL [ARGS...] (TOOL: %s)" % ", ".join(TOOLS))
    bind_ip, tool, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if tool not in TOOLS:
        fail("unknown tool %r: want one of %s" % (tool, ", ".join(TOOLS)))
    try:
        socket.inet_pton(socket.AF_INET, bind_ip)
    except OSError:
        fail("BIND_IP %r is not an IPv4 address" % bind_ip)

    trace_path = os.environ.get("SVBIND_TRACE")
    trace = open(trace_path, "a", encoding="utf-8") if trace_path else None
    lock = threading.Lock()

    def record(direction, sock, peer, data):
        if trace is None:
            return
        try:
            local = addr_str(sock.getsockname())
        except OSError:
            local = "?"
        if isinstance(data, (bytes, bytearray, memoryview)):
            text = bytes(data).decode("utf-8", "replace")
        else:
            text = str(data)
        line = json.dumps({"t": time.time(), "dir": direction, "local": local,
                           "peer": addr_str(peer), "data": text})
        with lock:
            trace.write(line + "\n")
            trace.flush()

    orig_bind = socket.socket.bind
    orig_sendto = socket.socket.sendto
    orig_recvfrom = socket.socket.recvfrom

    def bind(self, address):
        if (self.family == socket.AF_INET and isinstance(address, tuple)
                and address and address[0] in ("", "0.0.0.0")):
            address = (bind_ip,) + tuple(address[1:])
        orig_bind(self, address)
        sys.stderr.write("svbind: %s bound to %s\n" % (tool, addr_str(self.getsockname())))
        sys.stderr.flush()

    def sendto(self, data, *rest):
        n = orig_sendto(self, data, *rest)
        record("send", self, rest[-1] if rest else None, data)
        return n

    def recvfrom(self, *rest):
        data, peer = orig_recvfrom(self, *rest)
        record("recv", self, peer, data)
        return data, peer

    socket.socket.bind = bind
    socket.socket.sendto = sendto
    socket.socket.recvfrom = recvfrom

    for d in (os.environ.get("SVBIND_PATH"), "/usr/share/sipvicious"):
        if d and os.path.isdir(d) and d not in sys.path:
            sys.path.insert(0, d)
    try:
        mod = importlib.import_module("sipvicious." + tool)
    except ImportError as err:
        fail("cannot import sipvicious.%s (is SIPVicious 0.3.3 installed?): %s" % (tool, err))

    sys.argv = [tool] + args
    try:
        mod.main()
    finally:
        if trace is not None:
            trace.close()


if __name__ == "__main__":
    main()
