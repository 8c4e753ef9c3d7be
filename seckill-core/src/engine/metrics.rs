//! Counters and histograms the engine keeps, with the names of the seed spec. The server renders
//! them in Prometheus text format ([`EngineMetrics::render_prometheus`]).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A fixed-bucket histogram of seconds.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    over: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        match BUCKETS.iter().position(|b| s <= *b) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.over.load(Ordering::Relaxed)
    }

    /// The mean of the observations (zero before the first).
    pub fn mean(&self) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.sum_micros.load(Ordering::Relaxed) / n)
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
            cum += self.counts[i].load(Ordering::Relaxed);
            if cum >= rank {
                return Some(*b);
            }
        }
        Some(f64::INFINITY)
    }

    /// Appends the histogram in Prometheus text format, with its HELP and TYPE lines.
    pub fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_samples(out, name, labels);
    }

    /// Appends only the samples (for one label set of a histogram with several).
    pub fn render_samples(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cum}");
        }
        cum += self.over.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cum}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}\n{name}_count{braces} {cum}");
    }
}

/// The engine's metrics.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    /// `seckill_request_total`: buy attempts.
    pub requests: AtomicU64,
    /// `seckill_success_total`: buys that reserved.
    pub successes: AtomicU64,
    /// `seckill_fail_reason{reason}`: rejected buys by reason, one lock-free counter per
    /// reason of [`FAIL_REASONS`] (counted on the sold-out hot path).
    fail_reasons: [AtomicU64; FAIL_REASONS.len()],
    /// `order_create_duration_seconds`: hold reserved → order committed.
    pub order_create: Histogram,
    /// `seckill_orders_created_total`.
    pub orders_created: AtomicU64,
    /// `seckill_orders_rejected_total`: holds the database guard refused.
    pub orders_rejected: AtomicU64,
    /// `seckill_orders_cancelled_total`.
    pub orders_cancelled: AtomicU64,
    /// `seckill_stock_rewarms_total`: activities re-warmed because the stock backend lost
    /// their stock or some of their holds.
    pub stock_rewarms: AtomicU64,
    /// `seckill_orders_lost_total`: acknowledged buys whose order was never written by their
    /// deadline (the stock backend lost the hold), declared lost to their buyers.
    pub orders_lost: AtomicU64,
    /// `seckill_relay_published_total`.
    pub relayed: AtomicU64,
    /// `seckill_payments_succeeded_total`.
    pub payments_succeeded: AtomicU64,
    /// `seckill_payments_refunded_total`.
    pub payments_refunded: AtomicU64,
}

/// Every `reason` label of `seckill_fail_reason`.
pub const FAIL_REASONS: [&str; 13] = [
    "unknown_activity",
    "not_started",
    "ended",
    "cancelled",
    "not_warmed_up",
    "sold_out",
    "insufficient_stock",
    "limit_exceeded",
    "rate_limited",
    "invalid_request",
    "idempotency_mismatch",
    "unauthenticated",
    "error",
];

impl EngineMetrics {
    /// Counts a rejected buy (`reason` from [`FAIL_REASONS`]; anything else counts as `error`).
    pub fn fail(&self, reason: &str) {
        let i = FAIL_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(FAIL_REASONS.len() - 1);
        self.fail_reasons[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Rejected buys counted for `reason`.
    pub fn failures(&self, reason: &str) -> u64 {
        FAIL_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.fail_reasons[i].load(Ordering::Relaxed))
    }

    /// Appends all metrics in Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let counters: [(&str, &str, &AtomicU64); 10] = [
            ("seckill_request_total", "Buy attempts.", &self.requests),
            (
                "seckill_success_total",
                "Buys that reserved stock.",
                &self.successes,
            ),
            (
                "seckill_orders_created_total",
                "Orders written.",
                &self.orders_created,
            ),
            (
                "seckill_orders_rejected_total",
                "Holds refused by the database guard.",
                &self.orders_rejected,
            ),
            (
                "seckill_orders_cancelled_total",
                "Orders cancelled.",
                &self.orders_cancelled,
            ),
            (
                "seckill_stock_rewarms_total",
                "Activities re-warmed because the stock backend lost their stock or holds.",
                &self.stock_rewarms,
            ),
            (
                "seckill_orders_lost_total",
                "Acknowledged buys whose order was never written, declared lost to their buyers.",
                &self.orders_lost,
            ),
            (
                "seckill_relay_published_total",
                "Outbox entries published.",
                &self.relayed,
            ),
            (
                "seckill_payments_succeeded_total",
                "Orders paid.",
                &self.payments_succeeded,
            ),
            (
                "seckill_payments_refunded_total",
                "Payments refunded.",
                &self.payments_refunded,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP seckill_fail_reason Rejected buys by reason.\n# TYPE seckill_fail_reason counter"
        );
        for (reason, n) in FAIL_REASONS.iter().zip(&self.fail_reasons) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(out, "seckill_fail_reason{{reason=\"{reason}\"}} {n}");
            }
        }
        self.order_create.render(
            out,
            "order_create_duration_seconds",
            "Time from reserve to committed order.",
            "",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        for r in all {
            assert!(FAIL_REASONS.contains(&r.reason()), "{}", r.reason());
            m.fail(r.reason());
            assert_eq!(m.failures(r.reason()), 1);
        }
        m.fail("sold_out");
        let mut out = String::new();
        m.render_prometheus(&mut out);
        assert!(
            out.contains("seckill_fail_reason{reason=\"sold_out\"} 2"),
            "{out}"
        );
        assert!(!out.contains("reason=\"error\""), "{out}");
    }
}
