//! [`Shipper`]: the WAL writer, the head, cutting blocks and uploading them.
//!
//! * One WAL thread owns the log: it takes appends from request handlers, writes them as one batch,
//!   fsyncs once (group commit), applies them to the head, then acknowledges. WAL order is head order.
//! * Cut blocks are written to a local staging folder, then uploaded (data first, `meta.json` last)
//!   with exponential backoff while the object store is unreachable; they wait on disk meanwhile.
//! * Only after the upload is the WAL checkpointed (the head's remaining series rewritten, older
//!   segments deleted): nothing acknowledged exists only in memory.
//! * Uploaded blocks move to a `shipped` folder and stay readable there for
//!   [`ShipperConfig::local_retention`], so a querier reading the shipper ([`Shipper::select`], served
//!   as remote-read) sees no gap while its own listing of the bucket catches up.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetscope_store::source::{LabelsFuture, SelectFuture, SelectHints, Source};
use fleetscope_store::{
    BlockId, BlockMeta, BlockReader, Labels, Matcher, Series, WriteOptions, layout,
    write_sorted_block,
};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use tokio::sync::{mpsc, oneshot};

use crate::batch::Batch;
use crate::head::{BlockSeries, Head, Taken};
use crate::metrics::Metrics;
use crate::wal::{Wal, WalError};

/// Shipper settings.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// Where the WAL and staged blocks live.
    pub data_dir: PathBuf,
    /// Block window length.
    pub block_duration: Duration,
    /// External labels of every block (e.g. `cluster`).
    pub external_labels: Labels,
    /// Longest wait between upload retries.
    pub max_backoff: Duration,
    /// How long uploaded blocks stay readable from the shipper (longer than queriers' refresh).
    pub local_retention: Duration,
    /// The WAL checkpoints itself once it has grown this much and twice its last checkpoint.
    pub checkpoint_min_bytes: u64,
}

impl ShipperConfig {
    /// Defaults for everything but the data folder: 2h blocks, no external labels, 30 s longest
    /// backoff, 10 min local retention, checkpoints after at least 64 MiB of log.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            block_duration: Duration::from_secs(2 * 3600),
            external_labels: Labels::empty(),
            max_backoff: Duration::from_secs(30),
            local_retention: Duration::from_secs(600),
            checkpoint_min_bytes: 64 << 20,
        }
    }
}

/// Errors of the shipper.
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    /// The WAL failed.
    #[error("write-ahead log")]
    Wal(#[from] WalError),
    /// Staging a block failed.
    #[error("stage block")]
    Stage(#[source] fleetscope_store::Error),
    /// The WAL thread is gone (shutting down).
    #[error("the WAL writer has stopped")]
    Stopped,
    /// The WAL queue is full: the sender should retry later.
    #[error("overloaded: the WAL queue is full")]
    Overloaded,
    /// Reading a local block failed.
    #[error("read local block")]
    Read(#[source] fleetscope_store::Error),
    /// Local file trouble.
    #[error("{0}")]
    Io(String),
}

enum WalCmd {
    Append {
        series: Batch,
        n: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    Checkpoint {
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// A running shipper.
#[derive(Debug, Clone)]
pub struct Shipper {
    inner: Arc<Inner>,
}

struct Inner {
    config: ShipperConfig,
    head: Arc<Mutex<Head>>,
    wal: mpsc::Sender<WalCmd>,
    staging: Arc<dyn ObjectStore>,
    remote: Arc<dyn ObjectStore>,
    metrics: Arc<Metrics>,
    /// Serialises cuts, uploads and checkpoints: the WAL thread checkpoints on its own only when it
    /// can take this (a checkpoint must not drop the samples of a window between head and bucket).
    cut_lock: Arc<tokio::sync::Mutex<()>>,
    /// Blocks staged and waiting, with the time they were staged.
    pending: Mutex<Vec<(BlockId, Instant)>>,
    /// Uploaded blocks kept in `shipped/` for reads, with the time they were uploaded.
    shipped_store: Arc<dyn ObjectStore>,
    shipped: Mutex<Vec<(Arc<BlockReader>, Instant)>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shipper")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What the shipper holds (head, staged and recently uploaded blocks) is a [`Source`] like the
/// bucket's blocks: remote-read serves it, and a querier in the same process could read it.
impl Source for Shipper {
    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            let series = self.select_local(matchers, hints.start, hints.end).await;
            Ok(fleetscope_store::downsample::raw_view(
                series.map_err(source_error)?,
                hints.aggregate,
            ))
        })
    }

    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            self.series_local(matchers, min_t, max_t)
                .await
                .map_err(source_error)
        })
    }
}

