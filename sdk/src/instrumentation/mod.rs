//! What every Baton middleware shares: one set of options, with the same
//! names and meaning on the HTTP server layer, the HTTP client middleware
//! and the gRPC server and client layers.
//!
//! | option | on | meaning |
//! |---|---|---|
//! | `with_tracer_provider(&p)` | all | spans go to `p` instead of the [global](crate::global) provider |
//! | `with_meter_provider(&p)` | all | RED metrics go to `p` instead of the global provider |
//! | `with_propagator(p)` | all | extract or inject with `p` instead of the global propagator |
//! | `with_filter(f)` | all | a request for which `f` returns `false` is not recorded: no span, no metrics; its context still flows |
//! | `with_span_name(f)` | all | the span is named `f(default_name, request)` |
//! | `with_server_address(host, port)` | all | `server.address` and `server.port` of every request (the peer for a client, this server for a server), instead of what the request says |
//! | `public_endpoint()` | servers | callers are untrusted: a new trace linked to theirs, their baggage dropped |
//! | `with_baggage_policy(p)` | clients | which destinations get the current baggage ([`BaggagePolicy`], internal ones by default); trace context goes everywhere |
//!
//! Providers and the propagator are looked up per request unless given
//! (see [`global`](crate::global)), so the order of setup does not matter.
//!
//! ```
//! use baton::grpc::server::GrpcServerLayer;
//! use baton::http::client::HttpClientMiddleware;
//! use baton::instrumentation::BaggagePolicy;
//!
//! // Health checks are not worth a span.
//! let server = GrpcServerLayer::new().with_filter(|request| !request.is_grpc_health_check());
//! // Baggage to our services and to the partner's API, nowhere else.
//! let client = HttpClientMiddleware::new()
//!     .with_baggage_policy(BaggagePolicy::internal().allow_hosts(["api.partner.example"]))
//!     .client(reqwest::Client::builder())
//!     .expect("a client");
//! # drop((server, client));
//! ```

mod address;
mod baggage_policy;
mod request;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use baton_propagators::Propagator;
use opentelemetry::metrics::Meter;

pub(crate) use address::Address;
pub use baggage_policy::BaggagePolicy;
pub use request::RequestView;
#[cfg(feature = "http-server")]
pub(crate) use request::{HostPort, split_host};

use crate::global::Snapshot;
use crate::tracer::{LayerTracer, StartSpan};

/// Decides whether a request is recorded.
pub(crate) type Filter = Arc<dyn Fn(&RequestView<'_>) -> bool + Send + Sync>;
/// Names a request's span from Baton's default name and the request.
pub(crate) type SpanNamer = Arc<dyn Fn(&str, &RequestView<'_>) -> String + Send + Sync>;

/// One kind of middleware: what its instruments are and where the global
/// ones are kept.
pub(crate) trait Kind: Send + Sync + 'static {
    type Instruments: Clone + Send + Sync + fmt::Debug + 'static;
    fn build(meter: &Meter) -> Self::Instruments;
    fn slot(snapshot: &Snapshot) -> &OnceLock<Self::Instruments>;
}

/// The options of one middleware of kind `K`; `None` means the global one.
pub(crate) struct Options<K: Kind> {
    pub(crate) tracer: Option<LayerTracer>,
    pub(crate) instruments: Option<K::Instruments>,
    pub(crate) propagator: Option<Arc<dyn Propagator>>,
    pub(crate) filter: Option<Filter>,
    pub(crate) span_name: Option<SpanNamer>,
    pub(crate) server: Option<Address>,
    pub(crate) public: bool,
    pub(crate) baggage: BaggagePolicy,
}

/// What a request records and propagates with, once looked up.
pub(crate) struct Resolved<'a, K: Kind> {
    pub(crate) tracer: &'a dyn StartSpan,
    pub(crate) instruments: &'a K::Instruments,
    pub(crate) propagator: &'a dyn Propagator,
}

