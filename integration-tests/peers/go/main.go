// Go peer for Baton's cross-language propagation tests.
//
// Serves HTTP on 127.0.0.1:<os.Args[1]> (0 picks a free port) through
// otelhttp, the official instrumentation a Go service would use, with the
// SDK's tracer provider and the W3C Trace Context + Baggage propagators.
// Every request is answered with JSON describing what the SDK extracted, read
// inside the handler from the request's context, and the headers it injects
// for an outbound call made from inside the handler.
//
// Prints `READY <port>` on stdout once it accepts connections, and exits when
// its stdin closes, so a test that dies cannot leave it behind.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

type report struct {
	SDK             string            `json:"sdk"`
	SDKVersion      string            `json:"sdk_version"`
	TraceID         string            `json:"trace_id"`
	SpanID          string            `json:"span_id"`
	SpanTraceFlags  uint8             `json:"span_trace_flags"`
	ParentTraceID   *string           `json:"parent_trace_id"`
	ParentSpanID    *string           `json:"parent_span_id"`
	ParentIsRemote  bool              `json:"parent_is_remote"`
	TraceFlags      *uint8            `json:"trace_flags"`
	Tracestate      string            `json:"tracestate"`
	Baggage         map[string]string `json:"baggage"`
	BaggageMetadata map[string]string `json:"baggage_metadata"`
	Received        map[string]string `json:"received"`
	Injected        map[string]string `json:"injected"`
}

func describe(r *http.Request) report {
	ctx := r.Context()
	span := trace.SpanFromContext(ctx)
	sc := span.SpanContext()
	out := report{
		SDK:             "go",
		SDKVersion:      otel.Version(),
		TraceID:         sc.TraceID().String(),
		SpanID:          sc.SpanID().String(),
		SpanTraceFlags:  uint8(sc.TraceFlags()),
		Baggage:         map[string]string{},
		BaggageMetadata: map[string]string{},
		Received:        map[string]string{},
		Injected:        map[string]string{},
	}
	// The remote parent the SDK's span was started under: incoming flags and
	// tracestate as the propagator produced them.
	if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
		if parent := ro.Parent(); parent.IsValid() {
			traceID, spanID, flags := parent.TraceID().String(), parent.SpanID().String(), uint8(parent.TraceFlags())
			out.ParentTraceID, out.ParentSpanID, out.TraceFlags = &traceID, &spanID, &flags
			out.ParentIsRemote = parent.IsRemote()
			out.Tracestate = parent.TraceState().String()
		}
	}
	for _, m := range baggage.FromContext(ctx).Members() {
		out.Baggage[m.Key()] = m.Value()
		if props := m.Properties(); len(props) > 0 {
			parts := make([]string, len(props))
			for i, p := range props {
				parts[i] = p.String()
			}
			out.BaggageMetadata[m.Key()] = strings.Join(parts, ";")
		}
	}
	for _, name := range []string{"traceparent", "tracestate", "baggage"} {
		if values := r.Header.Values(name); len(values) > 0 {
			out.Received[name] = strings.Join(values, ",")
		}
	}
	injected := http.Header{}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(injected))
	// http.Header canonicalises names ("Traceparent"); report them as sent
	// on the wire, case-insensitively: lowercase.
	for name, values := range injected {
		out.Injected[strings.ToLower(name)] = strings.Join(values, ",")
	}
	return out
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{},
	))

	handler := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := json.Marshal(describe(r))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("content-type", "application/json")
		_, _ = w.Write(body)
	}), "peer")

	listener, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Printf("READY %d\n", listener.Addr().(*net.TCPAddr).Port)

	// The test holds our stdin open; EOF means it is gone.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	if err := http.Serve(listener, handler); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
