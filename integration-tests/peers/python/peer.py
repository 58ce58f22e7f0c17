"""Python peer for Baton's cross-language propagation tests.

Serves HTTP on 127.0.0.1:<argv[1]> (0 picks a free port). Every request is
answered with JSON describing what the official OpenTelemetry Python SDK
extracted, read inside the handler through the official API, and the headers
the SDK injects for an outbound call made from inside the handler (with the
raw `x-peer-raw-tracestate` request header, if any, written in front of the
injected `tracestate`).

Prints `READY <port>` on stdout once it accepts connections.
"""

import json
import os
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import baggage, propagate, trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.version import __version__ as api_version

# A real SDK provider (no exporter): without one the API hands out
# non-recording spans that reuse the parent's span id.
trace.set_tracer_provider(TracerProvider())


def _hex_or_none(value, width):
    return None if value is None else format(value, f"0{width}x")


def app(environ, start_response):
    span = trace.get_current_span()
    ctx = span.get_span_context()
    # SDK spans keep their parent's SpanContext (the remote one extracted by
    # the middleware); that is where the incoming flags and tracestate live.
    parent = getattr(span, "parent", None)
    outbound = {}
    propagate.inject(outbound)
    # The SDK's TraceState applies the older `tenant@system` key grammar, so
    # members only the current grammar accepts can only be sent by writing
    # them into the header by hand: the test asks for that with
    # `x-peer-raw-tracestate`, whose value goes in front of what the SDK
    # injected, byte for byte.
    raw = environ.get("HTTP_X_PEER_RAW_TRACESTATE")
    if raw:
        sdk_tracestate = outbound.get("tracestate")
        outbound["tracestate"] = f"{raw},{sdk_tracestate}" if sdk_tracestate else raw
    body = {
        "sdk": "python",
        "sdk_version": api_version,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "span_trace_flags": int(ctx.trace_flags),
        "parent_trace_id": _hex_or_none(parent and parent.trace_id, 32),
        "parent_span_id": _hex_or_none(parent and parent.span_id, 16),
        "parent_is_remote": bool(parent and parent.is_remote),
        "trace_flags": None if parent is None else int(parent.trace_flags),
        "tracestate": "" if parent is None else parent.trace_state.to_header(),
        "baggage": {k: str(v) for k, v in baggage.get_all().items()},
        "received": {
            name: environ.get("HTTP_" + name.upper())
            for name in ("traceparent", "tracestate", "baggage")
        },
        "injected": outbound,
    }
    data = json.dumps(body).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


class QuietHandler(WSGIRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY the
    # body would wait for the client's delayed ACK.
    disable_nagle_algorithm = True

    # Access logs would only clutter the Rust test's output.
    def log_message(self, format, *args):  # noqa: A002
        pass


def _exit_when_stdin_closes():
    # The test holds our stdin open; if it dies without killing us (SIGKILL,
    # abort), EOF arrives here and we do not outlive it.
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    server = make_server(
        "127.0.0.1",
        port,
        OpenTelemetryMiddleware(app),
        server_class=WSGIServer,
        handler_class=QuietHandler,
    )
    print(f"READY {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
