//! `storage`: dfm's persisted records, identifiers and the sled store.
//!
//! This crate owns what is written to disk and the identifiers every layer speaks
//! in. It imports no actix and knows nothing of HTTP; the `actors` crate decides,
//! this crate remembers.

pub mod citizen_index;
pub mod codec;
pub mod compact;
pub mod event;
pub mod feed_ids;
pub mod ids;
pub mod key_filter;
pub mod money;
pub mod projection;
pub mod record;
mod reply_codes;
pub mod scoring_table;
pub mod store;

pub use store::{Store, StoreError};
