//! Crash injection between pipeline steps.
//!
//! Each step of the pipeline calls [`crate::engine::Engine`]'s crash check at the points listed
//! in [`CrashPoint`]. With no injector (production) the check is one branch. Tests install a
//! [`FaultInjector`] that makes a step stop there with [`crate::Error::Crashed`], exactly as if the
//! process had died: nothing after the point runs, nothing is acked, and the state already
//! written stays. The property test then "restarts" the worker and checks nothing was lost.

use parking_lot::Mutex;
use std::collections::HashSet;

/// A place between two steps of the pipeline where a process can die.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrashPoint {
    /// Relay: claimed outbox entries, not yet published.
    RelayBeforePublish,
    /// Relay: published, outbox entries not yet acked.
    RelayBeforeAck,
    /// Order worker: message received, nothing written.
    WorkerBeforeInsert,
    /// Order worker: order committed, hold not yet confirmed.
    WorkerAfterInsert,
    /// Order worker: hold confirmed, timeout not yet scheduled.
    WorkerAfterConfirm,
    /// Order worker: everything done, message not yet acked.
    WorkerBeforeAck,
    /// Timeout or cancel: order cancelled, hold not yet released.
    AfterCancel,
    /// Timeout worker: order handled, delay item not yet completed.
    TimeoutBeforeComplete,
    /// Payment callback: payment recorded, order not yet updated.
    PayAfterRecord,
    /// Payment callback: provider refunded, payment not yet marked refunded.
    PayAfterRefund,
}

impl CrashPoint {
    /// Every crash point.
    pub const ALL: [CrashPoint; 10] = [
        CrashPoint::RelayBeforePublish,
        CrashPoint::RelayBeforeAck,
        CrashPoint::WorkerBeforeInsert,
        CrashPoint::WorkerAfterInsert,
        CrashPoint::WorkerAfterConfirm,
        CrashPoint::WorkerBeforeAck,
        CrashPoint::AfterCancel,
        CrashPoint::TimeoutBeforeComplete,
        CrashPoint::PayAfterRecord,
        CrashPoint::PayAfterRefund,
    ];

    /// A stable name.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::RelayBeforePublish => "relay_before_publish",
            CrashPoint::RelayBeforeAck => "relay_before_ack",
            CrashPoint::WorkerBeforeInsert => "worker_before_insert",
            CrashPoint::WorkerAfterInsert => "worker_after_insert",
            CrashPoint::WorkerAfterConfirm => "worker_after_confirm",
            CrashPoint::WorkerBeforeAck => "worker_before_ack",
            CrashPoint::AfterCancel => "after_cancel",
            CrashPoint::TimeoutBeforeComplete => "timeout_before_complete",
            CrashPoint::PayAfterRecord => "pay_after_record",
            CrashPoint::PayAfterRefund => "pay_after_refund",
        }
    }
}

/// Decides whether the process "dies" at a point.
pub trait FaultInjector: Send + Sync + std::fmt::Debug {
    /// `true` makes the step stop at `at` with [`crate::Error::Crashed`].
    fn crash_at(&self, at: CrashPoint) -> bool;
}

/// Crashes once at each armed point, then disarms it.
#[derive(Debug, Default)]
pub struct CrashOnce {
    armed: Mutex<HashSet<CrashPoint>>,
}

impl CrashOnce {
    /// Nothing armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next pass through `at` crashes.
    pub fn arm(&self, at: CrashPoint) {
        self.armed.lock().insert(at);
    }

    /// Whether `at` is still armed (its crash has not happened yet).
    pub fn is_armed(&self, at: CrashPoint) -> bool {
        self.armed.lock().contains(&at)
    }

    /// Disarms everything.
    pub fn clear(&self) {
        self.armed.lock().clear();
    }
}

impl FaultInjector for CrashOnce {
    fn crash_at(&self, at: CrashPoint) -> bool {
        self.armed.lock().remove(&at)
    }
}
