//! Waiting out a short outage in place: a step that holds work it must not drop (a fetched
//! batch of deliveries, a claimed batch of outbox entries) retries a retryable failure for a
//! bounded time instead of handing the work back, which would only bring it back after a lease
//! or a redelivery timeout (30 s), keeping buyers' orders unwritten that long.

use crate::{Error, Result};
use std::future::Future;
use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(20);
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Runs `op` until it succeeds, fails for good (not retryable, or an injected crash), or
/// `bound` has passed since the first attempt; pauses 20 ms, doubling to 500 ms, in between.
/// Returns the last result.
pub(crate) async fn retry_for<T, F, Fut>(bound: Duration, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match op().await {
            Err(e)
                if !matches!(e, Error::Crashed(_))
                    && e.is_retryable()
                    && started.elapsed() + pause < bound =>
            {
                tracing::warn!(error = %e, "{what} failed; retrying it");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            done => return done,
        }
    }
}
