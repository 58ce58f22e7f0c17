//! `url.full` without secrets, as the conventions require.

use std::borrow::Cow;

use reqwest::Url;

use crate::http::semconv::{REDACTED, redact_query};

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
