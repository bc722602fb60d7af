//! The fleetscope querier: reads every cluster's blocks and answers PromQL.
//!
//! * [`catalog`]: the blocks of the object store (listing `*/meta.json`), as a [`source::Source`];
//! * [`engine`]: PromQL parsed by `promql-parser`, evaluated over dense per-series arrays with
//!   Prometheus's semantics (lookback, staleness, extrapolation, matching, errors);
//! * [`api`]: the Prometheus HTTP API;
//! * [`value`]: result types.
//!
//! **Invariants.** Never depends on `ingest`: the querier reads only the object store. It keeps no
//! state a listing cannot rebuild in seconds.

pub mod api;
pub mod catalog;
pub mod engine;
pub mod error;
mod eval;
pub mod source;
pub mod value;

pub use catalog::Catalog;
pub use engine::{Compat, Engine, EngineOptions};
pub use error::{Error, Result};
pub use source::{Fanout, MemSource, Source};
pub use value::{InstantSample, QueryValue, RangeSeries};
