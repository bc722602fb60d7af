//! Getting samples into fleetscope.
//!
//! * the **shipper**: [`receiver`] (remote-write 1.0/2.0 over HTTP) → [`convert`] (protobuf to
//!   series, validated) → [`wal`] (group-committed, fsynced) → [`head`] → cut into blocks and
//!   uploaded by [`shipper`], which also answers remote-read ([`read`]) from what it holds;
//! * **import**: [`openmetrics`] text files, streamed through a head of their own → blocks,
//!   published when the whole run succeeded ([`import`]); [`cutter`] is the in-memory reference.
//!
//! Never does PromQL. Only [`receiver`], [`convert`] and [`read`] know protobuf.
//!
//! **Invariants.** A 2xx on a write means its samples are in the WAL, fsynced. The WAL is
//! checkpointed (truncated) only after the blocks holding its samples are uploaded. A block's
//! `meta.json` is uploaded last. An import publishes its blocks only once every input is in.

pub mod batch;
mod chunk_files;
pub mod convert;
pub mod cutter;
pub mod error;
pub mod head;
pub mod import;
pub mod metrics;
pub mod openmetrics;
pub mod read;
pub mod receiver;
pub mod shipper;
pub mod wal;

pub use error::{Error, Result};
pub use shipper::{Shipper, ShipperConfig};
