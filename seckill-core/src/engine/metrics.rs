//! Counters and histograms the engine keeps, under the seed spec's names, as
//! [`prometheus_client`] metrics: [`EngineMetrics::register`] adds them to the registry an
//! embedder (or the server's `/metrics`) encodes. The engine knows nothing of HTTP.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A fixed-bucket histogram of seconds: lock-free to observe, readable in process (the
/// benches read its quantiles), encoded as a Prometheus histogram. Clones share the counts.
#[derive(Debug, Default, Clone)]
pub struct Histogram(Arc<HistogramCounts>);

#[derive(Debug, Default)]
struct HistogramCounts {
    counts: [AtomicU64; 12],
    over: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let h = &self.0;
        let s = d.as_secs_f64();
        match BUCKETS.iter().position(|b| s <= *b) {
            Some(i) => h.counts[i].fetch_add(1, Ordering::Relaxed),
            None => h.over.fetch_add(1, Ordering::Relaxed),
        };
        h.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        let h = &self.0;
        h.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            + h.over.load(Ordering::Relaxed)
    }

    /// The mean of the observations (zero before the first).
    pub fn mean(&self) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.0.sum_micros.load(Ordering::Relaxed) / n)
    }

    /// The upper bound of the bucket holding quantile `q` (0 to 1) of the observations, in
    /// seconds: `q` of them took at most this long. Infinite when it falls above the last
    /// bucket, `None` before the first observation.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.0.counts[i].load(Ordering::Relaxed);
            if cum >= rank {
                return Some(*b);
            }
        }
        Some(f64::INFINITY)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        let mut buckets = [(0.0, 0); 13];
        for (i, b) in BUCKETS.iter().enumerate() {
            buckets[i] = (*b, h.counts[i].load(Ordering::Relaxed));
        }
        buckets[12] = (f64::INFINITY, h.over.load(Ordering::Relaxed));
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A counter whose name keeps the seed spec's spelling, `seckill_fail_reason`, without the
/// `_total` suffix OpenMetrics gives every counter: it is exposed as an `unknown`-typed
/// metric (which Prometheus's `rate()` reads as a counter) so that the spec's name survives.
#[derive(Debug, Default, Clone)]
pub struct SpecCounter(Counter);

impl SpecCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

impl TypedMetric for SpecCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for SpecCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

/// The `reason` label of `seckill_fail_reason`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The labels of `seckill_payment_callbacks_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabels {
    /// The provider's name (`unknown` for a name no provider has).
    pub provider: String,
    /// One of [`CALLBACK_OUTCOMES`].
    pub outcome: &'static str,
}

/// Every `outcome` label of `seckill_payment_callbacks_total`: applied, a repeat of one
/// already applied, a signature that does not verify, and any other refusal.
pub const CALLBACK_OUTCOMES: [&str; 4] = ["accepted", "duplicate", "invalid_signature", "rejected"];

/// The `kind` label of `seckill_reconcile_findings`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Every `kind` label of `seckill_reconcile_findings`: the reconciler's issue kinds, and
/// `inconsistent` for activities still out of balance after its repairs.
pub const FINDING_KINDS: [&str; 8] = [
    "unbalanced",
    "sold_mismatch",
    "unconfirmed_hold",
    "cancelled_but_held",
    "stranded_hold",
    "order_without_hold",
    "expired_pending",
    "inconsistent",
];

/// The engine's metrics. Every field is a handle: clones (and the copies registered with
/// [`EngineMetrics::register`]) count into the same cells.
#[derive(Debug)]
pub struct EngineMetrics {
    /// `seckill_request_total`: buy attempts.
    pub requests: Counter,
    /// `seckill_success_total`: buys that reserved.
    pub successes: Counter,
    /// `seckill_fail_reason{reason}`: one counter per reason of [`FAIL_REASONS`], taken
    /// once so that the sold-out hot path counts without a lock.
    fail_reasons: [SpecCounter; FAIL_REASONS.len()],
    fail_family: Family<ReasonLabel, SpecCounter>,
    /// `seckill_buy_duration_seconds`: one buy, gate to answer, on any transport.
    pub buy_duration: Histogram,
    /// `order_create_duration_seconds`: hold reserved → order committed.
    pub order_create: Histogram,
    /// `seckill_orders_created_total`.
    pub orders_created: Counter,
    /// `seckill_orders_rejected_total`: holds the database guard refused.
    pub orders_rejected: Counter,
    /// `seckill_orders_cancelled_total`.
    pub orders_cancelled: Counter,
    /// `seckill_stock_rewarms_total`: activities re-warmed because the stock backend lost
    /// their stock or some of their holds.
    pub stock_rewarms: Counter,
    /// `seckill_orders_lost_total`: acknowledged buys whose order was never written by their
    /// deadline (the stock backend lost the hold), declared lost to their buyers.
    pub orders_lost: Counter,
    /// `seckill_relay_published_total`.
    pub relayed: Counter,
    /// `seckill_payments_succeeded_total`.
    pub payments_succeeded: Counter,
    /// `seckill_payments_refunded_total`.
    pub payments_refunded: Counter,
    /// `seckill_payment_callbacks_total{provider,outcome}`.
    pub callbacks: Family<CallbackLabels, Counter>,
    /// `seckill_reconcile_findings{kind}`: what the last reconcile pass found, by kind.
    findings: Family<KindLabel, Gauge>,
    /// `seckill_reconcile_runs_total`: reconcile passes over every activity.
    pub reconcile_runs: Counter,
}

