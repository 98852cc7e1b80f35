//! A minimal HTTP/1.1 client over one keep-alive loopback connection (hyper), as a closed-loop
//! client needs: send, wait for the whole answer, send the next.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The server and the credentials every request carries.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    /// `Bearer lk_...`.
    pub bearer: String,
}

impl Target {
    /// From `http://host:port` and an API token.
    pub fn parse(base: &str, token: &str) -> Result<Self> {
        let Some(rest) = base.strip_prefix("http://") else {
            bail!("--url must start with http:// (loopback only, no TLS): {base}");
        };
        let authority = rest.trim_end_matches('/').to_string();
        if authority.is_empty() || authority.contains('/') {
            bail!("--url must be http://host:port without a path: {base}");
        }
        Ok(Self {
            authority,
            bearer: format!("Bearer {token}"),
        })
    }
}

/// One answer.
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
    /// `Set-Cookie` values.
    pub cookies: Vec<String>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "answer {} is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            )
        })
    }

    /// The error code of a JSON error body (`{"error":{"code":..}}`), if any.
    pub fn error_code(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into())
    }

    /// Fails unless the status is `want`.
    pub fn expect_status(self, want: u16, what: &str) -> Result<Self> {
        if self.status.as_u16() != want {
            bail!(
                "{what}: HTTP {} (wanted {want}): {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            );
        }
        Ok(self)
    }
}

/// One keep-alive connection; reconnects after a transport error.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// Extra request headers (session login uses a cookie and CSRF token instead of the bearer).
#[derive(Default, Clone)]
pub struct Extra {
    /// `Cookie` header.
    pub cookie: Option<String>,
    /// `X-CSRF-Token` header.
    pub csrf: Option<String>,
    /// Leave out the bearer token.
    pub no_bearer: bool,
}

impl Conn {
    /// A connection to `target` (opened on first use).
    pub fn new(target: &Target) -> Self {
        Self {
            target: target.clone(),
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(&self.target.authority)
                .await
                .with_context(|| format!("connecting to {}", self.target.authority))?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .context("HTTP/1.1 handshake")?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().context("no connection")
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
        extra: &Extra,
    ) -> Result<Answer> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.target.authority.as_str());
        if !extra.no_bearer {
            b = b.header(AUTHORIZATION, self.target.bearer.as_str());
        }
        if let Some(c) = &extra.cookie {
            b = b.header(COOKIE, c.as_str());
        }
        if let Some(t) = &extra.csrf {
            b = b.header("x-csrf-token", t.as_str());
        }
        let req = match body {
            Some((ct, bytes)) => b.header(CONTENT_TYPE, ct).body(Full::new(bytes))?,
            None => b.body(Full::new(Bytes::new()))?,
        };
        let sender = self.connect().await?;
        sender.ready().await.context("connection not ready")?;
        let res = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e).context("sending the request");
            }
        };
        let status = res.status();
        let cookies = res
            .headers()
            .get_all(hyper::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let body = match res.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                self.sender = None;
                return Err(e).context("reading the answer");
            }
        };
        Ok(Answer {
            status,
            body,
            cookies,
        })
    }

    /// GET with the bearer token.
    pub async fn get(&mut self, path: &str) -> Result<Answer> {
        self.send(Method::GET, path, None, &Extra::default()).await
    }

    /// POST/PUT of a JSON body with the bearer token.
    pub async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer> {
        let bytes = Bytes::from(serde_json::to_vec(body)?);
        self.send(
            method,
            path,
            Some(("application/json", bytes)),
            &Extra::default(),
        )
        .await
    }
}
