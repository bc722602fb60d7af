//! Errors of the query crate, by fault category (the HTTP status follows from the category).

/// Errors while planning or evaluating a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad PromQL or bad parameters: the user's to fix (HTTP 400, `bad_data`).
    #[error("{0}")]
    BadData(String),
    /// A query that parses but cannot be evaluated (HTTP 422, `execution`), e.g. many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// The query ran out of time (HTTP 503, `timeout`).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// Too many samples loaded (HTTP 422, `execution`, as Prometheus answers).
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The object store failed (HTTP 503 `unavailable`... answered as Prometheus's `internal`).
    #[error("read blocks")]
    Store(#[from] fleetscope_store::Error),
    /// The object store failed, seen through a shared plan error (HTTP 503, as [`Error::Store`]).
    #[error("read blocks: {0}")]
    Unavailable(String),
    /// The query needed more memory than `--query.max-memory` leaves it (HTTP 422, `execution`).
    #[error("query exceeded its memory limit: {0}")]
    ResourcesExhausted(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the query [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A [`Error::Execution`] from anything printable.
pub(crate) fn exec(msg: impl std::fmt::Display) -> Error {
    Error::Execution(msg.to_string())
}

/// A [`Error::BadData`] from anything printable.
pub(crate) fn bad(msg: impl std::fmt::Display) -> Error {
    Error::BadData(msg.to_string())
}
