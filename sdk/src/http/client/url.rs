//! `url.full` without secrets, as the conventions require.

use reqwest::Url;

const REDACTED: &str = "REDACTED";

/// Query parameters whose values the conventions redact (matched case-sensitively).
const SENSITIVE_QUERY_KEYS: [&str; 5] = [
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "sig",
    "X-Goog-Signature",
];

/// `url` for `url.full`: user name and password replaced by `REDACTED`, as
/// are the values of the signature query parameters the conventions list.
pub(super) fn full(url: &Url) -> String {
    let has_credentials = !url.username().is_empty() || url.password().is_some();
    let sensitive_query = url.query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| SENSITIVE_QUERY_KEYS.contains(&key(pair)))
    });
    if !has_credentials && !sensitive_query {
        return url.as_str().to_owned();
    }
    let mut url = url.clone();
    if has_credentials {
        // Both fail only for URLs that cannot carry credentials, which these do.
        let _ = url.set_username(REDACTED);
        let _ = url.set_password(Some(REDACTED));
    }
    if sensitive_query {
        let query = url.query().map(redact_query);
        url.set_query(query.as_deref());
    }
    url.into()
}

fn key(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(key, _)| key)
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let key = key(pair);
            if SENSITIVE_QUERY_KEYS.contains(&key) {
                format!("{key}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

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
