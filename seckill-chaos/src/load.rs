//! The buyers: many concurrent clients buying random quantities (up to the limit + 1), retrying
//! an unanswered buy under its idempotency key, paying some orders at the mock provider,
//! cancelling others and leaving the rest to time out. Every request goes into the
//! [`History`]; after the sale, each buyer looks up every order it was promised.

use crate::client::{call, Reply};
use crate::history::{History, Outcome, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a client waits for one answer before calling it unknown.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// A registered, logged-in buyer.
#[derive(Debug, Clone)]
pub struct Buyer {
    /// The user id.
    pub id: String,
    /// A bearer token.
    pub token: String,
}

/// The shape of the load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Client tasks at once.
    pub concurrency: usize,
    /// How long they buy.
    pub duration: Duration,
    /// Largest quantity asked (the limit + 1, so some asks are refused).
    pub max_quantity: u32,
    /// Share of reserved orders the buyer pays.
    pub pay_share: f64,
    /// Share of reserved orders the buyer cancels.
    pub cancel_share: f64,
    /// Pause between one client's operations.
    pub think: Duration,
    /// The run's seed (each client derives its own).
    pub seed: u64,
}

fn outcome(r: &Result<Reply, String>, ok: impl Fn(&Reply) -> Option<String>) -> Outcome {
    match r {
        Ok(reply) if reply.status < 300 => match ok(reply) {
            Some(value) => Outcome::Ok { value },
            None => Outcome::Unknown {
                error: format!("{} without the expected data: {}", reply.status, reply.body),
            },
        },
        Ok(reply) if reply.status < 500 => Outcome::Fail { code: reply.code() },
        Ok(reply) => Outcome::Unknown {
            error: format!("{}: {}", reply.status, reply.body),
        },
        Err(e) => Outcome::Unknown { error: e.clone() },
    }
}

/// A request to send.
struct Call<'a> {
    api: SocketAddr,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<Value>,
}

/// One request, recorded.
async fn op(
    h: &History,
    b: &Buyer,
    c: Call<'_>,
    request: Request,
    ok: impl Fn(&Reply) -> Option<String>,
) -> (Outcome, Option<Reply>) {
    let at = h.now_ms();
    let r = call(
        c.api,
        c.method,
        c.path,
        Some(&b.token),
        c.headers,
        c.body.as_ref(),
        REQUEST_DEADLINE,
    )
    .await;
    let o = outcome(&r, ok);
    h.record(at, request, o.clone());
    (o, r.ok())
}

/// Buys under `key`, retrying up to three times while the answer is unknown.
async fn buy(
    h: &History,
    api: [SocketAddr; 2],
    activity: &str,
    b: &Buyer,
    quantity: u32,
    key: &str,
    rng: &mut StdRng,
) -> Option<String> {
    let path = format!("/api/v1/seckill/activities/{activity}/buy");
    for attempt in 0..4 {
        let (o, _) = op(
            h,
            b,
            Call {
                api: api[rng.gen_range(0..2)],
                method: "POST",
                path: &path,
                headers: &[("idempotency-key", key)],
                body: Some(json!({ "quantity": quantity })),
            },
            Request::Buy {
                user: b.id.clone(),
                quantity,
                key: key.to_string(),
            },
            |r| r.data()["order_id"].as_str().map(str::to_string),
        )
        .await;
        match o {
            Outcome::Ok { value } => return Some(value),
            Outcome::Fail { .. } => return None,
            Outcome::Unknown { .. } => {
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await
            }
        }
    }
    None
}

