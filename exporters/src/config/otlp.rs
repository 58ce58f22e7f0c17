//! `OTEL_EXPORTER_OTLP_*`: endpoint, protocol, headers, timeout and
//! compression, generic and per signal.

use std::fmt;
use std::time::Duration;

use super::env::Env;
use super::keyvalue;
use super::signal::{ALL, GENERIC, SignalVars};

/// The specification's default export timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// `grpc`.
    Grpc,
    /// `http/protobuf`, the specification's recommended default.
    #[default]
    HttpProtobuf,
}

impl Protocol {
    fn default_endpoint(self) -> &'static str {
        match self {
            Self::Grpc => "http://localhost:4317",
            Self::HttpProtobuf => "http://localhost:4318",
        }
    }

    fn parse(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Err("protocol not supported".to_owned()),
            _ => Err("unknown protocol".to_owned()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Payload compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compression {
    /// `none`, the default.
    #[default]
    None,
    /// `gzip`.
    Gzip,
}

impl Compression {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "gzip" => Ok(Self::Gzip),
            _ => Err("unknown compression".to_owned()),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        })
    }
}

/// Request headers (names lower-cased, values decoded). `Debug` and
/// `Display` print `***` for every value, since they usually carry
/// credentials; read them with [`iter`](Self::iter).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// The headers as `(name, value)`, in the order listed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, _)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}=***")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k, "***")))
            .finish()
    }
}

/// The OTLP settings of one signal, with every fallback applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtlpSignal {
    /// The full URL (OTLP/HTTP: including `/v1/<signal>`) or gRPC target.
    pub endpoint: String,
    /// The transport.
    pub protocol: Protocol,
    /// Headers sent with every export request.
    pub headers: Headers,
    /// The time one export may take.
    pub timeout: Duration,
    /// Payload compression.
    pub compression: Compression,
}

impl fmt::Display for OtlpSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "endpoint={} protocol={} headers=[{}] timeout={}ms compression={}",
            self.endpoint,
            self.protocol,
            self.headers,
            self.timeout.as_millis(),
            self.compression
        )
    }
}

/// The OTLP settings of each signal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Otlp {
    /// Traces.
    pub traces: OtlpSignal,
    /// Metrics.
    pub metrics: OtlpSignal,
    /// Logs.
    pub logs: OtlpSignal,
}

/// The generic values, read once so a malformed one is warned about once,
/// not once per signal.
struct Generic {
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Option<Headers>,
    timeout: Option<Duration>,
    compression: Option<Compression>,
}

impl Otlp {
    pub(crate) fn read(env: &mut Env<'_>) -> Self {
        let generic = Generic {
            endpoint: env.parsed(GENERIC.endpoint, endpoint),
            protocol: env.parsed(GENERIC.protocol, Protocol::parse),
            headers: headers(env, GENERIC.headers),
            timeout: env.millis(GENERIC.timeout),
            compression: env.parsed(GENERIC.compression, Compression::parse),
        };
        let [traces, metrics, logs] = ALL.map(|vars| signal(env, &vars, &generic));
        Self {
            traces,
            metrics,
            logs,
        }
    }
}

impl Default for Otlp {
    fn default() -> Self {
        let signal = |vars: &SignalVars| OtlpSignal {
            endpoint: format!("http://localhost:4318/{}", vars.http_path),
            protocol: Protocol::HttpProtobuf,
            headers: Headers::default(),
            timeout: DEFAULT_TIMEOUT,
            compression: Compression::None,
        };
        let [traces, metrics, logs] = ALL.each_ref().map(signal);
        Self {
            traces,
            metrics,
            logs,
        }
    }
}

/// A per-signal value wins over the generic one, which wins over the
/// default. A malformed per-signal value counts as unset, so the generic
/// value applies.
fn signal(env: &mut Env<'_>, vars: &SignalVars, generic: &Generic) -> OtlpSignal {
    let protocol = env
        .parsed(vars.protocol, Protocol::parse)
        .or(generic.protocol)
        .unwrap_or_default();
    // The per-signal endpoint is used as-is; the generic one is a base URL to
    // which OTLP/HTTP appends the signal's path (gRPC has no paths).
    let endpoint = env.parsed(vars.endpoint, endpoint).unwrap_or_else(|| {
        let base = generic
            .endpoint
            .as_deref()
            .unwrap_or(protocol.default_endpoint());
        match protocol {
            Protocol::Grpc => base.to_owned(),
            // The specification lets exporters ignore a query or fragment;
            // dropping it keeps the signal path in the path.
            Protocol::HttpProtobuf => {
                let path = base.split(['?', '#']).next().unwrap_or(base);
                format!("{}/{}", path.trim_end_matches('/'), vars.http_path)
            }
        }
    });
    OtlpSignal {
        endpoint,
        protocol,
        headers: headers(env, vars.headers)
            .or_else(|| generic.headers.clone())
            .unwrap_or_default(),
        timeout: env
            .millis(vars.timeout)
            .or(generic.timeout)
            .unwrap_or(DEFAULT_TIMEOUT),
        compression: env
            .parsed(vars.compression, Compression::parse)
            .or(generic.compression)
            .unwrap_or_default(),
    }
}

/// An `http` or `https` URL with a host: the forms the specification
/// requires for both transports, and the only ones the exporters will be
/// able to connect to.
fn endpoint(raw: &str) -> Result<String, String> {
    let uri: http::Uri = raw.parse().map_err(|_| "not a url".to_owned())?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("not an http or https url".to_owned());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("url has no host".to_owned());
    }
    Ok(raw.to_owned())
}

/// A header list. Bad entries are dropped, one warning each, and the rest
/// kept: losing one header beats losing all. If none is usable the variable
/// counts as unset, so a per-signal list falls back to the generic one.
fn headers(env: &mut Env<'_>, variable: &'static str) -> Option<Headers> {
    let raw = env.get(variable)?;
    let mut headers = Vec::new();
    for (position, entry) in keyvalue::entries(&raw) {
        let problem = match entry {
            Ok((name, _)) if !keyvalue::is_token(&name) => "invalid header name".to_owned(),
            Ok((_, value)) if value.chars().any(|c| c.is_control() && c != '\t') => {
                "header value has control characters".to_owned()
            }
            Ok((name, value)) => {
                headers.push((name.to_ascii_lowercase(), value));
                continue;
            }
            Err(error) => error.to_string(),
        };
        env.warn(
            variable,
            &raw,
            format!("entry {position}: {problem}; entry dropped"),
        );
    }
    (!headers.is_empty()).then_some(Headers(headers))
}