fn source_error(e: ShipperError) -> fleetscope_store::Error {
    fleetscope_store::Error::Source {
        what: "the shipper's local data".into(),
        source: Box::new(e),
    }
}

impl Shipper {
    /// Opens the WAL (replaying it into the head), then uploads blocks left staged by a previous run.
    pub async fn start(
        config: ShipperConfig,
        remote: Arc<dyn ObjectStore>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ShipperError> {
        let duration_ms = config.block_duration.as_millis() as i64;
        let started = Instant::now();
        let chunk_dir = config.data_dir.join("head-chunks");
        let mut head = Head::with_chunk_dir(duration_ms, &chunk_dir)
            .map_err(|e| ShipperError::Io(format!("head chunk files: {e}")))?;
        let (wal, replay) = Wal::open(&config.data_dir.join("wal"), |e| head.replay(e))?;
        tracing::info!(
            records = replay.records,
            entries = replay.entries,
            seconds = started.elapsed().as_secs_f64(),
            series = head.series_count(),
            samples = head.samples(),
            torn_bytes = replay.torn_bytes,
            "wal replayed"
        );
        let head = Arc::new(Mutex::new(head));
        let staging = local_store(&config.data_dir.join("blocks"))?;
        let shipped_store = local_store(&config.data_dir.join("shipped"))?;
        let (tx, rx) = mpsc::channel(4096);
        let cut_lock = Arc::new(tokio::sync::Mutex::new(()));
        spawn_wal_thread(
            wal,
            rx,
            Arc::clone(&head),
            Arc::clone(&metrics),
            Arc::clone(&cut_lock),
            config.checkpoint_min_bytes,
        );
        let shipper = Self {
            inner: Arc::new(Inner {
                config,
                head,
                wal: tx,
                staging,
                remote,
                metrics,
                cut_lock,
                pending: Mutex::new(Vec::new()),
                shipped_store,
                shipped: Mutex::new(Vec::new()),
            }),
        };
        shipper.recover_staged().await?;
        shipper.update_gauges();
        Ok(shipper)
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Series matching `matchers` (external labels included) with samples in `[min_t, max_t]`, from
    /// everything the shipper holds: the head, staged blocks and recently uploaded ones. Sorted by
    /// labels, one entry per label set.
    async fn select_local(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
    ) -> Result<Vec<Series>, ShipperError> {
        let mut parts = vec![self.select_head(matchers, min_t, max_t)?];
        for reader in self.local_blocks(min_t, max_t).await? {
            let selection = match reader.select(matchers, min_t, max_t).await {
                Ok(s) => s,
                Err(e) => self
                    .moved(&reader, e)
                    .await?
                    .select(matchers, min_t, max_t)
                    .await
                    .map_err(ShipperError::Read)?,
            };
            parts.push(selection.series);
        }
        Ok(fleetscope_store::series::merge(parts))
    }

    /// Label sets of the series [`Shipper::select_local`] would return, without their samples.
    async fn series_local(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
    ) -> Result<Vec<Labels>, ShipperError> {
        let mut all: Vec<Labels> = self
            .select_head(matchers, min_t, max_t)?
            .into_iter()
            .map(|s| s.labels)
            .collect();
        for reader in self.local_blocks(min_t, max_t).await? {
            let labels = match reader.series_labels(matchers, min_t, max_t).await {
                Ok(l) => l,
                Err(e) => self
                    .moved(&reader, e)
                    .await?
                    .series_labels(matchers, min_t, max_t)
                    .await
                    .map_err(ShipperError::Read)?,
            };
            all.extend(labels);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn select_head(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
    ) -> Result<Vec<Series>, ShipperError> {
        lock(&self.inner.head)
            .select(matchers, &self.inner.config.external_labels, min_t, max_t)
            .map_err(|e| ShipperError::Io(format!("reading the head: {e}")))
    }

    /// The reader of a staged block that failed because its upload moved it to `shipped/` meanwhile;
    /// `error` if it is not there either.
    async fn moved(
        &self,
        reader: &BlockReader,
        error: fleetscope_store::Error,
    ) -> Result<BlockReader, ShipperError> {
        let store = &self.inner.shipped_store;
        match BlockMeta::read(store.as_ref(), reader.meta().ulid).await {
            Ok(meta) => Ok(BlockReader::new(Arc::clone(store), meta)),
            Err(_) => Err(ShipperError::Read(error)),
        }
    }

    /// Readers of the staged and kept blocks overlapping `[min_t, max_t]`.
    async fn local_blocks(
        &self,
        min_t: i64,
        max_t: i64,
    ) -> Result<Vec<Arc<BlockReader>>, ShipperError> {
        let staged: Vec<BlockId> = self
            .inner
            .pending
            .lock()
            .map(|p| p.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        let mut readers: Vec<Arc<BlockReader>> = self
            .inner
            .shipped
            .lock()
            .map(|s| s.iter().map(|(r, _)| Arc::clone(r)).collect())
            .unwrap_or_default();
        for id in staged {
            // A block uploaded meanwhile has moved to `shipped/` (and is in `readers` next time).
            if let Ok(meta) = BlockMeta::read(self.inner.staging.as_ref(), id).await {
                readers.push(Arc::new(BlockReader::new(
                    Arc::clone(&self.inner.staging),
                    meta,
                )));
            }
        }
        readers.retain(|r| r.meta().overlaps(min_t, max_t));
        Ok(readers)
    }

    /// The oldest timestamp the head accepts.
    pub fn min_valid_t(&self) -> i64 {
        self.inner
            .head
            .lock()
            .map(|h| h.min_valid_t())
            .unwrap_or(i64::MIN)
    }

    /// Makes `series` durable (WAL, fsynced) and visible in the head; resolves when both are done.
    pub async fn append(&self, series: Batch) -> Result<(), ShipperError> {
        let n = series.samples() as u64;
        if n == 0 {
            return Ok(());
        }
        let (done, rx) = oneshot::channel();
        self.inner
            .wal
            .try_send(WalCmd::Append { series, n, done })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ShipperError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => ShipperError::Stopped,
            })?;
        rx.await
            .map_err(|_| ShipperError::Stopped)?
            .map_err(ShipperError::Io)
    }

    /// Cuts every complete window (see [`Head::due_window`]) and ships it. Returns the blocks shipped.
    pub async fn cut_due(&self) -> Result<usize, ShipperError> {
        let _guard = self.inner.cut_lock.lock().await;
        let mut shipped = 0;
        loop {
            let window = {
                let mut head = self
                    .inner
                    .head
                    .lock()
                    .map_err(|_| ShipperError::Io("head lock poisoned".into()))?;
                head.due_window().map(|w| (w, head.cut_window(w)))
            };
            let Some((w, taken)) = window else { break };
            tracing::info!(window_start = w, series = taken.len(), "cutting block");
            let windows = into_blocks(taken).await?;
            shipped += self.stage_and_upload(windows, None).await?;
        }
        if shipped > 0 {
            self.checkpoint().await?;
        }
        Ok(shipped)
    }

    /// Cuts everything in the head and uploads it, waiting at most `timeout` for the object store.
    /// Returns the number of blocks uploaded; blocks not uploaded in time stay staged.
    pub async fn flush(&self, timeout: Option<Duration>) -> Result<usize, ShipperError> {
        let _guard = self.inner.cut_lock.lock().await;
        let taken = self
            .inner
            .head
            .lock()
            .map_err(|_| ShipperError::Io("head lock poisoned".into()))?
            .cut_all();
        let windows = into_blocks(taken).await?;
        let shipped = self.stage_and_upload(windows, timeout).await?;
        if self
            .inner
            .pending
            .lock()
            .map(|p| p.is_empty())
            .unwrap_or(false)
        {
            self.checkpoint().await?;
        }
        self.update_gauges();
        Ok(shipped)
    }

    /// Writes each window as a staged block, then uploads every pending block.
    async fn stage_and_upload(
        &self,
        windows: Vec<(i64, BlockSeries)>,
        timeout: Option<Duration>,
    ) -> Result<usize, ShipperError> {
        let options = WriteOptions {
            producer: format!("fleetscope-shipper/{}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        for (_, series) in windows {
            match write_sorted_block(
                &self.inner.staging,
                series,
                &self.inner.config.external_labels,
                &options,
            )
            .await
            {
                Ok(meta) => {
                    tracing::debug!(block = %meta.ulid, "block staged");
                    self.inner.metrics.blocks_cut.inc();
                    if let Ok(mut p) = self.inner.pending.lock() {
                        p.push((meta.ulid, Instant::now()));
                    }
                }
                Err(fleetscope_store::Error::EmptyBlock) => {}
                Err(e) => return Err(ShipperError::Stage(e)),
            }
        }
        self.update_gauges();
        let upload = self.upload_pending();
        match timeout {
            Some(t) => tokio::time::timeout(t, upload).await.unwrap_or(Ok(0)),
            None => upload.await,
        }
    }

    /// Uploads pending blocks in order, retrying each with exponential backoff until it succeeds.
    async fn upload_pending(&self) -> Result<usize, ShipperError> {
        let mut uploaded = 0;
        loop {
            let next = self
                .inner
                .pending
                .lock()
                .ok()
                .and_then(|p| p.first().map(|(id, _)| *id));
            let Some(id) = next else { return Ok(uploaded) };
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.upload(id).await {
                    Ok(()) => break,
                    Err(e) => {
                        self.inner.metrics.upload_failures.inc();
                        tracing::warn!(block = %id, error = %e, retry_in = ?backoff, "block upload failed; retrying");
                        self.update_gauges();
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.inner.config.max_backoff);
                    }
                }
            }
            if let Ok(mut p) = self.inner.pending.lock() {
                p.retain(|(p, _)| *p != id);
            }
            self.inner.metrics.blocks_uploaded.inc();
            uploaded += 1;
            self.update_gauges();
        }
    }

    /// Copies one staged block to the object store (data first, `meta.json` last), then moves it to
    /// `shipped/`.
    async fn upload(&self, id: BlockId) -> Result<(), String> {
        let meta = BlockMeta::read(self.inner.staging.as_ref(), id)
            .await
            .map_err(|e| e.to_string())?;
        for file in meta
            .files
            .iter()
            .map(|f| f.path.as_str())
            .chain(["meta.json"])
        {
            let path = layout::file_path(id, file);
            fleetscope_store::upload::copy(self.inner.staging.as_ref(), &self.inner.remote, &path)
                .await
                .map_err(|e| fleetscope_store::error::display_chain(&e))?;
        }
        // Keep the block readable from `shipped/` until queriers have listed it.
        let dir = &self.inner.config.data_dir;
        let (from, to) = (
            dir.join("blocks").join(id.to_string()),
            dir.join("shipped").join(id.to_string()),
        );
        std::fs::rename(&from, &to)
            .map_err(|e| format!("move {} to {}: {e}", from.display(), to.display()))?;
        if let Ok(mut s) = self.inner.shipped.lock() {
            let reader = BlockReader::new(Arc::clone(&self.inner.shipped_store), meta.clone());
            s.push((Arc::new(reader), Instant::now()));
        }
        tracing::info!(block = %id, series = meta.stats.series, samples = meta.stats.samples, "block uploaded");
        Ok(())
    }

    /// Finds blocks staged by a previous run: complete ones are queued for upload, incomplete ones
    /// (no `meta.json`: the run died while writing) are removed — their samples are still in the WAL.
    async fn recover_staged(&self) -> Result<(), ShipperError> {
        let dir = self.inner.config.data_dir.join("blocks");
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| ShipperError::Io(format!("read {}: {e}", dir.display())))?;
        let mut ids: Vec<BlockId> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        ids.sort();
        // The newest sample time a block already holds: a crash after a cut and before the WAL's
        // checkpoint replays that block's samples into the head again.
        let mut held_until: Option<i64> = None;
        for meta in BlockMeta::list(&self.inner.shipped_store)
            .await
            .map_err(ShipperError::Read)?
        {
            held_until = held_until.max(Some(meta.max_t - 1));
            let reader = BlockReader::new(Arc::clone(&self.inner.shipped_store), meta);
            if let Ok(mut s) = self.inner.shipped.lock() {
                s.push((Arc::new(reader), Instant::now()));
            }
        }
        for id in ids {
            if dir.join(id.to_string()).join("meta.json").exists() {
                let meta = BlockMeta::read(self.inner.staging.as_ref(), id)
                    .await
                    .map_err(ShipperError::Read)?;
                held_until = held_until.max(Some(meta.max_t - 1));
                if let Ok(mut p) = self.inner.pending.lock() {
                    p.push((id, Instant::now()));
                }
            } else {
                let _ = std::fs::remove_dir_all(dir.join(id.to_string()));
            }
        }
        // Blocks are cut oldest window first: everything up to the end of the newest one's window
        // is in blocks already. Drop it from the head (and refuse it from now on), as the cut did.
        if let Some(t) = held_until
            && let Ok(mut head) = self.inner.head.lock()
        {
            let d = head.duration_ms();
            let before = head.samples();
            head.cut_window(t.div_euclid(d) * d);
            tracing::info!(
                samples = before - head.samples(),
                "dropped replayed samples that blocks already hold"
            );
        }
        Ok(())
    }

    /// Uploads blocks a previous run left staged (call once the shipper serves).
    pub async fn upload_recovered(&self) -> Result<usize, ShipperError> {
        let _guard = self.inner.cut_lock.lock().await;
        self.upload_pending().await
    }

    async fn checkpoint(&self) -> Result<(), ShipperError> {
        let (done, rx) = oneshot::channel();
        self.inner
            .wal
            .send(WalCmd::Checkpoint { done })
            .await
            .map_err(|_| ShipperError::Stopped)?;
        rx.await
            .map_err(|_| ShipperError::Stopped)?
            .map_err(ShipperError::Io)?;
        tracing::debug!("wal checkpointed");
        Ok(())
    }

    fn update_gauges(&self) {
        let m = &self.inner.metrics;
        if let Ok(h) = self.inner.head.lock() {
            m.head_series.set(h.series_count() as i64);
            m.head_samples.set(h.samples() as i64);
            m.head_sample_bytes.set(h.sample_bytes() as i64);
        }
        if let Ok(p) = self.inner.pending.lock() {
            m.blocks_pending.set(p.len() as i64);
            m.upload_lag_seconds
                .set(p.first().map_or(0, |(_, t)| t.elapsed().as_secs() as i64));
        }
    }

    /// Runs until `stop` resolves: cuts due windows every second.
    pub async fn run_cutter(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.cut_due().await {
                tracing::error!(error = %e, "cutting blocks failed");
            }
            self.prune_shipped();
            self.update_gauges();
        }
    }