impl<K: Kind> Options<K> {
    pub(crate) fn new() -> Self {
        Options {
            tracer: None,
            instruments: None,
            propagator: None,
            filter: None,
            span_name: None,
            server: None,
            public: false,
            baggage: BaggagePolicy::default(),
        }
    }

    /// Calls `f` with this middleware's tracer, instruments and propagator,
    /// the global ones where it has none of its own.
    pub(crate) fn with<R>(&self, f: impl FnOnce(Resolved<'_, K>) -> R) -> R {
        if let (Some(tracer), Some(instruments), Some(propagator)) =
            (&self.tracer, &self.instruments, &self.propagator)
        {
            return f(Resolved {
                tracer: &**tracer,
                instruments,
                propagator: &**propagator,
            });
        }
        crate::global::with(|global| {
            f(Resolved {
                tracer: self.tracer.as_deref().unwrap_or(&*global.tracer),
                instruments: match &self.instruments {
                    Some(instruments) => instruments,
                    None => global.instruments::<K>(),
                },
                propagator: self.propagator.as_deref().unwrap_or(&*global.propagator),
            })
        })
    }

    /// Whether `request` is recorded.
    pub(crate) fn records(&self, request: &RequestView<'_>) -> bool {
        self.filter.as_ref().is_none_or(|keep| keep(request))
    }

    /// The span name of `request`: `default`, unless a formatter is set.
    pub(crate) fn span_name(
        &self,
        default: Cow<'static, str>,
        request: &RequestView<'_>,
    ) -> Cow<'static, str> {
        match &self.span_name {
            Some(name) => Cow::Owned(name(&default, request)),
            None => default,
        }
    }
}

impl<K: Kind> Clone for Options<K> {
    fn clone(&self) -> Self {
        Options {
            tracer: self.tracer.clone(),
            instruments: self.instruments.clone(),
            propagator: self.propagator.clone(),
            filter: self.filter.clone(),
            span_name: self.span_name.clone(),
            server: self.server.clone(),
            public: self.public,
            baggage: self.baggage.clone(),
        }
    }
}

impl<K: Kind> fmt::Debug for Options<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let own = |set: bool| if set { "own" } else { "global" };
        f.debug_struct("Options")
            .field("tracer", &own(self.tracer.is_some()))
            .field("meter", &own(self.instruments.is_some()))
            .field("propagator", &own(self.propagator.is_some()))
            .field("filter", &self.filter.is_some())
            .field("span_name", &self.span_name.is_some())
            .field("server", &self.server)
            .field("public", &self.public)
            .field("baggage", &self.baggage)
            .finish()
    }
}

