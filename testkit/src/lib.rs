//! A small gRPC service for Baton's tests: `baton.test.Echo`, with a unary
//! call, a server-streaming call and a call that fails; and [`Discard`], an
//! exporter for overhead measurements.

/// The generated messages, client and server for `baton.test`.
#[allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]
pub mod echo {
    tonic::include_proto!("baton.test");
}

pub use echo::echo_client::EchoClient;
pub use echo::echo_server::{Echo, EchoServer};
pub use echo::{EchoReply, EchoRequest};
/// The codec the generated code uses, for calls made by hand (e.g. to a
/// method the server does not serve).
pub use tonic_prost::ProstCodec;

/// An `Echo` server that answers `Unary` with the request's message and
/// refuses the other calls: the minimal peer for overhead measurements.
pub type UnaryEcho = Unary<fn(&tonic::Request<EchoRequest>) -> String>;

impl Default for UnaryEcho {
    fn default() -> Self {
        Unary(|request| request.get_ref().message.clone())
    }
}

/// An `Echo` server that answers `Unary` with what its function makes of
/// the request (its metadata, what the handler's context holds...) and
/// refuses the other calls.
#[derive(Debug, Clone, Copy)]
pub struct Unary<F>(pub F);

#[tonic::async_trait]
impl<F> Echo for Unary<F>
where
    F: Fn(&tonic::Request<EchoRequest>) -> String + Send + Sync + 'static,
{
    async fn unary(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Ok(tonic::Response::new(EchoReply {
            message: (self.0)(&request),
        }))
    }

    type StreamStream = tonic::codegen::BoxStream<EchoReply>;

    async fn stream(
        &self,
        _: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("unary only"))
    }

    async fn fail(
        &self,
        _: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoReply>, tonic::Status> {
        Err(tonic::Status::unimplemented("unary only"))
    }
}

/// A span and metric exporter that drops everything: what recording costs,
/// without the cost of sending it anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Discard;

impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(
        &self,
        _: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for Discard {
    async fn export(
        &self,
        _: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(
        &self,
        _: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}