/// Waits (a few seconds at most) until the order is written, then opens a payment and pays it
/// at the mock provider's page.
async fn pay(h: &History, api: SocketAddr, b: &Buyer, order: &str) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let r = call(
            api,
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(&b.token),
            &[],
            None,
            REQUEST_DEADLINE,
        )
        .await;
        if r.is_ok_and(|r| r.status == 200) {
            break;
        }
        if Instant::now() > until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = Request::Pay {
        user: b.id.clone(),
        order: order.to_string(),
    };
    let at = h.now_ms();
    let opened = call(
        api,
        "POST",
        &format!("/api/v1/orders/{order}/pay"),
        Some(&b.token),
        &[("idempotency-key", &format!("pay-{order}"))],
        None,
        REQUEST_DEADLINE,
    )
    .await;
    let url = match &opened {
        Ok(r) if r.status < 300 => r.data()["pay_url"].as_str().map(str::to_string),
        _ => None,
    };
    let Some(url) = url else {
        // Refused (the order was cancelled or timed out meanwhile), or no answer.
        let o = match &opened {
            Ok(r) if r.status < 500 => Outcome::Fail { code: r.code() },
            other => outcome(other, |_| None),
        };
        h.record(at, request, o);
        return;
    };
    let paid = call(
        api,
        "POST",
        &url,
        Some(&b.token),
        &[],
        None,
        REQUEST_DEADLINE,
    )
    .await;
    let o = outcome(&paid, |r| {
        (r.data()["result"] == "paid")
            .then(|| r.data()["payment_id"].as_str().map(str::to_string))
            .flatten()
    });
    // A 2xx that is not "paid" (failed, refunded) is a definite answer, not a payment.
    let o = match (o, &paid) {
        (Outcome::Unknown { .. }, Ok(r)) if r.status < 300 => Outcome::Fail { code: 0 },
        (o, _) => o,
    };
    h.record(at, request, o);
}

/// Runs the buyers until `spec.duration` has passed. Returns the order ids each buyer (by
/// index) was promised.
pub async fn run(
    h: Arc<History>,
    api: [SocketAddr; 2],
    activity: String,
    buyers: Arc<Vec<Buyer>>,
    spec: LoadSpec,
) -> Vec<(usize, String)> {
    let until = Instant::now() + spec.duration;
    let mut tasks = Vec::new();
    for w in 0..spec.concurrency {
        let (h, activity, buyers, spec) =
            (h.clone(), activity.clone(), buyers.clone(), spec.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(spec.seed.wrapping_mul(1_000_003) + w as u64);
            let mut promised = Vec::new();
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let who = rng.gen_range(0..buyers.len());
                let b = &buyers[who];
                let quantity = rng.gen_range(1..=spec.max_quantity);
                let key = format!("w{w}-{n}");
                if let Some(order) = buy(&h, api, &activity, b, quantity, &key, &mut rng).await {
                    promised.push((who, order.clone()));
                    let roll: f64 = rng.gen();
                    let at = api[rng.gen_range(0..2)];
                    if roll < spec.pay_share {
                        pay(&h, at, b, &order).await;
                    } else if roll < spec.pay_share + spec.cancel_share {
                        op(
                            &h,
                            b,
                            Call {
                                api: at,
                                method: "POST",
                                path: &format!("/api/v1/orders/{order}/cancel"),
                                headers: &[],
                                body: None,
                            },
                            Request::Cancel {
                                user: b.id.clone(),
                                order: order.clone(),
                            },
                            |r| r.data()["status"].as_str().map(str::to_string),
                        )
                        .await;
                    }
                }
                tokio::time::sleep(spec.think).await;
            }
            promised
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(p) = t.await {
            all.extend(p);
        }
    }
    all
}

/// After the sale: each buyer asks for each order it was promised until the answer is final
/// (written: 200; lost: 410) or `patience` runs out; the last answer goes into the history.
pub async fn look_up(
    h: &History,
    api: [SocketAddr; 2],
    buyers: &[Buyer],
    promised: &[(usize, String)],
    patience: Duration,
) {
    let until = Instant::now() + patience;
    let mut open: Vec<(usize, String)> = promised.to_vec();
    open.sort();
    open.dedup();
    let mut round = 0usize;
    while !open.is_empty() {
        let last_round = Instant::now() > until;
        let mut still = Vec::new();
        for (who, order) in open {
            let b = &buyers[who];
            let at = h.now_ms();
            let r = call(
                api[round % 2],
                "GET",
                &format!("/api/v1/orders/{order}"),
                Some(&b.token),
                &[],
                None,
                REQUEST_DEADLINE,
            )
            .await;
            let final_answer = match &r {
                Ok(x) if x.status == 200 => Some(Outcome::Ok {
                    value: x.data()["status"].as_str().unwrap_or("?").to_string(),
                }),
                Ok(x) if x.status == 410 => Some(Outcome::Ok {
                    value: "lost".into(),
                }),
                _ => None,
            };
            let request = Request::Lookup {
                user: b.id.clone(),
                order: order.clone(),
            };
            match final_answer {
                Some(o) => h.record(at, request, o),
                None if last_round => h.record(at, request, outcome(&r, |_| None)),
                None => still.push((who, order)),
            }
        }
        open = still;
        round += 1;
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
