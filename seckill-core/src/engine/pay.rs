//! Step 5: payment. The buyer opens a payment; the provider calls back with a signed result;
//! the callback is verified, recorded (de-duplicated by transaction id), and the order moves
//! `pending_payment → paid` by compare-and-set. A payment that finds its order cancelled, or
//! paid by another payment, is refunded. The callback is answered 2xx only after all of this is
//! committed, so the provider retries until it is.

use super::faults::CrashPoint;
use super::Engine;
use crate::domain::{Order, OrderId, OrderStatus, Payment, PaymentId, PaymentStatus, UserId};
use crate::payment::{Callback, Checkout, Notification};
use crate::repo::{PaymentRecorded, StatusChange, StatusChanged};
use crate::{Entity, Error, Result};
use tracing::Instrument;

/// A payment opened at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentStarted {
    /// Our record.
    pub payment: Payment,
    /// What the provider returned.
    pub checkout: Checkout,
}

/// What a callback did, and to which payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The payment as recorded after the callback.
    pub payment: Payment,
    /// What became of its order.
    pub outcome: CallbackOutcome,
    /// Whether the provider had told this result before (a repeated callback: nothing new
    /// was recorded).
    pub repeated: bool,
}

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The order is paid by this payment (now or before).
    Paid,
    /// The provider reported a failure; the order stays pending.
    Failed,
    /// The order could not take this payment (cancelled, or paid by another); refunded.
    Refunded,
}

impl Engine {
    /// Opens a payment for the buyer's pending order with the default provider, or returns the
    /// one already open. Someone else's order is `NotFound`; an order that is not pending, or
    /// past its deadline, is `Conflict`.
    pub async fn start_payment(&self, user: UserId, order_id: OrderId) -> Result<PaymentStarted> {
        let name = self
            .backends()
            .providers
            .default_provider()
            .name()
            .to_string();
        self.start_payment_via(user, order_id, &name).await
    }

    /// [`Engine::start_payment`] with the provider called `provider` (`NotFound` if it is not
    /// configured). One payment stays open per order and provider: asking again returns it. A
    /// buyer who pays at two providers is charged twice, and the second payment is refunded.
    pub async fn start_payment_via(
        &self,
        user: UserId,
        order_id: OrderId,
        provider: &str,
    ) -> Result<PaymentStarted> {
        let b = self.backends();
        let provider = b.providers.named(provider)?;
        let order = match b.orders.order(order_id).await? {
            Some(o) if o.user_id == user => o,
            _ => return Err(Error::not_found(Entity::Order, order_id)),
        };
        if order.status != OrderStatus::PendingPayment {
            return Err(Error::conflict(
                Entity::Order,
                order_id,
                format!("the order is {}", order.status),
            ));
        }
        let now = self.now();
        if order.expires_at <= now {
            return Err(Error::conflict(
                Entity::Order,
                order_id,
                "the order passed its payment deadline",
            ));
        }
        // One open payment per order and provider: asking again returns the pending one.
        if let Some(p) = b
            .payments
            .order_payments(order_id)
            .await?
            .into_iter()
            .find(|p| p.status == PaymentStatus::Pending && p.provider == provider.name())
        {
            let checkout = provider.create(&p, order.expires_at).await?;
            return Ok(PaymentStarted {
                payment: p,
                checkout,
            });
        }
        let payment = Payment {
            id: PaymentId(self.next_id()),
            order_id,
            user_id: user,
            provider: provider.name().to_string(),
            amount: order.amount,
            status: PaymentStatus::Pending,
            provider_txn_id: None,
            callbacks_seen: 0,
            created_at: now,
            updated_at: now,
        };
        b.payments.insert_payment(&payment).await?;
        let checkout = provider.create(&payment, order.expires_at).await?;
        Ok(PaymentStarted { payment, checkout })
    }

