//! fieldsync-proto: the data model, ops, clocks, merge and wire types.
//!
//! Sans-IO: nothing here reads a clock, touches a file or socket, or draws randomness.
//! Callers pass those in, so the same code runs in the agent, the server and the
//! simulation harness (enforced by `clippy.toml`).

pub mod apply;
pub mod contact;
pub mod error;
pub mod hlc;
pub mod ids;
pub mod limits;
pub mod maintenance;
pub mod media;
pub mod op;
pub mod report;
pub mod schema;
pub mod scope;
pub mod sla;
pub mod state;
pub mod stock;
pub mod validate;
pub mod view;
pub mod wire;

pub use error::{ErrorBody, OpError};
pub use hlc::{Hlc, HlcClock};
pub use ids::{DeviceId, EntityId, SERVER_DEVICE};
pub use op::{Op, OpKind};
pub use schema::{EntityKind, Role};
pub use state::{EntityState, FieldState, Version};
