//! HTTP metrics and the Prometheus text rendering of `/metrics`.

use parking_lot::Mutex;
use seckill_core::engine::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Requests by route and status, and a latency histogram per route.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    counts: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
}

impl HttpMetrics {
    /// Records one request.
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        *self
            .counts
            .lock()
            .entry((method.to_string(), route.to_string(), status))
            .or_insert(0) += 1;
        let h = self
            .latency
            .lock()
            .entry(route.to_string())
            .or_default()
            .clone();
        h.observe(took);
    }

    /// Appends the HTTP metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP http_requests_total HTTP requests by method, route and status.\n# TYPE http_requests_total counter"
        );
        for ((m, r, s), n) in self.counts.lock().iter() {
            let _ = writeln!(
                out,
                "http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{s}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP http_request_duration_seconds HTTP request latency by route.\n# TYPE http_request_duration_seconds histogram"
        );
        for (route, h) in self.latency.lock().iter() {
            h.render_samples(
                out,
                "http_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
    }
}
