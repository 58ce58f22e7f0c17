//! The gRPC layers and interceptor over real gRPC on 127.0.0.1: a tonic
//! server with `GrpcServerLayer`, a channel with `GrpcClientLayer`, spans and
//! metrics in memory.
#![cfg(feature = "tonic")]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use baton::grpc::client::GrpcClientLayer;
use baton::grpc::interceptor::InjectInterceptor;
use baton::grpc::server::GrpcServerLayer;
use baton_testkit::{Echo, EchoClient, EchoReply, EchoRequest, EchoServer, ProstCodec};
use futures_util::Stream;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tokio::sync::{Notify, oneshot};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};

/// What the handlers saw, for the test to check.
#[derive(Default)]
struct Seen {
    /// Baggage `tenant` in the handler and in a task it spawned.
    tenant: Mutex<Option<(Option<String>, Option<String>)>>,
    /// The handler's current span's id.
    span: Mutex<Option<opentelemetry::trace::SpanId>>,
    /// When the streaming handler had sent its last message.
    last_sent: Mutex<Option<SystemTime>>,
    /// Lets the streaming handler go on after its first message.
    resume: Notify,
}

struct Service(Arc<Seen>);

type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Service {
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let here = baton::baggage::get("tenant");
        let spawned = baton::spawn(async { baton::baggage::get("tenant") })
            .await
            .unwrap();
        *self.0.tenant.lock().unwrap() = Some((here, spawned));
        *self.0.span.lock().unwrap() = Some(baton::current().span().span_context().span_id());
        Ok(tonic::Response::new(EchoReply {
            message: request.into_inner().message,
        }))
    }

    type StreamStream = ReplyStream;

    async fn stream(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<ReplyStream>, tonic::Status> {
        let count = request.into_inner().count;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let seen = Arc::clone(&self.0);
        baton::spawn(async move {
            for i in 0..count {
                let reply = EchoReply {
                    message: i.to_string(),
                };
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
                if i == 0 {
                    seen.resume.notified().await;
                }
            }
            *seen.last_sent.lock().unwrap() = Some(SystemTime::now());
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }

    async fn fail(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        let code = tonic::Code::from_i32(request.into_inner().code);
        Err(tonic::Status::new(code, "failed on purpose"))
    }
}

/// A server and a client, instrumented, with their telemetry in memory.
struct Harness {
    spans: InMemorySpanExporter,
    tracer_provider: SdkTracerProvider,
    metrics: InMemoryMetricExporter,
    meter_provider: SdkMeterProvider,
    seen: Arc<Seen>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Self {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        let seen = Arc::new(Seen::default());
        // Without it each reply waits for a delayed ACK.
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
            .unwrap()
            .with_nodelay(Some(true));
        let addr = incoming.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let layer = GrpcServerLayer::new()
            .with_tracer_provider(&tracer_provider)
            .with_meter_provider(&meter_provider);
        let service = EchoServer::new(Service(Arc::clone(&seen)));
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .layer(layer)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = signal.await;
                })
                .await
                .unwrap();
        });
        Harness {
            spans,
            tracer_provider,
            metrics,
            meter_provider,
            seen,
            addr,
            shutdown: Some(shutdown),
            server,
        }
    }

    fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_lazy()
    }

    /// A client through the client layer.
    fn client(&self) -> EchoClient<baton::grpc::client::GrpcClient<Channel>> {
        let layer = GrpcClientLayer::new(
            &format!("http://127.0.0.1:{}", self.addr.port())
                .parse()
                .expect("a uri"),
        )
        .with_tracer_provider(&self.tracer_provider)
        .with_meter_provider(&self.meter_provider);
        EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(layer)
                .service(self.channel()),
        )
    }

    fn span(&self, kind: &SpanKind) -> SpanData {
        let spans = self.spans.get_finished_spans().unwrap();
        let mut of_kind = spans.into_iter().filter(|s| &s.span_kind == kind);
        let span = of_kind.next().expect("a span of that kind");
        assert!(of_kind.next().is_none(), "one span of that kind");
        span
    }

    /// (data point count, attributes) of histogram `name`.
    fn histogram(&self, name: &str) -> Vec<(u64, Vec<KeyValue>)> {
        self.meter_provider.force_flush().unwrap();
        let exported = self.metrics.get_finished_metrics().unwrap();
        let last = exported.last().expect("an export");
        let metric = last
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == name)
            .expect("the metric");
        assert_eq!(metric.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() else {
            panic!("not an f64 histogram");
        };
        histogram
            .data_points()
            .map(|p| {
                assert_eq!(
                    p.bounds().collect::<Vec<_>>(),
                    baton::metrics::DURATION_BOUNDARIES
                );
                let mut attributes: Vec<_> = p.attributes().cloned().collect();
                attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
                (p.count(), attributes)
            })
            .collect()
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.await.unwrap();
    }
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn s(value: &'static str) -> Option<Value> {
    Some(Value::from(value))
}

