//! The monitoring artefacts against a real Prometheus: Debian's `prometheus` on loopback scrapes
//! the real server (all roles, on Redis, PostgreSQL and Redis Streams, so every backend's
//! metrics are there), with `deploy/prometheus/alerts.yml` loaded. Checked:
//! - `promtool check metrics` accepts the exposition;
//! - every expression of the Grafana dashboard parses (`promtool check rules`, each one as a
//!   recording rule) and names only metrics Prometheus has scraped;
//! - Prometheus evaluates every dashboard expression, and a series the dashboard draws (stock
//!   sold per live activity) holds what the sale did;
//! - every alert rule evaluates without error on the live data.
//!
//! The checkers are shown to fail on a broken dashboard each run (a misspelt metric, an
//! expression that does not parse). Needs `SECKILL_TEST_PROMETHEUS` (the `prometheus` binary;
//! `promtool` beside it), `SECKILL_TEST_REDIS_URL` and `SECKILL_TEST_PG_URL`.

mod support;

use seckill_core::conformance::{service_url, skip_or_panic};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::process::{call, data, Process, SharedBackends, Start};

const SERVER_PORT: u16 = 18201;
const PROMETHEUS_PORT: u16 = 18209;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The `prometheus` binary named by `SECKILL_TEST_PROMETHEUS`.
fn prometheus_bin() -> Option<PathBuf> {
    match std::env::var("SECKILL_TEST_PROMETHEUS") {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            skip_or_panic("SECKILL_TEST_PROMETHEUS");
            None
        }
    }
}

/// Every `expr` of the dashboard's panels, with Grafana's `$__rate_interval` as `1m`.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                let title = p["title"].as_str().unwrap_or("?").to_string();
                out.push((title, e.replace("$__rate_interval", "1m")));
            }
        }
    }
    out
}

/// The metric names a PromQL expression selects: identifiers outside label matchers, ranges
/// and strings that are not functions, aggregations, keywords or grouping labels.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const KEYWORDS: [&str; 5] = ["and", "or", "unless", "offset", "bool"];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Blank out {…}, […] and "…" so only selectors' names, functions and keywords remain.
    let mut plain = String::with_capacity(expr.len());
    let (mut brace, mut bracket, mut quote) = (0, 0, false);
    for c in expr.chars() {
        match c {
            '"' if brace > 0 => quote = !quote,
            _ if quote => {}
            '{' => brace += 1,
            '}' => brace -= 1,
            '[' => bracket += 1,
            ']' => bracket -= 1,
            _ if brace == 0 && bracket == 0 => {
                plain.push(c);
                continue;
            }
            _ => {}
        }
        plain.push(' ');
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if GROUPING.contains(&word.as_str()) {
                skip_list = next == Some(&'(');
            } else if !(next == Some(&'(')
                || AGGREGATIONS.contains(&word.as_str())
                || KEYWORDS.contains(&word.as_str()))
            {
                names.insert(word);
            }
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            if skip_list && c == '(' {
                // A grouping label list: skip to its closing parenthesis.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                skip_list = false;
            }
            i += 1;
        }
    }
    names
}

/// The dashboard's panels naming a metric `exported` does not hold: `(title, name)`.
fn unknown_metrics(
    exprs: &[(String, String)],
    exported: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (title, e) in exprs {
        for n in metric_names(e) {
            if !exported.contains(&n) {
                out.push((title.clone(), n));
            }
        }
    }
    out
}

