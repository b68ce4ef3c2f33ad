//! fieldsync-agent: the engineer's offline store, the sync client and the CLI's actions.

pub mod actions;
pub mod backoff;
pub mod blob;
pub mod client;
pub mod config;
pub mod contact;
pub mod daemon;
pub mod error;
pub mod inbox;
pub mod kb;
pub mod live;
mod migrate;
pub mod photos;
pub mod report;
pub mod stock;
pub mod store;
pub mod sync;
pub mod upload;

pub use config::Config;
pub use error::{AgentError, Result};
pub use store::Store;