    /// Deletes uploaded blocks kept longer than the local retention (the cutter calls it every
    /// second).
    pub fn prune_shipped(&self) {
        let retention = self.inner.config.local_retention;
        let expired: Vec<BlockId> = match self.inner.shipped.lock() {
            Ok(mut s) => {
                let (old, keep) = s
                    .drain(..)
                    .partition(|(_, uploaded)| uploaded.elapsed() >= retention);
                *s = keep;
                old.into_iter().map(|(r, _)| r.meta().ulid).collect()
            }
            Err(_) => return,
        };
        for id in expired {
            let dir = self
                .inner
                .config
                .data_dir
                .join("shipped")
                .join(id.to_string());
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(block = %id, error = %e, "removing an uploaded block's local copy failed");
            }
        }
    }
}

/// Splits what was taken from the head into blocks by window, sorted, off the async runtime (the
/// head is not locked meanwhile); the series are coded as the blocks are written.
async fn into_blocks(taken: Taken) -> Result<Vec<(i64, BlockSeries)>, ShipperError> {
    tokio::task::spawn_blocking(move || taken.into_blocks())
        .await
        .map_err(|e| ShipperError::Io(format!("sorting task: {e}")))
}

/// An object store over a local folder, created if missing.
fn local_store(dir: &std::path::Path) -> Result<Arc<dyn ObjectStore>, ShipperError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ShipperError::Io(format!("create {}: {e}", dir.display())))?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| ShipperError::Io(format!("{}: {e}", dir.display())))?;
    Ok(Arc::new(store))
}

