'use strict';
// Node peer for Baton's cross-language propagation tests.
//
// Serves HTTP on 127.0.0.1:<argv[2]> (0 picks a free port). Every request is
// answered with JSON describing what the official OpenTelemetry JS SDK
// extracted, read inside the handler through the official API, and the
// headers the SDK injects for an outbound call made from inside the handler.
//
// Prints `READY <port>` on stdout once it accepts connections.

const http = require('http');
const api = require('@opentelemetry/api');
const {
  VERSION: CORE_VERSION,
  CompositePropagator,
  W3CTraceContextPropagator,
  W3CBaggagePropagator,
} = require('@opentelemetry/core');
const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');

// Without a context manager `context.with` does not make anything active, and
// without a real provider spans are non-recording copies of their parent.
api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
api.trace.setGlobalTracerProvider(new BasicTracerProvider());
api.propagation.setGlobalPropagator(
  new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
  }),
);
const tracer = api.trace.getTracer('baton-node-peer');

function describe(req) {
  const extracted = api.propagation.extract(api.ROOT_CONTEXT, req.headers);
  const span = tracer.startSpan('peer', { kind: api.SpanKind.SERVER }, extracted);
  try {
    return api.context.with(api.trace.setSpan(extracted, span), () => {
      // Everything below is read from the active context, as a handler would.
      const active = api.context.active();
      const sc = api.trace.getSpan(active).spanContext();
      // The remote parent the propagator produced: incoming flags and tracestate.
      const parent = api.trace.getSpanContext(extracted);
      const baggage = {};
      const baggageMetadata = {};
      const bag = api.propagation.getBaggage(active);
      if (bag) {
        for (const [key, entry] of bag.getAllEntries()) {
          baggage[key] = entry.value;
          if (entry.metadata !== undefined) {
            baggageMetadata[key] = entry.metadata.toString();
          }
        }
      }
      const injected = {};
      api.propagation.inject(active, injected);
      const header = (name) => (req.headers[name] === undefined ? null : req.headers[name]);
      return {
        sdk: 'node',
        sdk_version: CORE_VERSION,
        trace_id: sc.traceId,
        span_id: sc.spanId,
        span_trace_flags: sc.traceFlags,
        parent_trace_id: parent ? parent.traceId : null,
        parent_span_id: parent ? parent.spanId : null,
        parent_is_remote: parent ? Boolean(parent.isRemote) : false,
        trace_flags: parent ? parent.traceFlags : null,
        tracestate: parent && parent.traceState ? parent.traceState.serialize() : '',
        baggage,
        baggage_metadata: baggageMetadata,
        received: {
          traceparent: header('traceparent'),
          tracestate: header('tracestate'),
          baggage: header('baggage'),
        },
        injected,
      };
    });
  } finally {
    span.end();
  }
}

// No Nagle delay on small responses (explicit, whatever the Node default).
const server = http.createServer({ noDelay: true }, (req, res) => {
  // Drain the body (if any) before answering so keep-alive stays clean.
  req.resume();
  req.on('end', () => {
    let status = 200;
    let body;
    try {
      body = describe(req);
    } catch (err) {
      status = 500;
      body = { error: String(err && err.stack ? err.stack : err) };
    }
    const data = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length });
    res.end(data);
  });
});

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

// The test holds our stdin open; if it dies without killing us (SIGKILL,
// abort), EOF arrives here and we do not outlive it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

// The test kills us with SIGKILL on drop; SIGTERM/SIGINT also exit promptly.
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
