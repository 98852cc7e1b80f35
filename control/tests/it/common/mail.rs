//! Real test servers for outgoing messages: an SMTP server (Debian's `python3-aiosmtpd`, run by
//! `/usr/bin/python3`, writing a Maildir) and a recording SMS gateway (`deploy/sms-gateway.py`).
//! Each runs as a child process on a free port of 127.0.0.1 and is killed on drop.
//!
//! ```ignore
//! let smtp = MailServer::start();
//! cfg.mail.smtp_url = smtp.smtp_url();
//! ... run the jobs ...
//! let mail = smtp.wait_for("jane@example.org", Duration::from_secs(10)).await;
//! let link = mail.links()[0].clone();
//! let sms = SmsGateway::start();
//! cfg.sms.url = sms.url();
//! let m = sms.wait_for("+46701234567", Duration::from_secs(10)).await;
//! ```
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Python that has `aiosmtpd` (Debian's; the `python3` on PATH may be another one).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` accepts connections (panics after `timeout`).
fn wait_port(port: u16, child: &mut Child, what: &str, timeout: Duration) {
    let end = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {st}");
        }
        if Instant::now() > end {
            panic!("{what} did not listen on {port} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The repository's root (for `deploy/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A mail read from the SMTP server's Maildir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The `To` header (decoded).
    pub to: String,
    /// The envelope recipients (`X-RcptTo`, comma separated).
    pub rcpt_to: String,
    /// The `From` header.
    pub from: String,
    /// The `Subject` header (decoded).
    pub subject: String,
    /// The text/plain part (decoded), empty when none.
    pub text: String,
    /// The text/html part (decoded), if any.
    pub html: Option<String>,
    /// The `Message-ID` header, e.g. `<id@likeness>`.
    pub message_id: String,
    /// Every header (name lower-cased, value unfolded, not decoded).
    pub headers: Vec<(String, String)>,
    /// The file it was read from.
    pub file: PathBuf,
}

impl Mail {
    /// The http(s) links in the text part (or in the HTML when there is no text), in order.
    pub fn links(&self) -> Vec<String> {
        let found = links(&self.text);
        if found.is_empty() {
            self.html.as_deref().map(links).unwrap_or_default()
        } else {
            found
        }
    }

    /// The message id without angle brackets and domain (the outbox message id).
    pub fn outbox_id(&self) -> String {
        self.message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether the mail is addressed to `to` (header or envelope; case-insensitive).
    pub fn is_to(&self, to: &str) -> bool {
        let to = to.to_ascii_lowercase();
        self.to.to_ascii_lowercase().contains(&to)
            || self.rcpt_to.to_ascii_lowercase().contains(&to)
    }
}

/// The http(s) URLs in `text`, in order (ending at white space, quotes, `<`, `>` or a closing
/// parenthesis; trailing `.`, `,`, `;` and `:` dropped; `&amp;` decoded).
pub fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("http") {
        let cand = &rest[i..];
        if !(cand.starts_with("http://") || cand.starts_with("https://")) {
            rest = &rest[i + 4..];
            continue;
        }
        let end = cand
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .unwrap_or(cand.len());
        let url = cand[..end]
            .trim_end_matches(['.', ',', ';', ':'])
            .replace("&amp;", "&");
        if !out.contains(&url) {
            out.push(url);
        }
        rest = &cand[end..];
    }
    out
}

/// A real SMTP server (aiosmtpd) writing every mail it accepts to a Maildir.
pub struct MailServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl MailServer {
    /// Starts the server on a free port with a fresh Maildir; returns once it accepts.
    pub fn start() -> Self {
        let mut s = MailServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        s.start_again();
        s
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:PORT` (plain SMTP), for `[mail] smtp_url`.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The Maildir (mails are in `new/`).
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    /// Stops the server (the port refuses connections until [`MailServer::start_again`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and Maildir (no-op when running).
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::File::create(self.dir.path().join("smtpd.log")).unwrap();
        let mut child = Command::new(SYSTEM_PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {SYSTEM_PYTHON} -m aiosmtpd (apt install python3-aiosmtpd; deploy/mail-servers.sh): {e}")
            });
        wait_port(self.port, &mut child, "aiosmtpd", Duration::from_secs(20));
        self.child = Some(child);
    }

    /// Every mail received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(self.maildir().join(sub)) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let t = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                files.push((t, e.file_name().to_string_lossy().into_owned(), p));
            }
        }
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, _, p)| {
                let raw = std::fs::read(&p).ok()?;
                let mut m = parse_mail(&raw);
                m.file = p;
                Some(m)
            })
            .collect()
    }

    /// The mails addressed to `to` so far, oldest first.
    pub fn messages_to(&self, to: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.is_to(to))
            .collect()
    }

    /// Waits (without blocking the runtime) until a mail to `to` exists and returns the newest
    /// one to it. Panics after `timeout`. (To wait for a further mail to the same address, use
    /// [`MailServer::wait_for_nth`].)
    pub async fn wait_for(&self, to: &str, timeout: Duration) -> Mail {
        self.wait_for_nth(to, 1, timeout).await
    }

    /// Waits until at least `n` mails to `to` exist and returns the newest. Panics after
    /// `timeout`.
    pub async fn wait_for_nth(&self, to: &str, n: usize, timeout: Duration) -> Mail {
        let end = Instant::now() + timeout;
        loop {
            let found = self.messages_to(to);
            if found.len() >= n {
                return found.into_iter().last().unwrap();
            }
            if Instant::now() > end {
                panic!(
                    "no mail #{n} to {to} within {timeout:?} (got {} to it, {} in all)",
                    found.len(),
                    self.messages().len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// [`MailServer::wait_for`] for synchronous code (blocks the thread).
    pub fn wait_for_blocking(&self, to: &str, timeout: Duration) -> Mail {
        let end = Instant::now() + timeout;
        loop {
            if let Some(m) = self.messages_to(to).into_iter().last() {
                return m;
            }
            if Instant::now() > end {
                panic!("no mail to {to} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The links of `mail` (see [`Mail::links`]).
    pub fn links(&self, mail: &Mail) -> Vec<String> {
        mail.links()
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- a small, tolerant MIME reader (what lettre writes: headers, multipart/alternative,
// quoted-printable or base64 text parts, RFC 2047 encoded words) ----

/// Parses a raw mail.
pub fn parse_mail(raw: &[u8]) -> Mail {
    let (headers, body) = split_headers(raw);
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut text = String::new();
    let mut html = None;
    collect_parts(&headers, body, &mut text, &mut html);
    Mail {
        to: decode_words(&get("to")),
        rcpt_to: get("x-rcptto"),
        from: decode_words(&get("from")),
        subject: decode_words(&get("subject")),
        text,
        html,
        message_id: get("message-id"),
        headers,
        file: PathBuf::new(),
    }
}

fn split_headers(raw: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match find(raw, b"\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => (raw, &raw[raw.len()..]),
        },
    };
    let head = String::from_utf8_lossy(head).replace("\r\n", "\n");
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (headers, body)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `param` of a header value like `multipart/alternative; boundary="xyz"`.
fn header_param(value: &str, param: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(param)).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn collect_parts(
    headers: &[(String, String)],
    body: &[u8],
    text: &mut String,
    html: &mut Option<String>,
) {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ctype = get("content-type");
    let lower = ctype.to_ascii_lowercase();
    if lower.starts_with("multipart/") {
        let Some(boundary) = header_param(&ctype, "boundary") else {
            return;
        };
        let delim = format!("--{boundary}");
        let body = String::from_utf8_lossy(body).replace("\r\n", "\n");
        for part in body.split(&delim).skip(1) {
            if part.starts_with("--") {
                break;
            }
            let part = part.strip_prefix('\n').unwrap_or(part);
            let (h, b) = split_headers(part.as_bytes());
            let b = b.strip_suffix(b"\n").unwrap_or(b);
            collect_parts(&h, b, text, html);
        }
        return;
    }
    let decoded = decode_body(&get("content-transfer-encoding"), body);
    if lower.starts_with("text/html") {
        if html.is_none() {
            *html = Some(decoded);
        }
    } else if (lower.is_empty() || lower.starts_with("text/plain")) && text.is_empty() {
        *text = decoded;
    }
}

fn decode_body(encoding: &str, body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body).replace("\r\n", "\n");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "quoted-printable" => {
            String::from_utf8_lossy(&decode_quoted_printable(&body, false)).into_owned()
        }
        "base64" => String::from_utf8_lossy(&decode_base64(&body)).into_owned(),
        _ => body,
    }
}

/// Quoted-printable (`=XX`, soft line breaks `=\n`; `_` as space in encoded words).
fn decode_quoted_printable(s: &str, underscore_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'=' if i + 1 < b.len() && b[i + 1] == b'\n' => i += 2,
            b'=' if i + 2 < b.len() && b[i + 1] == b'\r' && b[i + 2] == b'\n' => i += 3,
            b'=' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if underscore_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Standard base64, white space ignored, padding optional.
fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) in a header value;
/// white space between two encoded words is dropped.
pub fn decode_words(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let after = &rest[start + 2..];
        let parsed = (|| {
            let (_charset, r) = after.split_once('?')?;
            let (enc, r) = r.split_once('?')?;
            let end = r.find("?=")?;
            let data = &r[..end];
            let bytes = match enc.to_ascii_lowercase().as_str() {
                "b" => decode_base64(data),
                "q" => decode_quoted_printable(data, true),
                _ => return None,
            };
            let consumed = after.len() - r.len() + end + 2;
            Some((String::from_utf8_lossy(&bytes).into_owned(), consumed))
        })();
        match parsed {
            Some((word, consumed)) => {
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&word);
                rest = &after[consumed..];
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = after;
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One SMS the gateway received.
#[derive(Debug, Clone, PartialEq)]
pub struct Sms {
    /// The gateway's id for it (`sms-<n>`).
    pub id: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// The recipient: the body's `to` field (JSON or form), else empty.
    pub to: String,
    /// The text: the body's `text` field (JSON or form), else the whole body.
    pub text: String,
    /// The raw body.
    pub body: String,
    /// Request headers (lower-case names).
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The body as JSON, when it was JSON.
    pub json: serde_json::Value,
    /// The body as a form, when it was a form.
    pub form: serde_json::Value,
}

impl Sms {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.as_str())
    }

    /// The http(s) links in the text.
    pub fn links(&self) -> Vec<String> {
        links(&self.text)
    }

    /// A field of the body (JSON or form), as text.
    pub fn field(&self, name: &str) -> Option<String> {
        [&self.json, &self.form]
            .into_iter()
            .find_map(|v| v.get(name))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }
}

/// A local HTTP SMS gateway (`deploy/sms-gateway.py`) recording every message.
pub struct SmsGateway {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmsGateway {
    /// Starts the gateway on a free port; returns once it accepts.
    pub fn start() -> Self {
        let mut g = SmsGateway {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        g.start_again();
        g
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/sms`, for `[sms] url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/sms", self.port)
    }

    /// The JSON-lines file it records into.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("sms.jsonl")
    }

    /// Makes the gateway answer 503 (`true`) or 200 (`false`) from now on.
    pub fn set_failing(&self, failing: bool) {
        let f = self.dir.path().join("fail");
        if failing {
            std::fs::write(f, b"1").unwrap();
        } else {
            let _ = std::fs::remove_file(f);
        }
    }

    /// Stops the gateway.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and log (no-op when running).
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let script = repo_root().join("deploy/sms-gateway.py");
        let out = std::fs::File::create(self.dir.path().join("gateway.out")).unwrap();
        let mut child = Command::new(SYSTEM_PYTHON)
            .arg(script)
            .args(["--port", &self.port.to_string()])
            .arg("--log")
            .arg(self.log())
            .arg("--fail-file")
            .arg(self.dir.path().join("fail"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        wait_port(
            self.port,
            &mut child,
            "sms-gateway.py",
            Duration::from_secs(20),
        );
        self.child = Some(child);
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Sms> {
        let Ok(s) = std::fs::read_to_string(self.log()) else {
            return Vec::new();
        };
        s.lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
                let json = v.get("json").cloned().unwrap_or(serde_json::Value::Null);
                let form = v.get("form").cloned().unwrap_or(serde_json::Value::Null);
                let field = |name: &str| {
                    [&json, &form]
                        .into_iter()
                        .find_map(|x| x.get(name).and_then(|f| f.as_str()))
                        .map(str::to_string)
                };
                Sms {
                    id: s("id"),
                    method: s("method"),
                    path: s("path"),
                    to: field("to").unwrap_or_default(),
                    text: field("text").unwrap_or_else(|| s("body")),
                    body: s("body"),
                    headers: v
                        .get("headers")
                        .and_then(|h| h.as_object())
                        .cloned()
                        .unwrap_or_default(),
                    json,
                    form,
                }
            })
            .collect()
    }

    /// The messages to `to` so far (the body's `to` field, or the raw body containing it).
    pub fn messages_to(&self, to: &str) -> Vec<Sms> {
        self.messages()
            .into_iter()
            .filter(|m| m.to == to || (m.to.is_empty() && m.body.contains(to)))
            .collect()
    }

    /// Waits (without blocking the runtime) for a message to `to`; returns the newest. Panics
    /// after `timeout`.
    pub async fn wait_for(&self, to: &str, timeout: Duration) -> Sms {
        self.wait_for_nth(to, 1, timeout).await
    }

    /// Waits until at least `n` messages to `to` exist; returns the newest.
    pub async fn wait_for_nth(&self, to: &str, n: usize, timeout: Duration) -> Sms {
        let end = Instant::now() + timeout;
        loop {
            let found = self.messages_to(to);
            if found.len() >= n {
                return found.into_iter().last().unwrap();
            }
            if Instant::now() > end {
                panic!(
                    "no SMS #{n} to {to} within {timeout:?} (got {})",
                    found.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmsGateway {
    fn drop(&mut self) {
        self.stop();
    }
}
