"""A stand-in for the Lambda Runtime API (and the Extensions API calls of lambda_runtime's graceful-shutdown
handler), served on an ephemeral port of 127.0.0.1 from an event loop on a thread of its own. Shared by
`scripts/bench-invoke` (which hands out invocations and times their answers) and `scripts/cold-start` (which times
a process's first poll), so that both measure the functions against the same server.

Each answer is one write (head and body in one segment), and requests are parsed by an asyncio protocol rather
than a thread per connection, so that what is timed is the function, not the stand-in (http.server took about
half a millisecond per request here).

A user subclasses `RuntimeApi` and overrides the hooks, which run on the stand-in's thread:
- `on_next(connection)`: a `GET .../invocation/next`; answer it with `hand_out`, or `park` it (never answered);
- `on_response(request_id, body, arrived)` and `on_error(request_id, body)`: a function's answer to an
  invocation (already acknowledged with 202);
- `on_init_error(body)`: `POST .../init/error` (acknowledged);
- `on_unknown(connection, method, target, body)`: anything else (answered 404 by default).
The extension registration is answered and `extension/event/next` parked, with no hook.
"""

import asyncio
import json
import socket
import threading
import time
import uuid

INVOCATION_NEXT = "/2018-06-01/runtime/invocation/next"
INVOCATION_PREFIX = "/2018-06-01/runtime/invocation/"
INIT_ERROR = "/2018-06-01/runtime/init/error"
EXTENSION_REGISTER = "/2020-01-01/extension/register"
EXTENSION_NEXT = "/2020-01-01/extension/event/next"

REASONS = {200: b"OK", 202: b"Accepted", 404: b"Not Found"}


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection from a function's runtime client (keep-alive, one request at a time)."""

    def __init__(self, api):
        self.api = api
        self.buf = b""
        self.first_byte_at = 0.0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.api.connections.add(self)

    def connection_lost(self, exc):
        self.api.connections.discard(self)

    def data_received(self, data):
        if not self.buf:
            self.first_byte_at = time.perf_counter()
        self.buf += data
        while self.buf:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buf[:head_end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self.api.on_malformed(lines[0])
                self.transport.close()
                return
            method, target = parts[0], parts[1]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            start = head_end + 4
            if "chunked" in headers.get("transfer-encoding", "").lower():
                body, end = dechunk(self.buf, start)
                if body is None:
                    return
            else:
                end = start + int(headers.get("content-length") or 0)
                if len(self.buf) < end:
                    return
                body = self.buf[start:end]
            self.buf = self.buf[end:]
            arrived = self.first_byte_at
            self.first_byte_at = time.perf_counter()
            self.api.request(self, method, target, body, arrived)

    def answer(self, status, body, extra=b""):
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
            % (status, REASONS[status], extra, len(body), body)
        )


def dechunk(buf, start):
    """The body of a chunked message starting at `start` and where it ends, or (None, None) if incomplete."""
    body, pos = b"", start
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None, None
        size = int(buf[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)
            return (None, None) if trailer_end < 0 else (body, trailer_end + 2)
        if len(buf) < pos + size + 2:
            return None, None
        body += buf[pos:pos + size]
        pos += size + 2


class RuntimeApi:
    """The server; see the module's description for the hooks a subclass overrides."""

    def __init__(self, function="x", arn=b"arn:aws:lambda:eu-west-1:123456789012:function:x"):
        self.function = function
        self.arn = arn
        self.connections = set()
        self.parked = []  # held polls: never answered
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                self.loop.create_server(lambda: Connection(self), "127.0.0.1", 0, backlog=256)
            )
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            self.server.close()
            for connection in list(self.connections):
                connection.transport.abort()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

        self.thread = threading.Thread(target=serve, name="runtime-api", daemon=True)
        self.thread.start()
        ready.wait()

    def close(self):
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # Everything below runs on the stand-in's thread.

    def request(self, connection, method, target, body, arrived):
        if method == "GET" and target == INVOCATION_NEXT:
            self.on_next(connection)
        elif method == "POST" and target.startswith(INVOCATION_PREFIX):
            request_id, _, kind = target[len(INVOCATION_PREFIX):].rpartition("/")
            connection.answer(202, b'{"status":"OK"}')
            if kind == "response":
                self.on_response(request_id, body, arrived)
            elif kind == "error":
                self.on_error(request_id, body)
            else:
                self.on_unknown(connection, method, target, body, answered=True)
        elif method == "POST" and target == INIT_ERROR:
            connection.answer(202, b'{"status":"OK"}')
            self.on_init_error(body)
        elif method == "POST" and target == EXTENSION_REGISTER:
            registration = json.dumps(
                {"functionName": self.function, "functionVersion": "$LATEST", "handler": "bootstrap"}
            ).encode()
            connection.answer(200, registration, b"Lambda-Extension-Identifier: %s\r\n" % uuid.uuid4().hex.encode())
        elif method == "GET" and target == EXTENSION_NEXT:
            self.park(connection)  # no event ever comes (SHUTDOWN would be SIGTERM's job)
        else:
            self.on_unknown(connection, method, target, body, answered=False)

    def park(self, connection):
        """Holds a poll: it is never answered, and closes with the process or the stand-in."""
        self.parked.append(connection)

    def hand_out(self, connection, event, deadline_ms=10_000):
        """Answers a `next` poll with `event` (bytes) as a new invocation; answers its request id and the
        perf_counter() of the write."""
        request = uuid.uuid4()
        request_id, hex_id = str(request), request.hex
        now = time.time()
        trace = f"Root=1-{int(now):08x}-{hex_id[:24]};Parent={hex_id[16:]};Sampled=0"
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Aws-Request-Id: %s\r\nLambda-Runtime-Deadline-Ms: %d\r\n"
            b"Lambda-Runtime-Invoked-Function-Arn: %s\r\nLambda-Runtime-Trace-Id: %s\r\n"
            b"Content-Length: %d\r\n\r\n"
            % (request_id.encode(), int(now * 1000) + deadline_ms, self.arn, trace.encode(), len(event))
        )
        at = time.perf_counter()
        connection.transport.write(head + event)
        return request_id, at

    # The hooks.

    def on_next(self, connection):
        self.park(connection)

    def on_response(self, request_id, body, arrived):
        pass

    def on_error(self, request_id, body):
        pass

    def on_init_error(self, body):
        pass

    def on_unknown(self, connection, method, target, body, answered):
        if not answered:
            connection.answer(404, b'{"errorMessage":"not found","errorType":"NotFound"}')

    def on_malformed(self, request_line):
        pass
