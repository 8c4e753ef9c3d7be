//! A minimal HTTP/1.1 client for the harness's buyers: one request per connection, a deadline
//! on the whole exchange, and every failure reported as text (the history records it as
//! `Unknown`). Small on purpose: the harness must not depend on a client library's retries
//! or pooling, which would hide what the server really answered.

use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer: the HTTP status and the JSON body (`Null` if it had none or was not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Reply {
    /// The envelope's `code` (0 on success).
    pub fn code(&self) -> u32 {
        self.body["code"].as_u64().unwrap_or(u64::from(u32::MAX)) as u32
    }

    /// The envelope's `data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
}

/// Sends one request to `addr` and reads the whole answer within `deadline`.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
    deadline: Duration,
) -> Result<Reply, String> {
    tokio::time::timeout(deadline, exchange(addr, method, path, token, headers, body))
        .await
        .map_err(|_| format!("no answer within {deadline:?}"))?
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Reply, String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .await
        .map_err(|e| format!("read: {e}"))?;
    parse(&raw)
}

/// Parses a whole HTTP/1.1 answer (the connection was closed after it).
pub fn parse(raw: &[u8]) -> Result<Reply, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {} bytes", raw.len()))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| format!("head: {e}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Reply {
        status,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size = std::str::from_utf8(&b[..line])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .ok_or("bad chunk size")?;
        b = &b[line + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let r = parse(
            b"HTTP/1.1 202 Accepted\r\ncontent-length: 27\r\n\r\n{\"code\":0,\"data\":{\"a\":1}}  ",
        )
        .unwrap();
        assert_eq!((r.status, r.code()), (202, 0));
        assert_eq!(r.data()["a"], 1);
        let r = parse(
            b"HTTP/1.1 409 Conflict\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"cod\r\n8\r\ne\":3004}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.code()), (409, 3004));
        assert!(parse(b"HTTP/1.1 200").is_err());
    }
}
