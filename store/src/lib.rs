//! The fleetscope block format: the contract between everything that writes samples (import,
//! shipper) and everything that reads them (querier).
//!
//! A block holds the samples of one source (identified by its external labels, such as
//! `cluster="training-bj"`) for one time window:
//!
//! ```text
//! <ULID>/data.parquet   one row per series: metric name, labels, time bounds, coded samples
//!                       in sub-chunks of 30 minutes
//! <ULID>/meta.json      version, time range, external labels, stats; written LAST
//! ```
//!
//! **Invariants.** A block without `meta.json` does not exist for readers. Values round-trip bit for
//! bit (NaN payloads and stale markers included). External labels are stored once in `meta.json`
//! and added by readers to every series, unless the series carries a label of the same name.
//!
//! This crate knows no HTTP and no protobuf. Its pieces: [`labels`] and [`series`] (the data
//! model), [`chunk`] (the sample codec), [`sub_chunks`] (the time slots a block cuts series into), [`schema`] (column names), [`meta`] and [`layout`] (block
//! files and paths), [`objstore`] (`--objstore` URLs), [`write_block`] and [`BlockReader`],
//! [`compact`] (merging, downsampling, retention, deletion), [`dedup`] (HA replicas merged),
//! [`downsample`] (5m and 1h summaries), [`MemSeriesSet`]
//! (the in-memory reference), and the read seam every reader goes through: [`Source`] with
//! [`SelectHints`], the bucket's blocks as a [`Catalog`], several sources as one [`Fanout`].

pub mod batch;
pub mod catalog;
pub mod chunk;
pub mod compact;
pub mod dedup;
pub mod downsample;
pub mod error;
pub mod labels;
pub mod layout;
pub mod mem;
pub mod meta;
pub mod objstore;
pub mod reader;
pub mod schema;
pub mod series;
pub mod source;
pub mod sub_chunks;
pub mod upload;
pub mod warnings;
pub mod writer;

pub use catalog::Catalog;
pub use error::{Error, Result};
pub use labels::{Label, Labels, MatchOp, Matcher};
pub use mem::MemSeriesSet;
pub use meta::{BlockId, BlockMeta};
pub use reader::{BlockReader, MetricCount, ScanStats, Selection};
pub use series::{STALE_NAN_BITS, Sample, Series, is_stale_nan};
pub use source::{Fanout, MemSource, SelectHints, Source};
pub use writer::{
    CodedSeries, WriteOptions, publish_block, write_block, write_block_data, write_coded_block,
    write_sorted_block, write_sorted_block_data,
};
