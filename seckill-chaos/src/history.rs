//! The history of a run: every client request, as Jepsen records it. Each operation is
//! invoked, then ends `Ok`, `Fail` (a definite refusal: the server answered and nothing
//! happened) or `Unknown` (a timeout, a dropped connection, a 5xx: it may or may not have taken
//! effect). The checker reads it after the run.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `POST /seckill/activities/{id}/buy` with an idempotency key.
    Buy {
        /// The buyer.
        user: String,
        /// Units asked.
        quantity: u32,
        /// The idempotency key (retries reuse it).
        key: String,
    },
    /// `POST /orders/{id}/cancel`.
    Cancel {
        /// The buyer.
        user: String,
        /// The order.
        order: String,
    },
    /// Open a payment (`POST /orders/{id}/pay`) and pay it at the mock provider's page.
    Pay {
        /// The buyer.
        user: String,
        /// The order.
        order: String,
    },
    /// `GET /orders/{id}` as its buyer, after the run.
    Lookup {
        /// The buyer.
        user: String,
        /// The order.
        order: String,
    },
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Done. For a buy: the order id it was given; for a pay: the payment id whose callback was
    /// answered "paid"; for a lookup: the order's status (`pending_payment`, `paid`, …) or
    /// `lost` (410, code 4003: the buyer was told the reservation was lost).
    Ok {
        /// The id or status it answered.
        value: String,
    },
    /// Refused, with the API's code (sold out, limit, not warmed up, …): nothing happened.
    Fail {
        /// The API's error code.
        code: u32,
    },
    /// No definite answer (timeout, connection error, 5xx).
    Unknown {
        /// What happened.
        error: String,
    },
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Milliseconds since the run started, at invocation.
    pub at_ms: u64,
    /// Milliseconds the request took.
    pub took_ms: u64,
    /// What was asked.
    pub request: Request,
    /// How it ended.
    pub outcome: Outcome,
}

/// The run's history, appended to by every client task.
#[derive(Debug)]
pub struct History {
    started: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    /// An empty history starting now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Milliseconds since the run started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records an operation invoked at `at_ms`.
    pub fn record(&self, at_ms: u64, request: Request, outcome: Outcome) {
        let took_ms = self.now_ms().saturating_sub(at_ms);
        self.ops.lock().expect("history lock").push(Op {
            at_ms,
            took_ms,
            request,
            outcome,
        });
    }

    /// Every operation so far, in the order they ended.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().expect("history lock").clone()
    }

    /// The history as JSON lines (one operation per line), for replaying a failure.
    pub fn to_json_lines(&self) -> String {
        self.ops()
            .iter()
            .map(|o| serde_json::to_string(o).expect("an op serializes"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
