//! Errors of the store crate.

use crate::meta::BlockId;

/// Errors of the block format, its reader and writer, and object-store access.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A label set breaks the rules (sorted, unique, non-empty names and values).
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// A matcher's regular expression does not compile.
    #[error("invalid matcher {0}")]
    InvalidMatcher(String),
    /// An `--objstore` URL that cannot be used.
    #[error("object store URL {url:?}: {reason}")]
    ObjectStoreUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An object-store operation failed.
    #[error("object store {op} {path}")]
    ObjectStore {
        /// The operation (`put`, `get`, `list`, ...).
        op: &'static str,
        /// The object path.
        path: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// Writing or reading Parquet failed.
    #[error("parquet of block {block}")]
    Parquet {
        /// The block being written or read.
        block: BlockId,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Building Arrow arrays failed.
    #[error("arrow")]
    Arrow(#[from] arrow::error::ArrowError),
    /// `meta.json` does not parse.
    #[error("meta.json of {path}")]
    Meta {
        /// The object path of the meta file.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A block written by a newer fleetscope.
    #[error("block {block} has format version {version}; this build reads up to {supported}")]
    UnsupportedVersion {
        /// The block.
        block: BlockId,
        /// Its version.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Stored bytes that do not decode.
    #[error("corrupt block data: {0}")]
    Corrupt(String),
    /// A source other than a block failed (a shipper's local data).
    #[error("read {what}")]
    Source {
        /// Which source.
        what: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A block with no samples cannot be written.
    #[error("refusing to write an empty block")]
    EmptyBlock,
}

/// Result with the store [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes on one line, `outer: inner: root`, for logs and HTTP answers.
pub fn display_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
