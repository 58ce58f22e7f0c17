//! Which destinations a client sends baggage to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which destinations the HTTP and gRPC clients send the current baggage to.
/// Baggage may carry data that must not leave the system (a tenant, a
/// user, a session); trace context goes to every destination regardless.
///
/// The default, [`internal`](Self::internal), sends it between a company's
/// own services and never to the public internet. A destination is
/// internal when its host is:
///
/// - an IP address that is loopback (`127.0.0.0/8`, `::1`), private
///   (`10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, `fc00::/7`) or
///   link-local (`169.254.0.0/16`, `fe80::/10`), IPv4-mapped IPv6 included;
/// - a single-label name, such as a Compose or Kubernetes service name
///   (`orders`, `localhost`);
/// - a name under a suffix reserved for private use: `.localhost`,
///   `.local`, `.internal`, `.home.arpa`, and Kubernetes' `.svc` and
///   `.cluster.local`.
///
/// Names are compared without case and without a trailing dot, so
/// `orders.internal.example.com` (a public name) is not internal, nor is
/// `localhost.example.com`.
///
/// ```
/// use baton::instrumentation::BaggagePolicy;
///
/// let policy = BaggagePolicy::internal()
///     .allow_hosts(["api.partner.example"])
///     .deny_hosts(["metrics.internal"]);
/// assert!(policy.allows("orders"));
/// assert!(policy.allows("10.1.2.3"));
/// assert!(policy.allows("api.partner.example"));
/// assert!(!policy.allows("metrics.internal"));
/// assert!(!policy.allows("orders.internal.example.com"));
/// assert!(!BaggagePolicy::none().allows("orders"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct BaggagePolicy {
    /// Every destination.
    all: bool,
    /// Internal destinations, as above.
    internal: bool,
    /// Exact host names (lowercase, no trailing dot).
    hosts: Vec<Box<str>>,
    /// Name suffixes, each starting with a dot.
    suffixes: Vec<Box<str>>,
    /// Never these, whatever else says.
    denied: Vec<Box<str>>,
}

/// Name suffixes reserved for private use (RFC 6761, RFC 6762, RFC 8375,
/// ICANN's `.internal`) and Kubernetes' service domains.
const INTERNAL_SUFFIXES: [&str; 6] = [
    ".localhost",
    ".local",
    ".internal",
    ".home.arpa",
    ".svc",
    ".cluster.local",
];

impl BaggagePolicy {
    /// Internal destinations only (the default): see the type's docs.
    pub fn internal() -> Self {
        BaggagePolicy {
            internal: true,
            ..Self::none()
        }
    }

    /// No destination: baggage stays in the process.
    pub fn none() -> Self {
        BaggagePolicy {
            all: false,
            internal: false,
            hosts: Vec::new(),
            suffixes: Vec::new(),
            denied: Vec::new(),
        }
    }

    /// Every destination, the public internet included.
    pub fn all() -> Self {
        BaggagePolicy {
            all: true,
            ..Self::none()
        }
    }

    /// Also these hosts (exact names or IP addresses, compared without case).
    pub fn allow_hosts<I>(mut self, hosts: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.hosts
            .extend(hosts.into_iter().map(|h| normalise(h.as_ref()).into()));
        self
    }

    /// Also every name under these suffixes: `corp.example` allows
    /// `billing.corp.example`, not `corp.example` itself.
    pub fn allow_suffixes<I>(mut self, suffixes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.suffixes.extend(suffixes.into_iter().map(|s| {
            let s = normalise(s.as_ref());
            let s = s.strip_prefix('.').unwrap_or(&s);
            format!(".{s}").into()
        }));
        self
    }

    /// Never these hosts, whatever else allows them.
    pub fn deny_hosts<I>(mut self, hosts: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.denied
            .extend(hosts.into_iter().map(|h| normalise(h.as_ref()).into()));
        self
    }

