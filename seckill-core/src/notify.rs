//! [`Notifier`]: how a verification code reaches a phone. The default, [`LogNotifier`], writes
//! it to the log (for development and for deployments that plug their SMS gateway in here).

use crate::Result;
use async_trait::async_trait;
use std::time::Duration;

/// Delivers verification codes.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// Sends `code`, valid for `valid_for`, to `phone`.
    async fn send_code(&self, phone: &str, code: &str, valid_for: Duration) -> Result<()>;
}

/// Writes codes to the log (target `seckill::notify`, level info).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn send_code(&self, phone: &str, code: &str, valid_for: Duration) -> Result<()> {
        tracing::info!(
            target: "seckill::notify",
            phone,
            code,
            valid_for_secs = valid_for.as_secs(),
            "verification code"
        );
        Ok(())
    }
}
