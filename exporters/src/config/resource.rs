//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.

use std::fmt;

use opentelemetry::KeyValue;
use opentelemetry_sdk::resource::TelemetryResourceDetector;

use super::env::Env;
use super::keyvalue;

const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const SERVICE_NAME_KEY: &str = "service.name";

/// The resource described by the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resource {
    /// `OTEL_SERVICE_NAME`; it takes precedence over a `service.name` in
    /// [`attributes`](Self::attributes).
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in order, one entry per key (the
    /// last one listed wins).
    pub attributes: Vec<(String, String)>,
}

impl Resource {
    pub(crate) fn read(env: &mut Env<'_>) -> Self {
        Self {
            service_name: env.get(SERVICE_NAME),
            attributes: attributes(env),
        }
    }

    /// The `service.name` the resource gets: `OTEL_SERVICE_NAME`, else the
    /// attribute; `None` means the specification's `unknown_service`
    /// default, which the conversion to the SDK resource fills in.
    pub fn service_name(&self) -> Option<&str> {
        self.service_name.as_deref().or_else(|| {
            self.attributes
                .iter()
                .find(|(k, _)| k == SERVICE_NAME_KEY)
                .map(|(_, v)| v.as_str())
        })
    }
}

/// The specification: on any error "the entire environment variable value
/// SHOULD be discarded", so one bad entry discards all of them.
fn attributes(env: &mut Env<'_>) -> Vec<(String, String)> {
    let Some(raw) = env.get(RESOURCE_ATTRIBUTES) else {
        return Vec::new();
    };
    let mut attributes: Vec<(String, String)> = Vec::new();
    for (position, entry) in keyvalue::entries(&raw) {
        match entry {
            Ok((key, value)) => {
                attributes.retain(|(k, _)| *k != key);
                attributes.push((key, value));
            }
            Err(error) => {
                env.warn(
                    RESOURCE_ATTRIBUTES,
                    &raw,
                    format!("entry {position}: {error}; the whole value is ignored"),
                );
                return Vec::new();
            }
        }
    }
    attributes
}

/// The SDK resource: the `telemetry.sdk.*` attributes, then the attributes,
/// then `service.name` (defaulting to `unknown_service:<executable>` like
/// the SDK's own detector). Built from scratch rather than with
/// `Resource::builder()`, whose detectors would read the process
/// environment again and bypass the injected source.
impl From<&Resource> for opentelemetry_sdk::Resource {
    fn from(resource: &Resource) -> Self {
        let service_name = resource
            .service_name()
            .map_or_else(default_service_name, str::to_owned);
        opentelemetry_sdk::Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(
                resource
                    .attributes
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .with_service_name(service_name)
            .build()
    }
}

fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_name()?.to_str().map(str::to_owned))
        .map_or_else(
            || "unknown_service".to_owned(),
            |exe| format!("unknown_service:{exe}"),
        )
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SERVICE_NAME_KEY}={}",
            self.service_name().unwrap_or("unknown_service")
        )?;
        for (key, value) in &self.attributes {
            if key != SERVICE_NAME_KEY {
                write!(f, ", {key}={value}")?;
            }
        }
        Ok(())
    }
}