    /// Handles a provider callback. `Err(Unauthenticated)` for a bad signature; any `Ok` means
    /// its effect is committed and the provider may stop retrying.
    ///
    /// Each callback is counted in `seckill_payment_callbacks_total` by provider and outcome.
    pub async fn handle_callback(&self, provider: &str, cb: &Callback) -> Result<Settlement> {
        let providers = &self.backends().providers;
        let r = async {
            let n = providers.named(provider)?.verify_callback(cb)?;
            self.apply_notification(provider, &n).await
        }
        .await;
        let outcome = match &r {
            Ok(s) if s.repeated => "duplicate",
            Ok(_) => "accepted",
            Err(Error::Unauthenticated(_)) => "invalid_signature",
            Err(_) => "rejected",
        };
        // The label names a configured provider only: callers choose the path segment.
        let label = if providers.get(provider).is_some() {
            provider
        } else {
            "unknown"
        };
        self.metrics().callback(label, outcome);
        r
    }

    /// Records a result verified by `provider` and settles the order with it. A result about a
    /// payment another provider opened is refused: its money and its refunds would not be
    /// where the record says.
    pub(crate) async fn apply_notification(
        &self,
        provider: &str,
        n: &Notification,
    ) -> Result<Settlement> {
        let b = self.backends();
        let Some(payment) = b.payments.payment(n.payment_id).await? else {
            return Err(Error::not_found(Entity::Payment, n.payment_id));
        };
        if payment.provider != provider {
            return Err(Error::invalid(format!(
                "payment {} was opened with {}, not {provider}",
                payment.id, payment.provider
            )));
        }
        if n.amount != payment.amount {
            return Err(Error::invalid(format!(
                "callback amount {} differs from payment amount {}",
                n.amount, payment.amount
            )));
        }
        let status = if n.succeeded {
            PaymentStatus::Succeeded
        } else {
            PaymentStatus::Failed
        };
        let (payment, repeated) = match b
            .payments
            .record_result(payment.id, &n.txn_id, status, self.now())
            .await?
        {
            PaymentRecorded::Applied(p) => (p, false),
            PaymentRecorded::Duplicate(p) => (p, true),
            PaymentRecorded::Conflict(p) => {
                return Err(Error::conflict(
                    Entity::Payment,
                    p.id,
                    format!("already settled differently ({:?})", p.status),
                ))
            }
        };
        self.crash_point(CrashPoint::PayAfterRecord)?;
        let outcome = self.settle(&payment).await?;
        let payment = b.payments.payment(payment.id).await?.unwrap_or(payment);
        Ok(Settlement {
            payment,
            outcome,
            repeated,
        })
    }

    /// Brings a recorded payment's order in line with it: pays the order, or refunds the
    /// payment. Idempotent; the reconciler calls it for every succeeded payment.
    pub async fn settle(&self, payment: &Payment) -> Result<CallbackOutcome> {
        let b = self.backends();
        let Some(order) = b.orders.order(payment.order_id).await? else {
            return Err(Error::not_found(Entity::Order, payment.order_id));
        };
        // A traced buy's settlement is a span of the buy's trace, linked to what settles it
        // (the provider's callback request, or the reconciler).
        let Some(parent) = order.trace_parent.clone() else {
            return self.settle_order(payment, order).await;
        };
        let span = b.tracing.child_of(
            tracing::info_span!("payment.settle", order = %order.id, payment = %payment.id),
            Some(&parent),
        );
        b.tracing.link(&span, b.tracing.current().as_deref());
        self.settle_order(payment, order).instrument(span).await
    }