/// The WAL thread: batches appends, one fsync per batch, applies to the head, acknowledges.
/// Besides the checkpoints after each upload, it checkpoints whenever the log has grown past twice
/// the last checkpoint (and `min_bytes`, [`ShipperConfig::checkpoint_min_bytes`]): replay after a crash then reads the head's
/// coded chunks and at most about twice as many bytes of raw samples, and the log's disk use stays
/// bounded, for at most half again the WAL's writes.
fn spawn_wal_thread(
    mut wal: Wal,
    mut rx: mpsc::Receiver<WalCmd>,
    head: Arc<Mutex<Head>>,
    metrics: Arc<Metrics>,
    cut_lock: Arc<tokio::sync::Mutex<()>>,
    min_bytes: u64,
) {
    std::thread::Builder::new()
        .name("fleetscope-wal".into())
        .spawn(move || {
            let (mut grown, mut last) = (0u64, 0u64);
            let checkpointed = |wal: &mut Wal, grown: &mut u64, last: &mut u64| {
                let result = checkpoint(wal, &head);
                if let Ok(bytes) = result {
                    (*grown, *last) = (0, bytes);
                    metrics.wal_checkpoints.inc();
                }
                result.map_err(|e| fleetscope_store::error::display_chain(&e))
            };
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < 1024 {
                    match rx.try_recv() {
                        Ok(cmd) => batch.push(cmd),
                        Err(_) => break,
                    }
                }
                let mut appends = Vec::new();
                for cmd in batch {
                    match cmd {
                        WalCmd::Append { series, n, done } => appends.push((series, n, done)),
                        WalCmd::Checkpoint { done } => {
                            grown +=
                                commit(&mut wal, std::mem::take(&mut appends), &head, &metrics);
                            let _ =
                                done.send(checkpointed(&mut wal, &mut grown, &mut last).map(drop));
                        }
                    }
                }
                grown += commit(&mut wal, appends, &head, &metrics);
                if grown >= min_bytes.max(2 * last)
                    && let Ok(_cutting) = cut_lock.try_lock()
                    && let Err(e) = checkpointed(&mut wal, &mut grown, &mut last)
                {
                    tracing::error!(error = %e, "wal checkpoint failed; the log keeps growing");
                }
            }
        })
        .expect("spawning a thread only fails when the OS is out of resources at start-up");
}

