//! The one small HTTP client behind the Pushgateway push and the OpenLineage transport:
//! hyper-util's client with hyper-rustls (both already in the tree through the AWS SDK),
//! HTTP/1.1, `http://` and `https://` (the system's root certificates), and one bound on
//! the whole exchange, connection included. No proxy support.

use std::time::Duration;

use bytes::Bytes;
pub use http::Method;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What the server answered: status code and the start of the body (for the warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The longest reply body kept for a warning.
const BODY_KEPT: usize = 300;

/// Sends one request and reads the reply, all within `timeout`. The error is one
/// sentence for a warning.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> Result<Reply, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a URL: {e}"))?;
    let mut request = Request::builder().method(method).uri(uri.clone());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("cannot build a request for {url}: {e}"))?;
    let exchange = async {
        match uri.scheme_str() {
            Some("http") => {
                let mut plain = HttpConnector::new();
                plain.set_connect_timeout(Some(timeout));
                exchange(plain, request).await
            }
            Some("https") => {
                let tls = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| format!("no TLS root certificates for {url}: {e}"))?
                    .https_only()
                    .enable_http1()
                    .build();
                exchange(tls, request).await
            }
            _ => Err(format!(
                "{url}: only http:// and https:// URLs are supported"
            )),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result.map_err(|e| format!("{url}: {e}")),
        Err(_) => Err(format!(
            "{url}: no answer within {} s",
            timeout.as_secs_f64()
        )),
    }
}

async fn exchange<C>(connector: C, request: Request<Full<Bytes>>) -> Result<Reply, String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    let response = client.request(request).await.map_err(describe)?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let mut text = String::from_utf8_lossy(&body[..body.len().min(BODY_KEPT)]).into_owned();
    text.truncate(text.trim_end().len());
    Ok(Reply { status, body: text })
}

/// hyper-util's error with its cause (the bare error says only "client error (Connect)").
fn describe(e: hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
