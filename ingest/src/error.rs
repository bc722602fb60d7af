//! Errors of the ingest crate.

/// Errors while ingesting samples.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed input file.
    #[error("{file}:{error}")]
    Parse {
        /// The file's name as given.
        file: String,
        /// Line, column and what is wrong (part of this message, not a separate cause).
        error: crate::openmetrics::ParseError,
    },
    /// Reading an input file failed.
    #[error("read {file}")]
    Read {
        /// The file's name as given.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a block failed.
    #[error("write block for window starting at {window_start} ms")]
    WriteBlock {
        /// Start of the block's window (ms).
        window_start: i64,
        /// The cause.
        #[source]
        source: fleetscope_store::Error,
    },
}

/// Result with the ingest [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
