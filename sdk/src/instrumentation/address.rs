//! `server.address` and `server.port`.

use std::sync::Arc;

use opentelemetry::{KeyValue, StringValue};
use opentelemetry_semantic_conventions::attribute::{SERVER_ADDRESS, SERVER_PORT};

/// A host and port as the conventions record them.
#[derive(Clone, Debug)]
pub(crate) struct Address {
    pub(crate) host: StringValue,
    /// The host interned, for a metric key: a configured address only.
    #[cfg_attr(
        not(feature = "tonic"),
        allow(dead_code, reason = "read by the gRPC layers' metric keys")
    )]
    pub(crate) name: Option<&'static str>,
    pub(crate) port: Option<i64>,
}

impl Address {
    /// An address the application configured: one of its own, so it is
    /// interned (when the table has room).
    pub(crate) fn configured(host: &str, port: Option<u16>) -> Self {
        let name = crate::intern::intern(host);
        Address {
            host: name.map_or_else(
                || StringValue::from(Arc::<str>::from(host)),
                StringValue::from,
            ),
            name,
            port: port.map(i64::from),
        }
    }

    #[cfg(feature = "tonic")]
    /// The authority of `uri`, if it has one, as an address seen in a request.
    pub(crate) fn from_uri(uri: &http::Uri) -> Option<Self> {
        let authority = uri.authority()?;
        Some(Address {
            host: StringValue::from(Arc::<str>::from(authority.host())),
            name: None,
            port: authority.port_u16().map(i64::from),
        })
    }

    #[cfg(feature = "tonic")]
    /// The host, as the baggage policy and logs see it.
    pub(crate) fn host(&self) -> &str {
        self.host.as_str()
    }

    pub(crate) fn attributes(&self) -> impl Iterator<Item = KeyValue> + use<> {
        let host = KeyValue::new(SERVER_ADDRESS, self.host.clone());
        let port = self.port.map(|port| KeyValue::new(SERVER_PORT, port));
        std::iter::once(host).chain(port)
    }
}
