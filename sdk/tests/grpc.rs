//! The gRPC layers and interceptor over real gRPC on 127.0.0.1: a tonic
//! server with `GrpcServerLayer`, a channel with `GrpcClientLayer`, spans and
//! metrics captured with `baton::testing`.
#![cfg(feature = "tonic")]
#![allow(clippy::unwrap_used, reason = "tests")]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use baton::grpc::client::GrpcClientLayer;
use baton::grpc::interceptor::InjectInterceptor;
use baton::grpc::server::GrpcServerLayer;
use baton::testing::{Capture, CapturedSpan, Metrics, PointValue};
use baton_testkit::{Echo, EchoClient, EchoReply, EchoRequest, EchoServer, ProstCodec};
use futures_util::Stream;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
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

/// A server and a client, instrumented with the global providers, and the
/// test's capture.
struct Harness {
    capture: Capture,
    seen: Arc<Seen>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Self {
        let capture = Capture::start();
        let seen = Arc::new(Seen::default());
        // Without it each reply waits for a delayed ACK.
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
            .unwrap()
            .with_nodelay(Some(true));
        let addr = incoming.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let layer = GrpcServerLayer::new();
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
            capture,
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
    fn client(&self) -> EchoClient<baton::grpc::client::GrpcClientService<Channel>> {
        let layer = GrpcClientLayer::new(
            &format!("http://127.0.0.1:{}", self.addr.port())
                .parse()
                .expect("a uri"),
        );
        EchoClient::new(
            tower::ServiceBuilder::new()
                .layer(layer)
                .service(self.channel()),
        )
    }

    /// The one captured span of `kind`, once every span has ended.
    async fn span(&self, kind: &SpanKind) -> CapturedSpan {
        let spans = self.capture.spans().await;
        let of_kind: Vec<_> = spans.iter().filter(|s| s.kind() == kind).collect();
        let [span] = of_kind.as_slice() else {
            panic!("one {kind:?} span expected:\n{spans}")
        };
        (*span).clone()
    }

    /// (count, attributes) of the points of duration histogram `name`.
    fn histogram(&self, name: &str) -> Vec<(u64, Vec<KeyValue>)> {
        histogram(&self.capture.metrics(), name)
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.await.unwrap();
    }
}

/// (count, attributes) of the points of histogram `name`, each checked to be
/// in seconds with the conventions' buckets.
fn histogram(metrics: &Metrics, name: &str) -> Vec<(u64, Vec<KeyValue>)> {
    metrics
        .points(name)
        .map(|point| {
            assert_eq!(point.unit, "s", "{point}");
            let PointValue::Histogram { count, bounds, .. } = &point.value else {
                panic!("{point} is not a histogram");
            };
            assert_eq!(*bounds, baton::metrics::DURATION_BOUNDARIES);
            (*count, point.attributes.clone())
        })
        .collect()
}

fn kv(key: &'static str, value: &'static str) -> KeyValue {
    KeyValue::new(key, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_call_links_client_and_server_spans() {
    let h = Harness::start().await;
    let mut client = h.client();
    let cx = baton::baggage::set_in(&h.capture.context(), "tenant", "acme").unwrap();
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

    let server = h.span(&SpanKind::Server).await;
    let client = h.span(&SpanKind::Client).await;
    for span in [&server, &client] {
        assert_eq!(span.name(), "baton.test.Echo/Unary");
        span.assert_attribute("rpc.system.name", "grpc")
            .assert_attribute("rpc.method", "baton.test.Echo/Unary")
            .assert_attribute("rpc.response.status_code", "OK")
            .assert_no_attribute("error.type")
            .assert_attribute("server.address", "127.0.0.1")
            .assert_attribute("server.port", i64::from(h.addr.port()));
        assert_eq!(*span.status(), Status::Unset);
    }
    assert_eq!(server.trace_id(), client.trace_id());
    assert_eq!(server.parent_span_id(), client.span_id());
    assert!(server.has_remote_parent());
    // The handler ran inside the server span, with the client's baggage,
    // and so did a task it spawned.
    assert_eq!(*h.seen.span.lock().unwrap(), Some(server.span_id()));
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
    let mut stream = h
        .capture
        .run(client.stream(EchoRequest {
            count: 3,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.message, "0");
    // The first message is out, the response headers long gone: no span
    // may have ended yet.
    assert!(h.capture.spans_now().is_empty());
    h.seen.resume.notify_one();
    let mut rest = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        rest.push(reply.message);
    }
    assert_eq!(rest, ["1", "2"]);

    let last_sent = h.seen.last_sent.lock().unwrap().unwrap();
    let server = h.span(&SpanKind::Server).await;
    let client = h.span(&SpanKind::Client).await;
    assert!(server.data().end_time >= last_sent);
    assert!(client.data().end_time >= server.data().end_time);
    for span in [&server, &client] {
        assert_eq!(span.name(), "baton.test.Echo/Stream");
        span.assert_attribute("rpc.response.status_code", "OK");
    }
    assert_eq!(h.histogram("rpc.server.call.duration")[0].0, 1);
    h.stop().await;
}

/// Calls `Fail` with `code`; returns the (server, client) spans of its trace.
async fn fail_with(h: &Harness, code: tonic::Code) -> (CapturedSpan, CapturedSpan) {
    let status = h
        .capture
        .run(h.client().fail(EchoRequest {
            code: code as i32,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), code);
    let spans = h.capture.spans().await;
    // The call's trace is the last one started: earlier calls have theirs.
    let trace = spans.trace_ids().last().copied();
    let of_kind = |kind: SpanKind| {
        let found: Vec<_> = spans
            .iter()
            .filter(|s| Some(s.trace_id()) == trace && *s.kind() == kind)
            .collect();
        let [span] = found.as_slice() else {
            panic!("one {kind:?} span expected in the last trace:\n{spans}")
        };
        (*span).clone()
    };
    (of_kind(SpanKind::Server), of_kind(SpanKind::Client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_errors_per_side() {
    let h = Harness::start().await;

    // INTERNAL: the server's fault, an error on both sides. tonic answers a
    // failed unary call trailers-only: the status is in the headers.
    let (server, client) = fail_with(&h, tonic::Code::Internal).await;
    for span in [&server, &client] {
        span.assert_attribute("rpc.response.status_code", "INTERNAL")
            .assert_attribute("error.type", "INTERNAL");
        assert_eq!(*span.status(), Status::error("INTERNAL"));
    }

    // NOT_FOUND: the caller's doing, an error for the client only.
    let (server, client) = fail_with(&h, tonic::Code::NotFound).await;
    server
        .assert_attribute("rpc.response.status_code", "NOT_FOUND")
        .assert_no_attribute("error.type");
    assert_eq!(*server.status(), Status::Unset);
    client
        .assert_attribute("rpc.response.status_code", "NOT_FOUND")
        .assert_attribute("error.type", "NOT_FOUND");
    assert_eq!(*client.status(), Status::error("NOT_FOUND"));

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
    // No client layer: the capture's caller headers carry its trace.
    let mut grpc = tonic::client::Grpc::new(h.channel());
    grpc.ready().await.unwrap();
    let codec: ProstCodec<EchoRequest, EchoReply> = ProstCodec::default();
    let mut request = tonic::Request::new(EchoRequest::default());
    *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(h.capture.caller());
    let status = grpc
        .unary(request, "/baton.test.Echo/Nope".parse().unwrap(), codec)
        .await
        .map(|_: tonic::Response<EchoReply>| ())
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    let server = h.span(&SpanKind::Server).await;
    assert_eq!(server.name(), "grpc");
    server
        .assert_attribute("rpc.method", "_OTHER")
        .assert_attribute("rpc.method_original", "baton.test.Echo/Nope")
        .assert_attribute("error.type", "UNIMPLEMENTED");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptor_injects_the_current_context() {
    let h = Harness::start().await;
    let mut client = EchoClient::with_interceptor(
        h.channel(),
        InjectInterceptor::new(&format!("http://{}", h.addr).parse().expect("a uri")),
    );
    let tracer = opentelemetry::global::tracer("test");
    let parent = tracer.start_with_context("caller", &h.capture.context());
    let parent_id = parent.span_context().clone();
    let cx =
        baton::baggage::set_in(&h.capture.context().with_span(parent), "tenant", "globex").unwrap();
    baton::run(cx, client.unary(EchoRequest::default()))
        .await
        .unwrap();

    let server = h.span(&SpanKind::Server).await;
    assert_eq!(server.trace_id(), parent_id.trace_id());
    assert_eq!(server.parent_span_id(), parent_id.span_id());
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
    let layer = GrpcClientLayer::new(endpoint.uri());
    let mut client = EchoClient::new(tower::ServiceBuilder::new().layer(layer).service(channel));
    h.capture
        .run(client.unary(EchoRequest::default()))
        .await
        .unwrap_err();

    let client = h.span(&SpanKind::Client).await;
    client
        .assert_attribute("error.type", "_OTHER")
        .assert_no_attribute("rpc.response.status_code");
    assert_eq!(*client.status(), Status::error("_OTHER"));
    let points = h.histogram("rpc.client.call.duration");
    assert_eq!(points.len(), 1);
    assert!(points[0].1.contains(&kv("error.type", "_OTHER")));
    h.stop().await;
}
