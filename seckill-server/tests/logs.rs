//! The real binary's logs with `SECKILL_LOG__FORMAT=json`, as Filebeat or Vector read them
//! (deploy/logging/): every line of its stdout is one JSON object with `timestamp`, `level`,
//! `target` and `message`, and a request's lines carry its `trace_id` (the caller's
//! `x-request-id` when tracing is off) and a `span_id`.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use support::process::{call, Start};

const PORT: u16 = 18221;

#[test]
fn the_server_logs_json_lines_with_trace_and_span_ids() {
    let env = [("SECKILL_LOG__FORMAT".to_string(), "json".to_string())];
    let mut p = Start {
        log: "info,seckill_server::access=debug",
        capture_stdout: true,
        demo: true,
        ..Start::new("all", PORT, &env)
    }
    .spawn();
    // A request with its own id, over a raw connection so the header is ours.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", PORT)).unwrap();
        s.write_all(
            b"GET /api/v1/seckill/activities HTTP/1.1\r\nhost: x\r\nx-request-id: log-test-7\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(
            out.to_ascii_lowercase().contains("x-trace-id: log-test-7"),
            "{out}"
        );
    }
    call(PORT, "GET", "/health", None, None).unwrap();
    let stdout = p.take_stdout().unwrap();
    drop(p); // SIGTERM: the server drains, logs and exits, closing stdout
    let lines: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map(|l| l.unwrap())
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{lines:#?}");
    for l in &lines {
        for k in ["timestamp", "level", "target", "message"] {
            assert!(l.get(k).is_some(), "{k} missing: {l}");
        }
        let ts = l["timestamp"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    }
    let access = lines
        .iter()
        .find(|l| l["target"] == "seckill_server::access" && l["trace_id"] == "log-test-7")
        .unwrap_or_else(|| panic!("no access line of the request: {lines:#?}"));
    let span_id = access["span_id"].as_str().unwrap();
    assert_eq!(span_id.len(), 16, "{access}");
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["span"], "request", "{access}");
    // The other request got an id of its own.
    assert!(
        lines.iter().any(|l| l["target"] == "seckill_server::access"
            && l["trace_id"].as_str().is_some_and(|t| t != "log-test-7")),
        "{lines:#?}"
    );
}
