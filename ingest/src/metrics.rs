//! The shipper's own metrics, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// HTTP status code.
    pub code: String,
}

/// Every metric of the shipper.
#[derive(Debug)]
pub struct Metrics {
    /// The registry they are served from.
    pub registry: Registry,
    /// Remote-write requests by status code.
    pub requests: Family<CodeLabels, Counter>,
    /// Samples written to the WAL and the head.
    pub samples_appended: Counter,
    /// Samples refused (too old, or with an invalid request).
    pub samples_rejected: Counter,
    /// Bytes written to the WAL.
    pub wal_bytes: Counter,
    /// WAL fsyncs (one per group commit).
    pub wal_fsyncs: Counter,
    /// WAL checkpoints written (after a cut, or when the log grew past twice the last one).
    pub wal_checkpoints: Counter,
    /// Series in the head.
    pub head_series: Gauge,
    /// Samples in the head.
    pub head_samples: Gauge,
    /// Bytes of the head's samples (coded chunks, in files or memory, and coded open tails).
    pub head_sample_bytes: Gauge,
    /// Blocks cut from the head.
    pub blocks_cut: Counter,
    /// Blocks uploaded.
    pub blocks_uploaded: Counter,
    /// Failed upload attempts.
    pub upload_failures: Counter,
    /// Blocks cut but not uploaded yet.
    pub blocks_pending: Gauge,
    /// Seconds the oldest pending block has waited.
    pub upload_lag_seconds: Gauge,
}

impl Metrics {
    /// Fresh metrics in a fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fleetscope_ingest");
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            "remote_write_requests",
            "Remote-write requests by status code",
            requests.clone(),
        );
        let m = Self {
            requests,
            samples_appended: Counter::default(),
            samples_rejected: Counter::default(),
            wal_bytes: Counter::default(),
            wal_fsyncs: Counter::default(),
            wal_checkpoints: Counter::default(),
            head_series: Gauge::default(),
            head_samples: Gauge::default(),
            head_sample_bytes: Gauge::default(),
            blocks_cut: Counter::default(),
            blocks_uploaded: Counter::default(),
            upload_failures: Counter::default(),
            blocks_pending: Gauge::default(),
            upload_lag_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "samples_appended",
            "Samples written to the WAL and the head",
            m.samples_appended.clone(),
        );
        registry.register(
            "samples_rejected",
            "Samples refused",
            m.samples_rejected.clone(),
        );
        registry.register("wal_bytes", "Bytes written to the WAL", m.wal_bytes.clone());
        registry.register(
            "wal_fsyncs",
            "WAL fsyncs (group commits)",
            m.wal_fsyncs.clone(),
        );
        registry.register(
            "wal_checkpoints",
            "WAL checkpoints written",
            m.wal_checkpoints.clone(),
        );
        registry.register("head_series", "Series in the head", m.head_series.clone());
        registry.register(
            "head_samples",
            "Samples in the head",
            m.head_samples.clone(),
        );
        registry.register(
            "head_sample_bytes",
            "Bytes of the head's samples (coded chunks, in chunk files or memory, and coded open tails)",
            m.head_sample_bytes.clone(),
        );
        registry.register(
            "blocks_cut",
            "Blocks cut from the head",
            m.blocks_cut.clone(),
        );
        registry.register(
            "blocks_uploaded",
            "Blocks uploaded to the object store",
            m.blocks_uploaded.clone(),
        );
        registry.register(
            "upload_failures",
            "Failed block upload attempts (retried)",
            m.upload_failures.clone(),
        );
        registry.register(
            "blocks_pending",
            "Blocks cut and waiting for upload",
            m.blocks_pending.clone(),
        );
        registry.register(
            "upload_lag_seconds",
            "Seconds the oldest pending block has waited",
            m.upload_lag_seconds.clone(),
        );
        Self { registry, ..m }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