/// Every `reason` label of `seckill_fail_reason`.
pub const FAIL_REASONS: [&str; 18] = [
    "unknown_activity",
    "not_started",
    "ended",
    "cancelled",
    "not_warmed_up",
    "sold_out",
    "insufficient_stock",
    "limit_exceeded",
    "rate_limited",
    "paused",
    "tier_short",
    "quota_short",
    "seats_taken",
    "holder_taken",
    "invalid_request",
    "idempotency_mismatch",
    "unauthenticated",
    "error",
];

impl Default for EngineMetrics {
    fn default() -> Self {
        let fail_family = Family::<ReasonLabel, SpecCounter>::default();
        let fail_reasons =
            FAIL_REASONS.map(|reason| fail_family.get_or_create_owned(&ReasonLabel { reason }));
        let findings = Family::<KindLabel, Gauge>::default();
        for kind in FINDING_KINDS {
            findings.get_or_create_owned(&KindLabel { kind });
        }
        Self {
            requests: Counter::default(),
            successes: Counter::default(),
            fail_reasons,
            fail_family,
            buy_duration: Histogram::default(),
            order_create: Histogram::default(),
            orders_created: Counter::default(),
            orders_rejected: Counter::default(),
            orders_cancelled: Counter::default(),
            stock_rewarms: Counter::default(),
            orders_lost: Counter::default(),
            relayed: Counter::default(),
            payments_succeeded: Counter::default(),
            payments_refunded: Counter::default(),
            callbacks: Family::default(),
            findings,
            reconcile_runs: Counter::default(),
        }
    }
}

impl EngineMetrics {
    /// Counts a rejected buy (`reason` from [`FAIL_REASONS`]; anything else counts as `error`).
    pub fn fail(&self, reason: &str) {
        let i = FAIL_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(FAIL_REASONS.len() - 1);
        self.fail_reasons[i].inc();
    }

    /// Rejected buys counted for `reason`.
    pub fn failures(&self, reason: &str) -> u64 {
        FAIL_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.fail_reasons[i].get())
    }

    /// Counts a payment callback of `provider` by `outcome` (one of [`CALLBACK_OUTCOMES`]).
    pub fn callback(&self, provider: &str, outcome: &'static str) {
        self.callbacks
            .get_or_create(&CallbackLabels {
                provider: provider.to_string(),
                outcome,
            })
            .inc();
    }

    /// Creates `provider`'s callback series at zero, one per outcome.
    pub fn expect_callbacks(&self, provider: &str) {
        for outcome in CALLBACK_OUTCOMES {
            let _created = self.callbacks.get_or_create(&CallbackLabels {
                provider: provider.to_string(),
                outcome,
            });
        }
    }

    /// Payment callbacks counted for `provider` and `outcome`.
    pub fn callbacks_counted(&self, provider: &str, outcome: &'static str) -> u64 {
        self.callbacks
            .get(&CallbackLabels {
                provider: provider.to_string(),
                outcome,
            })
            .map_or(0, |c| c.get())
    }

    /// Sets what the last reconcile pass found: `counts` by kind of [`FINDING_KINDS`]
    /// (kinds it does not name are set to zero).
    pub fn set_findings(&self, counts: &[(&'static str, i64)]) {
        for kind in FINDING_KINDS {
            let n = counts
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n)
                .sum();
            self.findings.get_or_create(&KindLabel { kind }).set(n);
        }
    }

    /// What the last reconcile pass found of `kind`.
    pub fn findings(&self, kind: &'static str) -> i64 {
        self.findings
            .get(&KindLabel { kind })
            .map_or(0, |g| g.get())
    }

    /// Registers every metric with `registry` under the seed spec's names (counters get
    /// OpenMetrics' `_total` suffix from the encoder: `seckill_request` is exposed as
    /// `seckill_request_total`).
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            ("seckill_request", "Buy attempts.", &self.requests),
            (
                "seckill_success",
                "Buys that reserved stock.",
                &self.successes,
            ),
            (
                "seckill_orders_created",
                "Orders written.",
                &self.orders_created,
            ),
            (
                "seckill_orders_rejected",
                "Holds refused by the database guard.",
                &self.orders_rejected,
            ),
            (
                "seckill_orders_cancelled",
                "Orders cancelled.",
                &self.orders_cancelled,
            ),
            (
                "seckill_stock_rewarms",
                "Activities re-warmed because the stock backend lost their stock or holds.",
                &self.stock_rewarms,
            ),
            (
                "seckill_orders_lost",
                "Acknowledged buys whose order was never written, declared lost to their buyers.",
                &self.orders_lost,
            ),
            (
                "seckill_relay_published",
                "Outbox entries published.",
                &self.relayed,
            ),
            (
                "seckill_payments_succeeded",
                "Orders paid.",
                &self.payments_succeeded,
            ),
            (
                "seckill_payments_refunded",
                "Payments refunded.",
                &self.payments_refunded,
            ),
            (
                "seckill_reconcile_runs",
                "Reconcile passes over every activity.",
                &self.reconcile_runs,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "seckill_fail_reason",
            "Rejected buys by reason (a counter; the seed spec's name, without _total).",
            self.fail_family.clone(),
        );
        registry.register(
            "seckill_buy_duration_seconds",
            "Time to answer one buy, on any transport.",
            self.buy_duration.clone(),
        );
        registry.register(
            "order_create_duration_seconds",
            "Time from reserve to committed order.",
            self.order_create.clone(),
        );
        registry.register(
            "seckill_payment_callbacks",
            "Payment provider callbacks by provider and outcome.",
            self.callbacks.clone(),
        );
        registry.register(
            "seckill_reconcile_findings",
            "What the last reconcile pass found, by kind.",
            self.findings.clone(),
        );
    }
}