    /// Whether a request to `host` (a name or an IP address, IPv6 with or
    /// without brackets) gets the baggage.
    #[must_use]
    pub fn allows(&self, host: &str) -> bool {
        let host = normalise(host);
        if host.is_empty() || self.denied.iter().any(|d| **d == *host) {
            return false;
        }
        if self.all || self.hosts.iter().any(|h| **h == *host) {
            return true;
        }
        if self.suffixes.iter().any(|s| host.ends_with(&**s)) {
            return true;
        }
        self.internal && is_internal(&host)
    }
}

impl Default for BaggagePolicy {
    fn default() -> Self {
        Self::internal()
    }
}

/// Lowercase, without IPv6 brackets or a trailing dot.
fn normalise(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

fn is_internal(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return internal_ip(ip);
    }
    !host.contains('.') || INTERNAL_SUFFIXES.iter().any(|s| host.ends_with(s))
}

fn internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => internal_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => internal_v4(v4),
            None => internal_v6(ip),
        },
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_private() || ip.is_link_local()
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allows_internal_destinations_only() {
        // (host, gets baggage, why)
        let rows = [
            ("127.0.0.1", true, "loopback"),
            ("127.8.9.10", true, "loopback is all of 127.0.0.0/8"),
            ("::1", true, "IPv6 loopback"),
            ("[::1]", true, "bracketed, as in a URL"),
            ("10.1.2.3", true, "private, RFC 1918"),
            ("172.16.0.1", true, "private, RFC 1918"),
            ("172.31.255.255", true, "private, RFC 1918"),
            ("172.32.0.1", false, "just past 172.16.0.0/12"),
            ("192.168.1.1", true, "private, RFC 1918"),
            ("169.254.169.254", true, "link-local"),
            ("fd12:3456::1", true, "unique local, fc00::/7"),
            ("fe80::1", true, "link-local, fe80::/10"),
            ("::ffff:10.0.0.1", true, "IPv4-mapped private"),
            ("::ffff:8.8.8.8", false, "IPv4-mapped public"),
            ("8.8.8.8", false, "public IPv4"),
            ("2001:4860::8888", false, "public IPv6"),
            ("100.64.0.1", false, "shared address space is not private"),
            ("orders", true, "single label: a service name"),
            ("localhost", true, "single label"),
            ("ORDERS", true, "case does not matter"),
            ("orders.", true, "a trailing dot does not matter"),
            ("orders.internal", true, ".internal"),
            ("printer.local", true, ".local"),
            ("app.localhost", true, ".localhost"),
            ("nas.home.arpa", true, ".home.arpa"),
            ("orders.default.svc", true, ".svc"),
            ("orders.default.svc.cluster.local", true, ".cluster.local"),
            ("example.com", false, "a public name"),
            (
                "orders.internal.example.com",
                false,
                "looks internal, is public",
            ),
            ("localhost.example.com", false, "looks internal, is public"),
            (
                "10.0.0.1.example.com",
                false,
                "an address inside a public name",
            ),
            ("svc.example.com", false, "a suffix is a whole label"),
            ("evilinternal", true, "single label, whatever it says"),
            ("x.notinternal", false, "a suffix is a whole label"),
            ("", false, "no host"),
        ];
        let policy = BaggagePolicy::default();
        for (host, expected, why) in rows {
            assert_eq!(policy.allows(host), expected, "{host:?}: {why}");
        }
    }

    #[test]
    fn allow_deny_and_the_extremes() {
        let policy = BaggagePolicy::none()
            .allow_hosts(["API.Partner.example."])
            .allow_suffixes(["corp.example"]);
        assert!(policy.allows("api.partner.example"));
        assert!(policy.allows("billing.corp.example"));
        assert!(
            !policy.allows("corp.example"),
            "a suffix needs a label before it"
        );
        assert!(!policy.allows("orders"), "none: internal not included");
        let denied = BaggagePolicy::all().deny_hosts(["metrics.internal"]);
        assert!(denied.allows("example.com"));
        assert!(!denied.allows("METRICS.internal."), "deny wins");
    }
}