/// Writes the head to a fresh WAL segment a thousand series a record, locking the head for one
/// record at a time (only this thread appends, and cuts wait for the checkpoint, so the head holds
/// the same series throughout).
fn checkpoint(wal: &mut Wal, head: &Mutex<Head>) -> Result<u64, crate::wal::WalError> {
    let ids = lock(head).series_ids();
    wal.checkpoint(ids.chunks(1000).map(|ids| {
        lock(head)
            .checkpoint_record(ids)
            .map_err(crate::wal::WalError::Checkpoint)
    }))
}

/// The head, locked (a panic while it was locked left it usable: every change is one step).
fn lock(head: &Mutex<Head>) -> std::sync::MutexGuard<'_, Head> {
    match head.lock() {
        Ok(h) => h,
        Err(poisoned) => poisoned.into_inner(),
    }
}

type Append = (Batch, u64, oneshot::Sender<Result<(), String>>);

/// Logs a batch of appends as one record (new label sets, then samples by reference), fsyncs once,
/// then applies them to the head and acknowledges each. Returns the bytes logged.
fn commit(wal: &mut Wal, appends: Vec<Append>, head: &Mutex<Head>, metrics: &Metrics) -> u64 {
    if appends.is_empty() {
        return 0;
    }
    let mut payload = Vec::new();
    let ids: Vec<Vec<u64>> = {
        let mut h = lock(head);
        appends
            .iter()
            .map(|(series, ..)| h.log(series, &mut payload))
            .collect()
    };
    match wal.append(&[&payload]) {
        Ok(bytes) => {
            metrics.wal_bytes.inc_by(bytes);
            metrics.wal_fsyncs.inc();
            let mut h = lock(head);
            for ((series, n, done), ids) in appends.into_iter().zip(ids) {
                h.append(&ids, &series);
                metrics.samples_appended.inc_by(n);
                let _ = done.send(Ok(()));
            }
            metrics.head_series.set(h.series_count() as i64);
            metrics.head_samples.set(h.samples() as i64);
            bytes
        }
        Err(e) => {
            let msg = fleetscope_store::error::display_chain(&e);
            tracing::error!(error = %msg, "wal write failed");
            let mut h = lock(head);
            for ids in &ids {
                h.forget(ids);
            }
            for (.., done) in appends {
                let _ = done.send(Err(msg.clone()));
            }
            0
        }
    }
}
