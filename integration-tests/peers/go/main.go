// Go peer for Baton's cross-language tests.
//
// Serves HTTP on 127.0.0.1:<os.Args[1]> (0 picks a free port) through
// otelhttp, and gRPC (the standard grpc.health.v1.Health service) on a free
// 127.0.0.1 port through otelgrpc: the official instrumentation a Go service
// would use, with the SDK's tracer provider and the W3C Trace Context +
// Baggage propagators.
//
//   - HTTP `GET /`: JSON describing what the SDK extracted, read inside the
//     handler from the request's context, and the headers it injects for an
//     outbound call made from inside the handler.
//   - gRPC `Health/Check`: the same description, sent back in the binary
//     response header `x-peer-report-bin`.
//   - HTTP `GET /call-grpc?addr=HOST:PORT`: from inside its server span, calls
//     `Health/Check` at that address through otelgrpc's client handler, and
//     answers with the description plus the client span the SDK recorded.
//   - HTTP `GET /call-http?url=URL`: the same, with a GET through otelhttp's
//     client transport.
//
// Prints `GRPC <port>`, then `READY <port>` (the HTTP port) on stdout once it
// accepts connections, and exits when its stdin closes, so a test that dies
// cannot leave it behind.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
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
	// Set by /call-grpc only: the CLIENT span of the outbound call.
	Client *clientSpan `json:"client,omitempty"`
}

type clientSpan struct {
	TraceID      string `json:"trace_id"`
	SpanID       string `json:"span_id"`
	ParentSpanID string `json:"parent_span_id"`
	Name         string `json:"name"`
	Status       string `json:"status"`
}

// What the SDK made of the incoming call, read from its context; `received`
// holds the raw propagation headers (or metadata) as they arrived.
func describe(ctx context.Context, received map[string]string) report {
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
		Received:        received,
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
	injected := http.Header{}
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(injected))
	// http.Header canonicalises names ("Traceparent"); report them as sent
	// on the wire, case-insensitively: lowercase.
	for name, values := range injected {
		out.Injected[strings.ToLower(name)] = strings.Join(values, ",")
	}
	return out
}

var propagationHeaders = []string{"traceparent", "tracestate", "baggage"}

func receivedHTTP(r *http.Request) map[string]string {
	received := map[string]string{}
	for _, name := range propagationHeaders {
		if values := r.Header.Values(name); len(values) > 0 {
			received[name] = strings.Join(values, ",")
		}
	}
	return received
}

// health answers Check with a description of the call in its response header.
type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	received := map[string]string{}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, name := range propagationHeaders {
		if values := md.Get(name); len(values) > 0 {
			received[name] = strings.Join(values, ",")
		}
	}
	body, err := json.Marshal(describe(ctx, received))
	if err != nil {
		return nil, err
	}
	// A -bin header: grpc-go base64-encodes it, so any byte may travel.
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-peer-report-bin", string(body))); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// callGRPC calls Health/Check at addr from inside ctx, through otelgrpc.
func callGRPC(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// callHTTP sends GET url from inside ctx, through otelhttp's transport.
func callHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	client := http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport)}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// recordedClient returns the CLIENT span the SDK recorded in ctx's trace,
// waiting briefly: a span may end just after its call returns.
func recordedClient(ctx context.Context, recorder *tracetest.SpanRecorder) (*clientSpan, error) {
	traceID := trace.SpanContextFromContext(ctx).TraceID()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, s := range recorder.Ended() {
			if s.SpanKind() == trace.SpanKindClient && s.SpanContext().TraceID() == traceID {
				return &clientSpan{
					TraceID:      s.SpanContext().TraceID().String(),
					SpanID:       s.SpanContext().SpanID().String(),
					ParentSpanID: s.Parent().SpanID().String(),
					Name:         s.Name(),
					Status:       s.Status().Code.String(),
				}, nil
			}
		}
	}
	return nil, fmt.Errorf("no client span recorded in trace %s", traceID)
}

func writeJSON(w http.ResponseWriter, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("content-type", "application/json")
	_, _ = w.Write(data)
}

func main() {
	port := "0"
	if len(os.Args) > 1 {
		port = os.Args[1]
	}
	recorder := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder)))
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{},
	))

	grpcListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen (grpc):", err)
		os.Exit(1)
	}
	grpcServer := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler()))
	healthpb.RegisterHealthServer(grpcServer, health{})
	go func() {
		if err := grpcServer.Serve(grpcListener); err != nil {
			fmt.Fprintln(os.Stderr, "serve (grpc):", err)
			os.Exit(1)
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, describe(r.Context(), receivedHTTP(r)))
	})
	// Calls out from inside the server span, then reports that span and the
	// CLIENT span of the call.
	callOut := func(call func(ctx context.Context, target string) error, param string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			out := describe(r.Context(), receivedHTTP(r))
			if err := call(r.Context(), r.URL.Query().Get(param)); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			client, err := recordedClient(r.Context(), recorder)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			out.Client = client
			writeJSON(w, out)
		}
	}
	mux.HandleFunc("/call-grpc", callOut(callGRPC, "addr"))
	mux.HandleFunc("/call-http", callOut(callHTTP, "url"))
	handler := otelhttp.NewHandler(mux, "peer")

	listener, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	fmt.Printf("GRPC %d\n", grpcListener.Addr().(*net.TCPAddr).Port)
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
