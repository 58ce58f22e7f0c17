//! gRPC (tonic) instrumentation: a [server](server::GrpcServerLayer) and a
//! [client](client::GrpcClientLayer) layer, and an
//! [interceptor](interceptor::InjectInterceptor) that only injects.
//!
//! Both layers work on `http` requests, below tonic's codecs: the server
//! layer on `tonic::transport::Server::builder().layer(..)`, the client layer
//! on a `tonic::transport::Channel` wrapped with `tower::ServiceBuilder`.
//! gRPC metadata are HTTP/2 headers, so the [global](crate::global)
//! propagator (or the layer's own) reads and writes them there. Both take
//! the [options every Baton middleware takes](crate::instrumentation).
//!
//! # Conventions
//!
//! Semantic conventions 1.42.0 (`opentelemetry-semantic-conventions`
//! 0.33.1), which renamed `rpc.system` to `rpc.system.name`, replaced
//! `rpc.grpc.status_code` (a number) with `rpc.response.status_code` (the
//! code's name, e.g. `NOT_FOUND`) and folded `rpc.service` into a
//! fully-qualified `rpc.method`:
//!
//! - span name and `rpc.method`: `package.Service/Method`, from the path.
//!   A path of another shape, or a method the server answers `UNIMPLEMENTED`
//!   for, came from outside unchecked: the span is then named `grpc` and has
//!   `rpc.method` `_OTHER` and `rpc.method_original`.
//! - `rpc.system.name` `grpc`; `server.address` and `server.port`: on the
//!   client, of the URI the layer is made for
//!   ([`GrpcClientLayer::new`](client::GrpcClientLayer::new)); on the
//!   server, from the request's authority (or
//!   `with_server_address`).
//! - `rpc.response.status_code` from `grpc-status` in the response headers
//!   (trailers-only responses) or in the trailers; inferred from the HTTP
//!   status when a non-200 response has none; `UNKNOWN` when the stream ends
//!   without a valid one; `CANCELLED` when the response is dropped first.
//! - span status error and `error.type` (the code's name) for a client on
//!   every status but `OK`; for a server only on `UNKNOWN`,
//!   `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and
//!   `DATA_LOSS` (the others are the caller's doing). `error.type` is
//!   `_OTHER` when the call failed without a status (a transport error).
//!
//! The client layer sends baggage only where its
//! [`BaggagePolicy`](crate::instrumentation::BaggagePolicy) allows (internal
//! destinations by default), and the current context's request id as
//! `x-request-id` metadata (unless the request has one); the server layer
//! puts the caller's one in the handler's context when
//! [`RequestId::parse`](crate::request_id::RequestId::parse) accepts it, a
//! generated one otherwise (as the HTTP server layer does).
//!
//! The span and the duration end when the response stream ends, so a
//! streaming call counts until its last message and status.
//!
//! # Metrics
//!
//! `rpc.server.call.duration` and `rpc.client.call.duration`, in seconds with
//! [`DURATION_BOUNDARIES`](crate::metrics::DURATION_BOUNDARIES), with
//! `rpc.system.name`, `rpc.method`, `rpc.response.status_code`, `error.type`
//! on failures and, on the client only (opt-in on the server),
//! `server.address` and `server.port`. The conventions define no in-flight
//! call counter for RPC, so there is none.

mod body;
mod call;
pub mod client;
mod future;
pub mod interceptor;
pub mod server;

pub use body::ResponseBody;
pub(crate) use call::Instruments;
pub use future::ResponseFuture;
