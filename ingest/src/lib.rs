//! Getting samples into fleetscope.
//!
//! Today: backfill from OpenMetrics / Prometheus text files ([`openmetrics`]) cut into aligned
//! blocks ([`cutter`]). Next: the remote-write shipper (WAL, head, cut, upload), which reuses the
//! same cutter. Never does PromQL; knows protobuf only at the receiver.
//!
//! **Invariant.** Input is parsed completely before any block is written, so a malformed file
//! leaves the object store untouched.

pub mod cutter;
pub mod error;
pub mod openmetrics;

pub use error::{Error, Result};