/// What the backends report about their own resources at each scrape (connection pools,
/// connection errors): each backend adds a [`Collector`] while it is built (one per `key`: the
/// second of a key is dropped, so that five Redis backends of one process do not describe one
/// metric five times), and the server registers the lot once. Clones share the list.
#[derive(Clone, Default)]
pub struct BackendMetrics(Arc<parking_lot::Mutex<Vec<Keyed>>>);

/// A collector and the key it was added under.
type Keyed = (String, Arc<dyn Collector>);

impl std::fmt::Debug for BackendMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.0.lock().iter().map(|(k, _)| k.clone()).collect();
        f.debug_tuple("BackendMetrics").field(&keys).finish()
    }
}

impl BackendMetrics {
    /// Adds `collector` under `key`, unless one with that key is there already.
    pub fn add(&self, key: impl Into<String>, collector: impl Collector) {
        let key = key.into();
        let mut all = self.0.lock();
        if all.iter().all(|(k, _)| *k != key) {
            all.push((key, Arc::new(collector)));
        }
    }

    /// The keys added so far.
    pub fn keys(&self) -> Vec<String> {
        self.0.lock().iter().map(|(k, _)| k.clone()).collect()
    }

    /// Registers every collector added so far with `registry` (once the backends are built).
    pub fn register(&self, registry: &mut Registry) {
        for (_, c) in self.0.lock().iter() {
            registry.register_collector(Box::new(Shared(c.clone())));
        }
    }
}

#[derive(Debug)]
struct Shared(Arc<dyn Collector>);

impl Collector for Shared {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(m: &EngineMetrics) -> String {
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        out
    }

    #[test]
    fn every_buy_rejection_has_a_counter() {
        use crate::engine::BuyRejection as R;
        let m = EngineMetrics::default();
        let all = [
            R::UnknownActivity,
            R::NotStarted,
            R::Ended,
            R::Cancelled,
            R::NotWarmedUp,
            R::SoldOut,
            R::InsufficientStock { available: 1 },
            R::LimitExceeded { held: 1, limit: 1 },
            R::RateLimited {
                retry_after: std::time::Duration::from_millis(1),
            },
            R::Paused,
        ];
        for r in all {
            assert!(FAIL_REASONS.contains(&r.reason()), "{}", r.reason());
            m.fail(r.reason());
            assert_eq!(m.failures(r.reason()), 1);
        }
        m.fail("sold_out");
        let out = encoded(&m);
        assert!(
            out.contains("seckill_fail_reason{reason=\"sold_out\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("seckill_fail_reason{reason=\"error\"} 0"),
            "{out}"
        );
        assert!(out.contains("# TYPE seckill_fail_reason unknown"), "{out}");
    }

    #[test]
    fn spec_names_and_histograms_are_encoded() {
        let m = EngineMetrics::default();
        m.requests.inc();
        m.order_create.observe(Duration::from_millis(3));
        m.order_create.observe(Duration::from_secs(5));
        m.callback("mock", "invalid_signature");
        m.set_findings(&[("order_without_hold", 2), ("order_without_hold", 1)]);
        let out = encoded(&m);
        for line in [
            "seckill_request_total 1",
            "order_create_duration_seconds_count 2",
            "order_create_duration_seconds_bucket{le=\"0.005\"} 1",
            "order_create_duration_seconds_bucket{le=\"+Inf\"} 2",
            "seckill_payment_callbacks_total{provider=\"mock\",outcome=\"invalid_signature\"} 1",
            "seckill_reconcile_findings{kind=\"order_without_hold\"} 3",
            "seckill_reconcile_findings{kind=\"unbalanced\"} 0",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
        assert_eq!(m.order_create.quantile_bound(0.5), Some(0.005));
        assert_eq!(m.callbacks_counted("mock", "invalid_signature"), 1);
        assert_eq!(m.findings("order_without_hold"), 3);
    }
}