/// `promtool check rules` on the expressions as recording rules: its combined output on failure.
fn promtool_check(promtool: &Path, dir: &Path, exprs: &[(String, String)]) -> Result<(), String> {
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, e))| json!({"record": format!("dashboard:expr_{i}"), "expr": e}))
        .collect();
    let file = dir.join("dashboard-rules.yml");
    // JSON is YAML.
    std::fs::write(
        &file,
        json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn prometheus_api(http: &reqwest::Client, path: &str, query: &[(&str, &str)]) -> Value {
    let r = http
        .get(format!("http://127.0.0.1:{PROMETHEUS_PORT}{path}"))
        .query(query)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "success", "{path} {query:?}: {v}");
    v["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_server_and_the_dashboard_and_alerts_hold() {
    let Some(prometheus) = prometheus_bin() else {
        return;
    };
    let (Some(redis), Some(pg)) = (
        service_url("SECKILL_TEST_REDIS_URL"),
        service_url("SECKILL_TEST_PG_URL"),
    ) else {
        return;
    };
    let promtool = prometheus.with_file_name("promtool");
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "seckill-prometheus-{}",
        seckill_core::conformance::unique_id()
    )));
    std::fs::create_dir_all(&scratch.0).unwrap();

    // The dashboard's expressions parse, and the checker refuses one that does not.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("deploy/grafana/dashboards/seckill.json")).unwrap(),
    )
    .unwrap();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 20, "the dashboard's panels: {exprs:?}");
    if let Err(e) = promtool_check(&promtool, &scratch.0, &exprs) {
        panic!("a dashboard expression does not parse:\n{e}");
    }
    let broken = vec![(
        "broken".to_string(),
        "sum(rate(seckill_request_total[1m])".to_string(),
    )];
    assert!(
        promtool_check(&promtool, &scratch.0, &broken).is_err(),
        "promtool must refuse an expression that does not parse"
    );

    // The server: every role, the demo sale, on real backends; one buy, paid for nothing
    // (its order is written by the worker), so the sale's series move.
    let shared = SharedBackends::new(&redis, &pg, "prometheus").await;
    let _server = Start {
        demo: true,
        ..Start::new("all", SERVER_PORT, &shared.env)
    }
    .spawn();
    let creds = json!({"username": "scraped-buyer", "password": "correct-horse"});
    call(
        SERVER_PORT,
        "POST",
        "/api/v1/user/register",
        None,
        Some(creds.clone()),
    )
    .unwrap();
    let login = call(SERVER_PORT, "POST", "/api/v1/user/login", None, Some(creds)).unwrap();
    let token = data(&login)["token"].as_str().unwrap().to_string();
    let acts = call(SERVER_PORT, "GET", "/api/v1/seckill/activities", None, None).unwrap();
    let act = data(&acts)["items"][0]["id"].as_str().unwrap().to_string();
    let buy = call(
        SERVER_PORT,
        "POST",
        &format!("/api/v1/seckill/activities/{act}/buy"),
        Some(&token),
        Some(json!({"quantity": 1})),
    )
    .unwrap();
    assert_eq!(buy["code"], 0, "{buy}");

    // promtool lints the exposition as a plain client (curl) gets it.
    let plain = reqwest::get(format!("http://127.0.0.1:{SERVER_PORT}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        lint.stdin
            .take()
            .unwrap()
            .write_all(plain.as_bytes())
            .unwrap();
    }
    let lint = lint.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // Prometheus, scraping every second, with the alert rules loaded.
    let config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [repo_file("deploy/prometheus/alerts.yml")],
        "scrape_configs": [{
            "job_name": "seckill",
            "static_configs": [{"targets": [format!("127.0.0.1:{SERVER_PORT}")], "labels": {"role": "all"}}],
        }],
    });
    std::fs::write(scratch.0.join("prometheus.yml"), config.to_string()).unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", PROMETHEUS_PORT)).is_err(),
        "port {PROMETHEUS_PORT} is taken"
    );
    let _prometheus = Process(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                scratch.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start prometheus"),
    );
    let http = reqwest::Client::new();
    // Wait until the order is written and scraped: stock sold 1 for the demo activity.
    let sold_expr = exprs
        .iter()
        .find(|(t, _)| t == "Stock sold")
        .map(|(_, e)| e.clone())
        .expect("the dashboard draws stock sold");
    let deadline = Instant::now() + Duration::from_secs(60);
    let sold = loop {
        let ok = http
            .get(format!("http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            let d = prometheus_api(&http, "/api/v1/query", &[("query", &sold_expr)]).await;
            let hit = d["result"].as_array().and_then(|r| {
                r.iter()
                    .find(|s| s["metric"]["activity"] == act.as_str())
                    .cloned()
            });
            if let Some(s) = hit.filter(|s| s["value"][1] == "1") {
                break s;
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never saw the sale");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(sold["value"][1], "1", "{sold}");
    let up = prometheus_api(&http, "/api/v1/query", &[("query", "up{job=\"seckill\"}")]).await;
    assert_eq!(up["result"][0]["value"][1], "1", "{up}");

    // Every name the dashboard uses is one Prometheus scraped; the checker catches one it
    // did not.
    let names = prometheus_api(&http, "/api/v1/label/__name__/values", &[]).await;
    let exported: BTreeSet<String> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let unknown = unknown_metrics(&exprs, &exported);
    assert!(
        unknown.is_empty(),
        "panels name metrics that are not exported: {unknown:?}"
    );
    let misspelt = vec![(
        "misspelt".to_string(),
        "sum by (reason) (rate(seckill_fail_reasons_total[1m]))".to_string(),
    )];
    assert_eq!(
        unknown_metrics(&misspelt, &exported),
        vec![(
            "misspelt".to_string(),
            "seckill_fail_reasons_total".to_string()
        )]
    );

    // Prometheus evaluates every dashboard expression.
    for (title, e) in &exprs {
        prometheus_api(&http, "/api/v1/query", &[("query", e)]).await;
        let _ = title;
    }
    // Every alert rule evaluated without error on the live series (two evaluation rounds).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rules = prometheus_api(&http, "/api/v1/rules", &[("type", "alert")]).await;
    let all: Vec<&Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(all.len() >= 8, "the alert rules are loaded: {rules}");
    for r in &all {
        assert_eq!(
            r["health"], "ok",
            "alert {} does not evaluate: {r}",
            r["name"]
        );
    }
    // A healthy sale fires none of them.
    let firing: Vec<&Value> = all
        .iter()
        .copied()
        .filter(|r| r["state"] == "firing")
        .collect();
    assert!(
        firing.is_empty(),
        "alerts firing on a healthy sale: {firing:?}"
    );

    drop(_prometheus);
    drop(_server);
    shared.drop_schema().await;
}

#[test]
fn metric_names_are_the_selectors_only() {
    let got = metric_names(
        "histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route=~\"/a|b\"}[5m]))) / on(instance) group_left(version) seckill_build_info or vector(0) > bool 1e3",
    );
    let want: BTreeSet<String> = ["http_request_duration_seconds_bucket", "seckill_build_info"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}
