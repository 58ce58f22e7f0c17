//! `url.full` without secrets, as the conventions require.

#[cfg(feature = "reqwest")]
use std::borrow::Cow;

#[cfg(feature = "reqwest")]
use reqwest::Url;

use crate::http::semconv::{REDACTED, redact_query};

/// `uri` for `url.full`, redacted as a URL is. A URI without an authority
/// (not absolute) is written as its path and query.
#[cfg(feature = "http-client")]
pub(super) fn full_uri(uri: &http::Uri) -> String {
    let path = uri.path();
    let query = match uri.query().map(redact_query) {
        Some(query) => format!("?{query}"),
        None => String::new(),
    };
    let Some(authority) = uri.authority() else {
        return format!("{path}{query}");
    };
    let (credentials, host_port) = match authority.as_str().rsplit_once('@') {
        // Both parts, as for a URL, whichever were given.
        Some((_, host_port)) => (format!("{REDACTED}:{REDACTED}@"), host_port),
        None => (String::new(), authority.as_str()),
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    format!("{scheme}://{credentials}{host_port}{path}{query}")
}

#[cfg(feature = "reqwest")]
/// `url` for `url.full`: user name and password replaced by `REDACTED`, as
/// are the values of the signature query parameters the conventions list.
pub(super) fn full(url: &Url) -> String {
    let has_credentials = !url.username().is_empty() || url.password().is_some();
    let redacted_query = match url.query().map(redact_query) {
        Some(Cow::Owned(query)) => Some(query),
        _ => None,
    };
    if !has_credentials && redacted_query.is_none() {
        return url.as_str().to_owned();
    }
    let mut url = url.clone();
    if has_credentials {
        // Both fail only for URLs that cannot carry credentials, which these do.
        let _ = url.set_username(REDACTED);
        let _ = url.set_password(Some(REDACTED));
    }
    if let Some(query) = redacted_query {
        url.set_query(Some(&query));
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "http-client")]
    #[test]
    fn secrets_in_uris_are_redacted_and_the_rest_kept() {
        // (input, url.full)
        let rows = [
            (
                "http://example.com:8080/a?b=1",
                "http://example.com:8080/a?b=1",
            ),
            (
                "https://user:pw@example.com/",
                "https://REDACTED:REDACTED@example.com/",
            ),
            (
                "http://example.com/o?sig=abc&c=d",
                "http://example.com/o?sig=REDACTED&c=d",
            ),
            ("/relative?x=1", "/relative?x=1"),
        ];
        for (input, expected) in rows {
            let uri: http::Uri = input.parse().expect("valid uri");
            assert_eq!(full_uri(&uri), expected, "{input}");
        }
    }

    #[cfg(feature = "reqwest")]
    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        // (input, url.full)
        let rows = [
            ("http://example.com/a?b=1#f", "http://example.com/a?b=1#f"),
            (
                "https://user:pw@example.com/",
                "https://REDACTED:REDACTED@example.com/",
            ),
            (
                "https://user@example.com/",
                "https://REDACTED:REDACTED@example.com/",
            ),
            (
                "https://example.com/o?color=blue&sig=abc&X-Amz-Signature=x&x-amz-signature=kept",
                "https://example.com/o?color=blue&sig=REDACTED&X-Amz-Signature=REDACTED&x-amz-signature=kept",
            ),
            (
                "https://example.com/o?sig",
                "https://example.com/o?sig=REDACTED",
            ),
        ];
        for (input, expected) in rows {
            let url = Url::parse(input).expect("valid url");
            assert_eq!(full(&url), expected, "{input}");
        }
    }
}