    async fn settle_order(&self, payment: &Payment, mut order: Order) -> Result<CallbackOutcome> {
        let b = self.backends();
        match payment.status {
            PaymentStatus::Failed | PaymentStatus::Pending => return Ok(CallbackOutcome::Failed),
            PaymentStatus::Refunded => return Ok(CallbackOutcome::Refunded),
            PaymentStatus::RefundDue => return self.refund(payment, &order).await,
            PaymentStatus::Succeeded => {}
        }
        loop {
            match order.status {
                OrderStatus::PendingPayment => {
                    let change = StatusChange {
                        from: OrderStatus::PendingPayment,
                        to: OrderStatus::Paid,
                        at: self.now(),
                        payment_id: Some(payment.id),
                        cancel_reason: None,
                    };
                    match b.orders.change_status(order.id, change).await? {
                        StatusChanged::Applied(_) => {
                            self.metrics().payments_succeeded.inc();
                            b.delay
                                .cancel(&self.config().timeout_queue, &order.id.to_string())
                                .await?;
                            return Ok(CallbackOutcome::Paid);
                        }
                        StatusChanged::Conflict(o) => order = o,
                        StatusChanged::NotFound => {
                            return Err(Error::not_found(Entity::Order, order.id))
                        }
                    }
                }
                OrderStatus::Paid if order.payment_id == Some(payment.id) => {
                    return Ok(CallbackOutcome::Paid)
                }
                _ => return self.refund(payment, &order).await,
            }
        }
    }

    async fn refund(&self, payment: &Payment, order: &Order) -> Result<CallbackOutcome> {
        tracing::info!(payment = %payment.id, order = %order.id, status = %order.status,
            "refunding a payment its order cannot take");
        let b = self.backends();
        b.providers
            .named(&payment.provider)?
            .refund(payment)
            .await?;
        self.crash_point(CrashPoint::PayAfterRefund)?;
        if b.payments.mark_refunded(payment.id, self.now()).await? {
            self.metrics().payments_refunded.inc();
        }
        Ok(CallbackOutcome::Refunded)
    }

    /// Refunds the payment that paid its order, at the buyer's or an operator's request: the
    /// order moves paid → refunded (a compare-and-set), then the provider returns the money and
    /// the payment is marked refunded. A crash in between leaves a succeeded payment of a
    /// refunded order, which [`Engine::reconcile_payments`] refunds. The order's units stay
    /// sold. Repeating it is harmless; a payment that did not pay its order is `Conflict`.
    pub async fn refund_payment(&self, id: PaymentId) -> Result<Payment> {
        let b = self.backends();
        let Some(payment) = b.payments.payment(id).await? else {
            return Err(Error::not_found(Entity::Payment, id));
        };
        if payment.status == PaymentStatus::Refunded {
            return Ok(payment);
        }
        let Some(order) = b.orders.order(payment.order_id).await? else {
            return Err(Error::not_found(Entity::Order, payment.order_id));
        };
        let paid_by_it = payment.status == PaymentStatus::Succeeded
            && order.payment_id == Some(payment.id)
            && matches!(order.status, OrderStatus::Paid | OrderStatus::Refunded);
        if !paid_by_it {
            return Err(Error::conflict(
                Entity::Payment,
                id,
                format!(
                    "the payment is {:?} and its order is {}: only a payment that paid its \
                     order is refunded on request",
                    payment.status, order.status
                ),
            ));
        }
        let change = StatusChange {
            from: OrderStatus::Paid,
            to: OrderStatus::Refunded,
            at: self.now(),
            payment_id: None,
            cancel_reason: None,
        };
        let order = match b.orders.change_status(order.id, change).await? {
            StatusChanged::Applied(o) => o,
            StatusChanged::Conflict(o) if o.status == OrderStatus::Refunded => o,
            StatusChanged::Conflict(o) => {
                return Err(Error::conflict(
                    Entity::Order,
                    o.id,
                    format!("the order is {}", o.status),
                ))
            }
            StatusChanged::NotFound => return Err(Error::not_found(Entity::Order, order.id)),
        };
        self.refund(&payment, &order).await?;
        Ok(b.payments.payment(id).await?.unwrap_or(payment))
    }

    /// A payment, if the user owns it (else `None`).
    pub async fn payment_of(&self, user: UserId, id: PaymentId) -> Result<Option<Payment>> {
        Ok(self
            .backends()
            .payments
            .payment(id)
            .await?
            .filter(|p| p.user_id == user))
    }
}
