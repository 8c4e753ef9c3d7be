//! The operations of the API, one module per area, shared by every transport: `routes/*`
//! (HTTP) and `grpc.rs` are peers over this layer and hold only what their protocol needs
//! (extracting arguments, shaping answers). Domain rules live in `seckill-core`; what is here
//! is the server's part of an operation: the caller's identity, its rate limits and the
//! answers' shapes, with errors as [`crate::error::ApiError`] (one code table for both
//! transports).
//!
//! ```text
//! routes/*, grpc.rs ─► service::{buy, catalog, orders, payments, users} ─► Engine ─► traits ◄─ backends
//! ```

pub mod buy;
pub mod catalog;
pub mod orders;
pub mod payments;
pub mod users;

use crate::error::{ApiError, Code};
use seckill_core::repo::PageRequest;

/// Items per page when the caller names none.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Most items per page.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The highest page number (pages past the data answer an empty page).
pub const MAX_PAGE: u32 = i32::MAX as u32;

/// A validated page request: `page` from 1 (default 1) up to [`MAX_PAGE`], `page_size` 1 to
/// [`MAX_PAGE_SIZE`] (default [`DEFAULT_PAGE_SIZE`]); `None` takes the default.
pub fn page_request(page: Option<u32>, page_size: Option<u32>) -> Result<PageRequest, ApiError> {
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page == 0 || page > MAX_PAGE || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(ApiError::new(
            Code::InvalidParameter,
            "page must be 1..=2147483647 and page_size 1..=100",
        ));
    }
    Ok(PageRequest { page, page_size })
}
