//! SIVO's domain vocabulary: ids, roles, validation rules, call and agent states with the CDR,
//! and the webhook event catalog.
//!
//! Pure: no I/O, no clock reads, no global randomness. Callers pass in ids and timestamps,
//! which keeps everything here deterministic and cheap to test.

pub mod calls;
pub mod clock;
pub mod events;
pub mod ids;
pub mod role;
pub mod validate;

pub use ids::*;
pub use role::Role;
