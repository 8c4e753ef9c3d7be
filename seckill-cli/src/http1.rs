//! The bench's load connection: HTTP/1.1 with keep-alive over one TCP stream, each request
//! built once and written whole in one `write`.
//!
//! The bench's setup calls go through `ureq`, but its load does not: `ureq` writes a request's
//! head and body in two writes, so a `POST` costs the server an extra segment, wake-up and read
//! that a `GET /health` does not, and the bench would count its own client's habit as the
//! server's cost (measured: the client's CPU per buy was about twice its CPU per health check).
//! A browser or a load balancer sends a small request in one segment; so does this.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Where the server is: `host:port` of an `http://` base URL.
pub fn authority(base: &str) -> Result<String, String> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("the bench speaks plain HTTP/1.1: expected http://…, got {base}"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(format!("no host in {base}"));
    }
    Ok(if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:80")
    })
}

/// A request's bytes: head and body together.
pub fn request(
    method: &str,
    authority: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: {authority}\r\naccept: */*\r\n");
    if let Some(t) = token {
        r.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        r.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        r.push_str("\r\n");
    }
    r.into_bytes()
}

/// An answer: the HTTP status and the envelope's `code` (when the body has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The envelope's `code`.
    pub code: Option<u64>,
}

/// One kept-alive connection; it reconnects on the next request after a failure or a
/// `connection: close`.
pub struct Conn {
    authority: String,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    /// A connection to `authority` (connected on first use).
    pub fn new(authority: &str, timeout: Duration) -> Self {
        Self {
            authority: authority.to_string(),
            timeout,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads its whole answer. An error drops the connection (a request
    /// is never sent twice).
    pub fn send(&mut self, request: &[u8]) -> io::Result<Answer> {
        let r = self.exchange(request);
        if !matches!(r, Ok((_, true))) {
            self.stream = None;
        }
        r.map(|(a, _)| a)
    }

    /// The answer, and whether the connection may be kept.
    fn exchange(&mut self, request: &[u8]) -> io::Result<(Answer, bool)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.authority)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            self.stream = Some(s);
        }
        let s = self.stream.as_mut().expect("connected above");
        s.write_all(request)?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            read_more(s, &mut self.buf)?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("no status"))?;
        let mut length = None;
        let mut keep = true;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| bad("content-length"))?);
            } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close")
            {
                keep = false;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad("chunked answers are not supported"));
            }
        }
        let length = length.ok_or_else(|| bad("no content-length"))?;
        while self.buf.len() < head_end + length {
            read_more(s, &mut self.buf)?;
        }
        let code = envelope_code(&self.buf[head_end..head_end + length]);
        Ok((Answer { status, code }, keep))
    }
}

fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad answer: {what}"))
}

/// The envelope's top-level `code`: the envelope always starts with it (`{"code":N,…`), and
/// anything else is not read as a code.
fn envelope_code(body: &[u8]) -> Option<u64> {
    let rest = body.strip_prefix(b"{\"code\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn authorities_of_base_urls() {
        assert_eq!(
            authority("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(authority("http://localhost/").unwrap(), "localhost:80");
        assert_eq!(authority("http://[::1]:9000/x").unwrap(), "[::1]:9000");
        assert_eq!(authority("http://[::1]").unwrap(), "[::1]:80");
        assert!(authority("https://example.com").is_err());
        assert!(authority("http:///").is_err());
    }

    #[test]
    fn a_request_is_head_and_body_in_one_buffer() {
        let r = request("POST", "h:1", "/buy", Some("t"), Some("{\"quantity\":1}"));
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /buy HTTP/1.1\r\nhost: h:1\r\naccept: */*\r\nauthorization: Bearer t\r\n\
             content-type: application/json\r\ncontent-length: 14\r\n\r\n{\"quantity\":1}"
        );
    }

    #[test]
    fn the_code_is_read_only_from_the_envelope_start() {
        assert_eq!(
            envelope_code(b"{\"code\":3004,\"message\":\"x\"}"),
            Some(3004)
        );
        assert_eq!(envelope_code(b"{\"message\":\"x\",\"code\":1}"), None);
        assert_eq!(envelope_code(b"not json"), None);
    }

    /// A server answering each request on one connection (split across reads), then closing.
    #[test]
    fn answers_are_read_whole_over_one_kept_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut seen = Vec::new();
            for (i, status) in [(0, "202 Accepted"), (1, "409 Conflict")] {
                let mut req = vec![0u8; 1024];
                let n = s.read(&mut req).unwrap();
                seen.push(String::from_utf8_lossy(&req[..n]).to_string());
                let body = format!("{{\"code\":{},\"data\":null}}", [0, 3004][i]);
                let close = if i == 1 { "connection: close\r\n" } else { "" };
                let head = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{close}content-length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                s.write_all(body.as_bytes()).unwrap();
            }
            seen
        });
        let mut c = Conn::new(&addr, Duration::from_secs(5));
        let req = request("POST", &addr, "/b", None, Some("{}"));
        assert_eq!(
            c.send(&req).unwrap(),
            Answer {
                status: 202,
                code: Some(0)
            }
        );
        assert_eq!(
            c.send(&req).unwrap(),
            Answer {
                status: 409,
                code: Some(3004)
            }
        );
        assert!(c.stream.is_none(), "connection: close is honoured");
        let seen = server.join().unwrap();
        assert!(seen.iter().all(|r| r.ends_with("\r\n\r\n{}")), "{seen:?}");
        // Nobody listens any more: an error, not a hang or a panic.
        assert!(c.send(&req).is_err());
    }
}
