//! Keeps secrets out of everything featurepipe prints (docs/logs.md, "Secrets").
//!
//! Applied to every `[DP]` value and to the final error sentence, so an SDK error that
//! echoes a URL or a credential cannot leak it.

/// Environment variables whose values must never be printed.
const SECRET_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ACCESS_KEY_ID",
];

/// Replaces known secret values, URL passwords and signed-URL queries with `***`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for var in SECRET_VARS {
        if let Ok(secret) = std::env::var(var) {
            if secret.len() >= 4 && out.contains(&secret) {
                out = out.replace(&secret, "***");
            }
        }
    }
    redact_url_parts(&out)
}

/// `scheme://user:pass@host` -> `scheme://***@host`; `?X-Amz-...` query -> `?***`.
fn redact_url_parts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        let authority_end = url.find('/').unwrap_or(url.len());
        let mut url = match url[..authority_end].rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_string(),
        };
        if let Some(q) = url.find('?') {
            let query = url[q..].to_ascii_lowercase();
            if ["signature", "credential", "token", "x-amz-"]
                .iter()
                .any(|s| query.contains(s))
            {
                url.truncate(q);
                url.push_str("?***");
            }
        }
        out.push_str(&url);
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_url_passwords_and_signatures() {
        assert_eq!(
            redact_url_parts("connect to http://admin:hunter2@minio:9000/x failed"),
            "connect to http://***@minio:9000/x failed"
        );
        assert_eq!(
            redact_url_parts("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=d"),
            "https://b.s3.amazonaws.com/k?***"
        );
        assert_eq!(
            redact_url_parts("s3://bucket/key.csv"),
            "s3://bucket/key.csv"
        );
    }
}
