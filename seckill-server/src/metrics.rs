//! `/metrics`: one [`prometheus_client`] registry holding the engine's metrics (the seed spec's
//! business metrics), the backends' own (connection pools), the HTTP metrics, the figures read
//! at each scrape (outbox and consumer lag, stock per live activity), process metrics and
//! build info, encoded in the OpenMetrics text format, or in Prometheus's text format 0.0.4 for a
//! client that does not ask for OpenMetrics (curl, `promtool check metrics`, older scrapers).

use crate::overload::Overload;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use seckill_core::domain::ActivityId;
use seckill_core::engine::{Engine, Histogram};
use std::sync::Arc;
use std::time::Duration;

/// The content type of the OpenMetrics exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (as Prometheus's scraper does).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// Rewrites an OpenMetrics exposition (as [`Metrics::render`] writes it) in the Prometheus
/// text format 0.0.4: counter families take their samples' `_total` name, `unknown` becomes
/// `untyped`, and `# UNIT` and `# EOF` go.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(if prefix == "# TYPE " && tail == "unknown" {
                    "untyped"
                } else {
                    tail
                });
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// How far around now an activity counts as live for the stock gauges.
const LIVE_MARGIN: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabel {
    activity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    topic: String,
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GateLabel {
    gate: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    roles: String,
}

/// Requests by method, route and status, and a latency histogram per route.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
}

impl HttpMetrics {
    /// Records one request (`route` is the matched route template, never the raw path).
    pub fn record(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(took);
    }
}

/// Everything `/metrics` shows.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests.
    pub http: HttpMetrics,
}

