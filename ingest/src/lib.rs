//! Getting samples into fleetscope.
//!
//! * the **shipper**: [`receiver`] (remote-write 1.0/2.0 over HTTP) → [`convert`] (protobuf to
//!   series, validated) → [`wal`] (group-committed, fsynced) → [`head`] → cut into blocks and
//!   uploaded by [`shipper`], which also answers remote-read ([`read`]) from what it holds;
//! * **import**: [`openmetrics`] text files → [`cutter`] (aligned windows) → blocks.
//!
//! Never does PromQL. Only [`receiver`], [`convert`] and [`read`] know protobuf.
//!
//! **Invariants.** A 2xx on a write means its samples are in the WAL, fsynced. The WAL is
//! checkpointed (truncated) only after the blocks holding its samples are uploaded. A block's
//! `meta.json` is uploaded last. Import parses every input before writing anything.

pub mod convert;
pub mod cutter;
pub mod error;
pub mod head;
pub mod metrics;
pub mod openmetrics;
pub mod read;
pub mod receiver;
pub mod shipper;
pub mod wal;

pub use error::{Error, Result};
pub use shipper::{Shipper, ShipperConfig};
