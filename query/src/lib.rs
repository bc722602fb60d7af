//! The fleetscope querier: reads every cluster's blocks and answers PromQL.
//!
//! * [`Catalog`] and [`Source`] (from `store`): the blocks of the object store and the read seam;
//! * [`engine`]: PromQL parsed by `promql-parser`, evaluated over dense per-series arrays with
//!   Prometheus's semantics (lookback, staleness, extrapolation, matching, errors);
//! * [`remote`]: remote-read endpoints (shippers' fresh data) as sources, answering partially;
//! * [`api`]: the Prometheus HTTP API, with the [`warnings`] of partial answers;
//! * [`value`]: result types.
//!
//! **Invariants.** Never depends on `ingest`: the querier reads the object store and, over the
//! remote-read protocol, shippers. It keeps no state a listing cannot rebuild in seconds.

pub mod api;
pub mod capacity;
pub mod downsampling;
pub mod engine;
pub mod error;
mod eval;
mod exec;
mod memory;
pub mod plan;
pub mod remote;
pub mod sql;
pub mod value;
pub use fleetscope_store::warnings;

pub use downsampling::SourceResolution;
pub use engine::{Compat, Engine, EngineOptions, FEATURES, MAX_DEPTH, Planned, STACK_BYTES};
pub use error::{Error, Result};
pub use fleetscope_store::{Catalog, Fanout, MemSource, SelectHints, Source};
pub use remote::{ClientTls, Credentials, RemoteRead};
pub use sql::{Sql, SqlResult};
pub use value::{InstantSample, QueryValue, RangeSeries};
