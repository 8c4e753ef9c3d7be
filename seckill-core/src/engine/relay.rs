//! Step 2: the relay hands outbox entries to the broker, in batches, then acks them. A crash
//! between publish and ack only re-publishes: the order worker absorbs the duplicate.

use super::faults::CrashPoint;
use super::Engine;
use crate::broker::Message;
use crate::domain::HoldEvent;
use crate::trace::TRACEPARENT_HEADER;
use crate::{Error, Result};
use std::time::Duration;

/// Header carrying the de-duplication id of a message.
pub const MESSAGE_ID_HEADER: &str = "message-id";

impl Engine {
    /// Moves up to one batch of outbox entries to the broker. Returns how many it moved.
    pub async fn relay_once(&self) -> Result<usize> {
        let b = self.backends();
        let entries = b
            .stock
            .outbox_claim(self.config().batch_size, self.config().outbox_lease)
            .await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let mut messages = Vec::with_capacity(entries.len());
        // A traced buy's entry gets a span of its own, a child of the buy's reserve, open until
        // the batch is published; its context travels in the message's `traceparent`.
        let mut spans = Vec::new();
        for e in &entries {
            let event = HoldEvent {
                hold: e.hold.clone(),
            };
            let payload = serde_json::to_vec(&event).map_err(|e| Error::backend("json", e))?;
            let mut m = Message::new(e.hold.activity_id.to_string(), payload)
                .with_header(MESSAGE_ID_HEADER, event.message_id());
            if let Some(parent) = e.trace_parent.as_deref() {
                let span = b.tracing.child_of(
                    tracing::info_span!("outbox.relay", hold = %e.hold.id, otel.kind = "producer"),
                    Some(parent),
                );
                if let Some(tp) = b.tracing.of(&span) {
                    m = m.with_header(TRACEPARENT_HEADER, tp);
                }
                spans.push(span);
            }
            messages.push(m);
        }
        self.crash_point(CrashPoint::RelayBeforePublish)?;
        // A broker down for a moment is waited out while the entries are ours (for half their
        // lease at most): handed back, they would come out again only when the lease lapses.
        // A retry may publish a message twice; the order worker absorbs duplicates.
        let bound = (self.config().outbox_lease / 2).min(Duration::from_secs(10));
        super::retry::retry_for(bound, "publishing outbox entries", || {
            b.broker
                .publish_batch(&self.config().holds_topic, messages.clone())
        })
        .await?;
        drop(spans);
        self.crash_point(CrashPoint::RelayBeforeAck)?;
        let ids: Vec<String> = entries.into_iter().map(|e| e.id).collect();
        b.stock.outbox_ack(&ids).await?;
        self.metrics().relayed.inc_by(ids.len() as u64);
        Ok(ids.len())
    }
}
