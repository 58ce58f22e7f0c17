//! A small gRPC service for Baton's tests: `baton.test.Echo`, with a unary
//! call, a server-streaming call and a call that fails.

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
