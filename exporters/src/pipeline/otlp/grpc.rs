//! [`GrpcSpanExporter`]: OTLP/gRPC span export with Baton's encoder.
//!
//! The request is encoded by [`encode`](super::encode) and sent through
//! tonic as bytes with a pass-through codec, so nothing is converted into
//! intermediate structs; the transport is tonic's, as in `opentelemetry-otlp`.
//! Transient failures are retried (see [`retry`](super::retry)), sending the
//! same encoded bytes again.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use http::uri::PathAndQuery;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use super::encode::{EncodedResource, export_request};
use super::retry::{Backoff, Verdict, classify};

/// How long an export keeps retrying by default: the batch span
/// processor's default export timeout.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// The OTLP trace service's export method.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Exports spans over OTLP/gRPC. Built inside a tokio runtime, whose I/O
/// driver then carries the connection; the channel connects lazily, so
/// building never waits for the collector.
#[derive(Debug)]
pub struct GrpcSpanExporter {
    client: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    resource: EncodedResource,
    retry_for: Duration,
}

impl GrpcSpanExporter {
    /// An exporter to `endpoint` (`http://host:port`), every export bounded
    /// by `timeout`, sending `metadata`, gzip-compressed if asked.
    pub(crate) fn new(
        endpoint: &str,
        timeout: Duration,
        metadata: MetadataMap,
        gzip: bool,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(endpoint.to_owned())?
            .timeout(timeout)
            .user_agent(concat!("baton-exporters/", env!("CARGO_PKG_VERSION")))?
            .connect_lazy();
        let mut client = tonic::client::Grpc::new(channel);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(GrpcSpanExporter {
            client,
            metadata,
            resource: EncodedResource::default(),
            retry_for: RETRY_FOR,
        })
    }

    /// Retries transient failures of one export for at most `retry_for`
    /// from its first attempt (30 s by default); 0 never retries. Retries
    /// need a tokio runtime: exports driven by another executor are tried
    /// once.
    #[must_use]
    pub fn retrying_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// One attempt to send `body`.
    async fn send(&self, body: Bytes) -> Result<(), tonic::Status> {
        let mut client = self.client.clone();
        client.ready().await.map_err(|error| {
            tonic::Status::unavailable(format!("collector unreachable: {error}"))
        })?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        let path = PathAndQuery::from_static(EXPORT);
        client
            .unary(request, path, BytesCodec)
            .await
            .map(|_response| ())
    }
}

impl SpanExporter for GrpcSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = Bytes::from(export_request(&self.resource, &batch));
        // Freed here, on the export thread, before waiting on the network.
        drop(batch);
        let started = Instant::now();
        let mut backoff = Backoff::new();
        loop {
            // A clone of `Bytes` shares the buffer: retries copy nothing.
            let status = match self.send(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(status) => status,
            };
            let failed =
                || OTelSdkError::InternalFailure(format!("otlp/grpc export failed: {status}"));
            let Verdict::Retry(hint) = classify(&status) else {
                return Err(failed());
            };
            let wait = backoff.next(hint);
            // Waiting needs a tokio timer: driven by another executor (as
            // upstream's batch processor does), the first failure is final.
            if started.elapsed() + wait > self.retry_for
                || tokio::runtime::Handle::try_current().is_err()
            {
                return Err(failed());
            }
            tracing::debug!(%status, ?wait, "otlp/grpc export failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = EncodedResource::new(resource);
    }
}

/// Sends an already encoded message and reads the answer without decoding
/// it (a partial-success answer carries only counts and a message).
#[derive(Debug, Clone, Copy)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = ();
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let len = bytes::Buf::remaining(src);
        bytes::Buf::advance(src, len);
        Ok(Some(()))
    }
}