fn kv(key: &'static str, value: &'static str) -> KeyValue {
    KeyValue::new(key, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_links_client_and_server_spans() {
    let h = Harness::start().await;
    let mut client = h.client();
    let cx = baton::baggage::set("tenant", "acme").unwrap();
    let reply = baton::run(
        cx,
        client.unary(EchoRequest {
            message: "hi".into(),
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    assert_eq!(reply.into_inner().message, "hi");

    let server = h.span(&SpanKind::Server);
    let client = h.span(&SpanKind::Client);
    for span in [&server, &client] {
        assert_eq!(span.name, "baton.test.Echo/Unary");
        assert_eq!(attr(span, "rpc.system.name"), s("grpc"));
        assert_eq!(attr(span, "rpc.method"), s("baton.test.Echo/Unary"));
        assert_eq!(attr(span, "rpc.response.status_code"), s("OK"));
        assert_eq!(attr(span, "error.type"), None);
        assert_eq!(attr(span, "server.address"), s("127.0.0.1"));
        assert_eq!(
            attr(span, "server.port"),
            Some(Value::I64(i64::from(h.addr.port())))
        );
        assert_eq!(span.status, Status::Unset);
    }
    assert_eq!(
        server.span_context.trace_id(),
        client.span_context.trace_id()
    );
    assert_eq!(server.parent_span_id, client.span_context.span_id());
    assert!(server.parent_span_is_remote);
    // The handler ran inside the server span, with the client's baggage,
    // and so did a task it spawned.
    assert_eq!(
        *h.seen.span.lock().unwrap(),
        Some(server.span_context.span_id())
    );
    assert_eq!(
        *h.seen.tenant.lock().unwrap(),
        Some((Some("acme".into()), Some("acme".into())))
    );

    let ok = vec![
        kv("rpc.method", "baton.test.Echo/Unary"),
        kv("rpc.response.status_code", "OK"),
        kv("rpc.system.name", "grpc"),
    ];
    assert_eq!(h.histogram("rpc.server.call.duration"), [(1, ok.clone())]);
    let mut client_ok = ok;
    client_ok.push(kv("server.address", "127.0.0.1"));
    client_ok.push(KeyValue::new("server.port", i64::from(h.addr.port())));
    assert_eq!(h.histogram("rpc.client.call.duration"), [(1, client_ok)]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_spans_end_with_the_stream() {
    let h = Harness::start().await;
    let mut client = h.client();
    let mut stream = client
        .stream(EchoRequest {
            count: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.message, "0");
    // The first message is out, the response headers long gone: no span
    // may have ended yet.
    assert!(h.spans.get_finished_spans().unwrap().is_empty());
    h.seen.resume.notify_one();
    let mut rest = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        rest.push(reply.message);
    }
    assert_eq!(rest, ["1", "2"]);

    let last_sent = h.seen.last_sent.lock().unwrap().unwrap();
    let server = h.span(&SpanKind::Server);
    let client = h.span(&SpanKind::Client);
    assert!(server.end_time >= last_sent);
    assert!(client.end_time >= server.end_time);
    for span in [&server, &client] {
        assert_eq!(span.name, "baton.test.Echo/Stream");
        assert_eq!(attr(span, "rpc.response.status_code"), s("OK"));
    }
    assert_eq!(h.histogram("rpc.server.call.duration")[0].0, 1);
    h.stop().await;
}

/// Calls `Fail` with `code`; returns the (server, client) spans.
async fn fail_with(h: &Harness, code: tonic::Code) -> (SpanData, SpanData) {
    let status = h
        .client()
        .fail(EchoRequest {
            code: code as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), code);
    let spans = (h.span(&SpanKind::Server), h.span(&SpanKind::Client));
    h.spans.reset();
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_errors_per_side() {
    let h = Harness::start().await;

    // INTERNAL: the server's fault, an error on both sides. tonic answers a
    // failed unary call trailers-only: the status is in the headers.
    let (server, client) = fail_with(&h, tonic::Code::Internal).await;
    for span in [&server, &client] {
        assert_eq!(attr(span, "rpc.response.status_code"), s("INTERNAL"));
        assert_eq!(attr(span, "error.type"), s("INTERNAL"));
        assert_eq!(span.status, Status::error("INTERNAL"));
    }

    // NOT_FOUND: the caller's doing, an error for the client only.
    let (server, client) = fail_with(&h, tonic::Code::NotFound).await;
    assert_eq!(attr(&server, "rpc.response.status_code"), s("NOT_FOUND"));
    assert_eq!(attr(&server, "error.type"), None);
    assert_eq!(server.status, Status::Unset);
    assert_eq!(attr(&client, "rpc.response.status_code"), s("NOT_FOUND"));
    assert_eq!(attr(&client, "error.type"), s("NOT_FOUND"));
    assert_eq!(client.status, Status::error("NOT_FOUND"));

    let server_points = h.histogram("rpc.server.call.duration");
    let internal = server_points
        .iter()
        .find(|(_, a)| a.contains(&kv("rpc.response.status_code", "INTERNAL")))
        .unwrap();
    assert_eq!(internal.0, 1);
    assert!(internal.1.contains(&kv("error.type", "INTERNAL")));
    let not_found = server_points
        .iter()
        .find(|(_, a)| a.contains(&kv("rpc.response.status_code", "NOT_FOUND")))
        .unwrap();
    assert!(!not_found.1.iter().any(|a| a.key.as_str() == "error.type"));
    let client_points = h.histogram("rpc.client.call.duration");
    assert_eq!(client_points.len(), 2);
    assert!(
        client_points
            .iter()
            .all(|(n, a)| *n == 1 && a.iter().any(|a| a.key.as_str() == "error.type"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_does_not_name_the_span() {
    let h = Harness::start().await;
    // A method the server does not serve: tonic answers UNIMPLEMENTED.
    let mut grpc = tonic::client::Grpc::new(h.channel());
    grpc.ready().await.unwrap();
    let codec: ProstCodec<EchoRequest, EchoReply> = ProstCodec::default();
    let status = grpc
        .unary(
            tonic::Request::new(EchoRequest::default()),
            "/baton.test.Echo/Nope".parse().unwrap(),
            codec,
        )
        .await
        .map(|_: tonic::Response<EchoReply>| ())
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let server = h.span(&SpanKind::Server);
    assert_eq!(server.name, "grpc");
    assert_eq!(attr(&server, "rpc.method"), s("_OTHER"));
    assert_eq!(
        attr(&server, "rpc.method_original"),
        s("baton.test.Echo/Nope")
    );
    assert_eq!(attr(&server, "error.type"), s("UNIMPLEMENTED"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptor_injects_the_current_context() {
    let h = Harness::start().await;
    let mut client = EchoClient::with_interceptor(
        h.channel(),
        InjectInterceptor::new(&format!("http://{}", h.addr).parse().expect("a uri")),
    );
    let tracer = h.tracer_provider.tracer("test");
    let parent = tracer.start("caller");
    let parent_id = parent.span_context().clone();
    let cx = baton::baggage::set_in(
        &opentelemetry::Context::current_with_span(parent),
        "tenant",
        "globex",
    )
    .unwrap();
    baton::run(cx, client.unary(EchoRequest::default()))
        .await
        .unwrap();

    let server = h.span(&SpanKind::Server);
    assert_eq!(server.span_context.trace_id(), parent_id.trace_id());
    assert_eq!(server.parent_span_id, parent_id.span_id());
    assert_eq!(
        *h.seen.tenant.lock().unwrap(),
        Some((Some("globex".into()), Some("globex".into())))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failure_is_an_error_without_a_status() {
    let h = Harness::start().await;
    // A port nothing listens on any more: the channel fails, no status comes.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    let channel = endpoint.connect_lazy();
    let layer = GrpcClientLayer::new(endpoint.uri())
        .with_tracer_provider(&h.tracer_provider)
        .with_meter_provider(&h.meter_provider);
    let mut client = EchoClient::new(tower::ServiceBuilder::new().layer(layer).service(channel));
    client.unary(EchoRequest::default()).await.unwrap_err();

    let client = h.span(&SpanKind::Client);
    assert_eq!(attr(&client, "error.type"), s("_OTHER"));
    assert_eq!(attr(&client, "rpc.response.status_code"), None);
    assert_eq!(client.status, Status::error("_OTHER"));
    let points = h.histogram("rpc.client.call.duration");
    assert_eq!(points.len(), 1);
    assert!(points[0].1.contains(&kv("error.type", "_OTHER")));
    h.stop().await;
}