/// The builder methods every middleware has, written once: each type has
/// an `options: Options<K>` field, `K` the macro's argument.
macro_rules! options {
    ($kind:ty) => {
        /// Records spans with `provider` instead of the [global](crate::global) one.
        #[must_use]
        pub fn with_tracer_provider<P>(mut self, provider: &P) -> Self
        where
            P: opentelemetry::trace::TracerProvider,
            P::Tracer: Send + Sync + 'static,
            <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
        {
            self.options.tracer = Some(crate::tracer::from_provider(provider));
            self
        }

        /// Records metrics with `provider` instead of the [global](crate::global) one.
        #[must_use]
        pub fn with_meter_provider(
            mut self,
            provider: &impl opentelemetry::metrics::MeterProvider,
        ) -> Self {
            let meter = provider.meter_with_scope(crate::tracer::scope());
            self.options.instruments = Some(<$kind as crate::instrumentation::Kind>::build(&meter));
            self
        }

        /// Extracts or injects with `propagator` instead of the
        /// [global](crate::global) one.
        #[must_use]
        pub fn with_propagator(
            mut self,
            propagator: impl baton_propagators::Propagator + 'static,
        ) -> Self {
            self.options.propagator = Some(std::sync::Arc::new(propagator));
            self
        }

        /// Leaves out of the telemetry every request for which `filter`
        /// returns `false` (health checks, say): no span, no metrics. Its
        /// context still flows: a server extracts it, a client injects it.
        #[must_use]
        pub fn with_filter(
            mut self,
            filter: impl Fn(&crate::instrumentation::RequestView<'_>) -> bool + Send + Sync + 'static,
        ) -> Self {
            self.options.filter = Some(std::sync::Arc::new(filter));
            self
        }

        /// Names each span `name(default, request)`, where `default` is the
        /// name Baton would give it. Keep the result low-cardinality: a
        /// span name must not carry ids.
        #[must_use]
        pub fn with_span_name(
            mut self,
            name: impl Fn(&str, &crate::instrumentation::RequestView<'_>) -> String
            + Send
            + Sync
            + 'static,
        ) -> Self {
            self.options.span_name = Some(std::sync::Arc::new(name));
            self
        }

        /// Records `server.address` `host` and `server.port` `port` on every
        /// request instead of what the request says: the peer for a client,
        /// this server's public name for a server.
        #[must_use]
        pub fn with_server_address(mut self, host: impl AsRef<str>, port: u16) -> Self {
            self.options.server = Some(crate::instrumentation::Address::configured(
                host.as_ref(),
                Some(port),
            ));
            self
        }
    };
}
pub(crate) use options;

/// The builder methods of the server middleware.
#[cfg(any(feature = "http-server", feature = "tonic"))]
macro_rules! server_options {
    () => {
        /// Treats callers as untrusted, for an endpoint open to the
        /// internet: each request starts a new trace whose span *links* to
        /// the incoming span context instead of being its child, and
        /// incoming baggage is dropped (anyone could have written it). The
        /// incoming span context stays readable as
        /// [`remote_parent`](crate::trace::remote_parent). The request id
        /// is still reused when valid, since
        /// [`RequestId::parse`](crate::request_id::RequestId::parse) only
        /// accepts safe ids.
        #[must_use]
        pub fn public_endpoint(mut self) -> Self {
            self.options.public = true;
            self
        }
    };
}
#[cfg(any(feature = "http-server", feature = "tonic"))]
pub(crate) use server_options;

/// The builder methods of the client middleware.
#[cfg(any(feature = "_http-client", feature = "tonic"))]
macro_rules! client_options {
    () => {
        /// Which destinations get the current baggage: see
        /// [`BaggagePolicy`](crate::instrumentation::BaggagePolicy)
        /// (internal destinations by default). Trace context goes to every
        /// destination.
        #[must_use]
        pub fn with_baggage_policy(
            mut self,
            policy: crate::instrumentation::BaggagePolicy,
        ) -> Self {
            self.options.baggage = policy;
            self
        }
    };
}
#[cfg(any(feature = "_http-client", feature = "tonic"))]
pub(crate) use client_options;

/// The constructor and accessors every middleware's tower service has, as
/// tower's own middleware do: `new`, `get_ref`, `get_mut`, `into_inner`.
/// The service holds `inner` and its layer, shared, as `layer`.
#[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
macro_rules! service_accessors {
    ($service:ident, $layer:ident) => {
        impl<S> $service<S> {
            #[doc = concat!("Wraps `inner` with `layer`'s configuration, as [`", stringify!($layer), "`] does.")]
            pub fn new(inner: S, layer: $layer) -> Self {
                $service {
                    inner,
                    layer: std::sync::Arc::new(layer),
                }
            }

            /// The inner service.
            pub fn get_ref(&self) -> &S {
                &self.inner
            }

            /// The inner service, mutably.
            pub fn get_mut(&mut self) -> &mut S {
                &mut self.inner
            }

            /// Unwraps the inner service.
            pub fn into_inner(self) -> S {
                self.inner
            }
        }
    };
}
#[cfg(any(feature = "http-server", feature = "http-client", feature = "tonic"))]
pub(crate) use service_accessors;