impl Metrics {
    /// The registry of `engine`'s metrics, its backends' and the server's own, for a process
    /// playing `roles`.
    pub fn new(
        engine: &Engine,
        roles: &str,
        overload: &Arc<Overload>,
        breakers: &seckill_core::breaker::Breakers,
        live: &crate::live::Live,
    ) -> Self {
        let mut registry = Registry::default();
        engine.metrics().register(&mut registry);
        engine.backends().metrics.register(&mut registry);
        let http = HttpMetrics::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status.",
            http.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route.",
            http.latency.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                roles: roles.to_string(),
            })
            .set(1);
        registry.register(
            "seckill_build_info",
            "The running build (value 1): its version and the roles this process plays.",
            build,
        );
        registry.register_collector(Box::new(ProcessCollector));
        registry.register_collector(Box::new(OverloadCollector(overload.clone())));
        registry.register_collector(Box::new(BreakerCollector(breakers.clone())));
        live.register(&mut registry);
        Self { registry, http }
    }

    /// Reads the figures of the moment from `engine`'s backends into a registry of this
    /// scrape's own, then encodes both. A backend that does not answer leaves its figures out
    /// (and `/ready` says so).
    pub async fn render(&self, engine: &Engine) -> String {
        let now = scrape(engine).await;
        let mut out = String::with_capacity(16 * 1024);
        let encoded = text::encode_registry(&mut out, &self.registry)
            .and_then(|_| text::encode_registry(&mut out, &now))
            .and_then(|_| text::encode_eof(&mut out));
        if let Err(e) = encoded {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// The figures read at each scrape: outbox lag per activity (zero for a live activity with an
/// empty outbox), consumer lag, and stock per live activity.
async fn scrape(engine: &Engine) -> Registry {
    let b = engine.backends();
    let cfg = engine.config();
    let mut r = Registry::default();
    let live = engine.live_activities(LIVE_MARGIN).await;
    if let Ok(lag) = b.stock.outbox_lag().await {
        let f = Family::<ActivityLabel, Gauge>::default();
        for a in &live {
            f.get_or_create(&label(a.id)).set(0);
        }
        for (a, n) in lag {
            f.get_or_create(&label(a)).set(n as i64);
        }
        r.register(
            "seckill_outbox_lag",
            "Outbox entries not yet handed to the broker, per activity.",
            f,
        );
    }
    if let Ok(n) = b.broker.lag(&cfg.holds_topic, &cfg.order_group).await {
        let f = Family::<QueueLabels, Gauge>::default();
        f.get_or_create(&QueueLabels {
            topic: cfg.holds_topic.clone(),
            group: cfg.order_group.clone(),
        })
        .set(n as i64);
        r.register(
            "seckill_consumer_lag",
            "Hold messages not yet acked by the order workers, per topic and group.",
            f,
        );
    }
    let stock: [Family<ActivityLabel, Gauge>; 3] = Default::default();
    for a in live {
        if let Ok(Some(snap)) = b.stock.snapshot(a.id).await {
            let l = label(a.id);
            stock[0].get_or_create(&l).set(snap.available);
            stock[1].get_or_create(&l).set(i64::from(snap.held));
            stock[2].get_or_create(&l).set(i64::from(snap.sold));
        }
    }
    let [available, held, sold] = stock;
    for (name, help, f) in [
        (
            "seckill_stock_available",
            "Units anyone may still reserve, per live activity.",
            available,
        ),
        (
            "seckill_stock_held",
            "Units in holds whose order is not confirmed, per live activity.",
            held,
        ),
        ("seckill_stock_sold", "Units sold, per live activity.", sold),
    ] {
        r.register(name, help, f);
    }
    if let Some(split) = &b.replicas {
        replica_figures(&mut r, split);
    }
    r
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadTarget {
    target: String,
}

/// Each read replica's lag and whether it serves, and where reads went.
fn replica_figures(r: &mut Registry, split: &seckill_core::replica::ReadSplit) {
    let lag = Family::<ReplicaLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let serving = Family::<ReplicaLabel, Gauge>::default();
    let reads = Family::<ReadTarget, Counter>::default();
    for st in split.status() {
        let l = ReplicaLabel { replica: st.name };
        if let Some(ms) = st.lag_ms {
            lag.get_or_create(&l).set(ms as f64 / 1000.0);
        }
        serving.get_or_create(&l).set(i64::from(st.healthy));
        reads
            .get_or_create(&ReadTarget { target: l.replica })
            .inc_by(st.reads);
    }
    reads
        .get_or_create(&ReadTarget {
            target: "primary".into(),
        })
        .inc_by(split.primary_reads());
    r.register(
        "seckill_db_replica_lag_seconds",
        "How long each read replica has been missing a change the primary had (absent: unknown or unreachable).",
        lag,
    );
    r.register(
        "seckill_db_replica_serving",
        "1 when a read replica serves reads (reachable, lag within its bound), else 0.",
        serving,
    );
    r.register(
        "seckill_db_replica_reads",
        "Reads meant for a replica, by what served them: a replica, or the primary (none in bound, or a replica failed).",
        reads,
    );
}

fn label(a: ActivityId) -> ActivityLabel {
    ActivityLabel {
        activity: a.to_string(),
    }
}

/// The process's CPU time, memory, file descriptors, threads and start time, read from
/// `/proc/self` at each scrape, under the names every Prometheus client uses (Linux only:
/// elsewhere it reports nothing).
#[derive(Debug)]
struct ProcessCollector;

/// What `/proc/self` says.
#[derive(Debug, Default, PartialEq)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    threads: i64,
    start_time_seconds: f64,
    open_fds: i64,
    max_fds: i64,
}

/// Clock ticks per second of `/proc`'s times (`USER_HZ`: 100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// Parses `/proc/self/stat` (after the command name, which may hold spaces and parentheses)
/// with the system's boot time and page size.
fn parse_stat(stat: &str, boot_time: f64, page_size: i64) -> Option<ProcessFigures> {
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields from the 3rd (state) on: utime is the 14th field, so index 11 here.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some(ProcessFigures {
        cpu_seconds: (num(11)? + num(12)?) / TICKS_PER_SEC,
        threads: num(17)? as i64,
        start_time_seconds: boot_time + num(19)? / TICKS_PER_SEC,
        virtual_bytes: num(20)? as i64,
        resident_bytes: num(21)? as i64 * page_size,
        ..ProcessFigures::default()
    })
}

fn read_process() -> Option<ProcessFigures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    // The page size is 4 KiB on the platforms this runs on; /proc/self/smaps_rollup would
    // say, at a cost per scrape.
    let mut p = parse_stat(&stat, boot_time, 4096)?;
    p.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
    p.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(-1);
    Some(p)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = read_process() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, v) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                p.threads,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let start = ConstGauge::new(p.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The load-shedding gates and deadlines, read at each scrape.
#[derive(Debug)]
struct OverloadCollector(Arc<Overload>);

impl Collector for OverloadCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let o = &self.0;
        let gates = [&o.buy, &o.api];
        let mut family =
            |name: &str, help: &str, counter: bool, v: &dyn Fn(&crate::overload::Gate) -> i64| {
                let ty = if counter {
                    prometheus_client::metrics::MetricType::Counter
                } else {
                    prometheus_client::metrics::MetricType::Gauge
                };
                let mut d = encoder.encode_descriptor(name, help, None, ty)?;
                for g in gates {
                    let label = GateLabel { gate: g.name() };
                    let m = d.encode_family(&label)?;
                    if counter {
                        ConstCounter::new(v(g) as u64).encode(m)?;
                    } else {
                        ConstGauge::new(v(g)).encode(m)?;
                    }
                }
                Ok::<(), std::fmt::Error>(())
            };
        family(
            "seckill_http_in_flight",
            "Requests admitted and not yet answered, per load-shedding gate (buy, api).",
            false,
            &|g| g.in_flight() as i64,
        )?;
        family(
            "seckill_http_concurrency_limit",
            "The concurrency limit of each load-shedding gate (0: none).",
            false,
            &|g| g.limit() as i64,
        )?;
        family(
            "seckill_http_shed",
            "Requests refused at once (503, code 9003) because their gate was full.",
            true,
            &|g| g.refused() as i64,
        )?;
        let t = ConstCounter::new(o.timed_out());
        t.encode(encoder.encode_descriptor(
            "seckill_http_deadline_exceeded",
            "Requests answered 504 (code 9004) because their route's deadline passed.",
            None,
            t.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Each backend's circuit breaker, read at each scrape.
#[derive(Debug)]
struct BreakerCollector(seckill_core::breaker::Breakers);

impl Collector for BreakerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType;
        let breakers = &self.0 .0;
        if breakers.is_empty() {
            return Ok(());
        }
        type Read = fn(&seckill_core::breaker::Breaker) -> i64;
        let families: [(&str, &str, MetricType, Read); 3] = [
            (
                "seckill_breaker_state",
                "Each backend's circuit breaker: 0 closed, 1 open (calls fail fast), 2 half-open.",
                MetricType::Gauge,
                |b| b.state().value(),
            ),
            (
                "seckill_breaker_opened",
                "Times each backend's circuit breaker opened.",
                MetricType::Counter,
                |b| b.opened() as i64,
            ),
            (
                "seckill_breaker_rejected",
                "Calls each backend's open circuit breaker failed at once.",
                MetricType::Counter,
                |b| b.rejected() as i64,
            ),
        ];
        for (name, help, ty, read) in families {
            let counter = matches!(ty, MetricType::Counter);
            let mut d = encoder.encode_descriptor(name, help, None, ty)?;
            for b in breakers.iter() {
                let label = BackendLabel { backend: b.name() };
                let m = d.encode_family(&label)?;
                if counter {
                    ConstCounter::new(read(b) as u64).encode(m)?;
                } else {
                    ConstGauge::new(read(b)).encode(m)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_parsed_past_a_command_name_with_spaces() {
        // pid (comm) state ppid ... as proc(5) lays it out: utime 250, stime 50, 7 threads,
        // starttime 1000 ticks, vsize 1 MiB, rss 10 pages.
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 \
                    1048576 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let p = parse_stat(stat, 1_700_000_000.0, 4096).expect("parsed");
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.threads, 7);
        assert_eq!(p.start_time_seconds, 1_700_000_010.0);
        assert_eq!(p.virtual_bytes, 1_048_576);
        assert_eq!(p.resident_bytes, 40_960);
    }

    #[test]
    fn this_process_reports_itself() {
        let p = read_process().expect("Linux /proc");
        assert!(
            p.threads >= 1 && p.open_fds >= 3 && p.max_fds >= p.open_fds,
            "{p:?}"
        );
        assert!(p.resident_bytes > 0 && p.cpu_seconds >= 0.0, "{p:?}");
    }
}
