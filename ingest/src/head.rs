//! The head: samples since the last cut, per series, in memory — compressed.
//!
//! Each series keeps its samples in arrival order as sealed chunks of [`CHUNK_SAMPLES`] samples,
//! coded with the block codec (`store::chunk`, a few bytes per sample instead of 16), followed by an
//! open tail coded as samples arrive ([`Tail`]: a byte or two of timestamp and the value's changed
//! bytes). Reads decode only the chunks overlapping the asked range.
//!
//! Every series has a reference number, given when the head first sees it and logged with it in the
//! WAL ([`Head::log`]); samples are logged and applied by reference ([`Head::append`]).
//!
//! Windows are aligned to the epoch (`--block-duration`). A window is cut once samples half a window
//! past its end have arrived (as Prometheus waits before compacting its head), so late samples
//! still land in it. Samples older than the last cut window are refused. A tail is sealed when a
//! sample of another window arrives, so every chunk lies in one window and a cut moves chunks out
//! as they are.
//!
//! The shipper's head keeps sealed chunks in files ([`Head::with_chunk_dir`],
//! [`crate::chunk_files`]) and only their place in memory; the importer's keeps them in memory.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use rustc_hash::FxHashMap;

use fleetscope_store::chunk::{decode_timestamps, decode_values, encode_timestamps, encode_values};
use fleetscope_store::mem::select_series;
use fleetscope_store::series::{sort_dedup, window_start};
use fleetscope_store::sub_chunks::SubChunks;
use fleetscope_store::{CodedSeries, Error as StoreError, Labels, Matcher, Sample, Series};

use crate::batch::Batch;
use crate::chunk_files::{ChunkFiles, Stored};
use crate::wal::{self, Entry};

/// Samples per sealed chunk (Prometheus's head chunks hold 120).
pub const CHUNK_SAMPLES: usize = 120;

/// Samples not yet in a block.
#[derive(Debug)]
pub struct Head {
    ids: FxHashMap<Labels, u64>,
    series: FxHashMap<u64, (Labels, MemSeries)>,
    next_id: u64,
    /// References logged again for a label set that already had one (replay only).
    aliases: FxHashMap<u64, u64>,
    duration_ms: i64,
    /// Samples before this time belong to windows already cut.
    min_valid_t: i64,
    min_t: i64,
    max_t: i64,
    samples: usize,
    /// Where sealed chunks go; `None`: they stay in memory.
    files: Option<ChunkFiles>,
}

impl Head {
    /// An empty head cutting windows of `duration_ms`, its chunks in memory.
    pub fn new(duration_ms: i64) -> Self {
        Self {
            ids: FxHashMap::default(),
            series: FxHashMap::default(),
            next_id: 1,
            aliases: FxHashMap::default(),
            duration_ms: duration_ms.max(1),
            min_valid_t: i64::MIN,
            min_t: i64::MAX,
            max_t: i64::MIN,
            samples: 0,
            files: None,
        }
    }

    /// An empty head cutting windows of `duration_ms`, its sealed chunks in files in `dir` (emptied
    /// first: nothing there outlives the process).
    pub fn with_chunk_dir(duration_ms: i64, dir: &Path) -> io::Result<Self> {
        let mut head = Self::new(duration_ms);
        head.files = Some(ChunkFiles::open(dir)?);
        Ok(head)
    }

    /// The oldest timestamp still accepted.
    pub fn min_valid_t(&self) -> i64 {
        self.min_valid_t
    }

    /// Number of series.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of samples held (duplicates of a timestamp included until the cut).
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// The references of `series` (new label sets get one), with their WAL entries appended to
    /// `log`: each new label set, then every series' samples. Call [`Head::append`] once the log is
    /// durable, or [`Head::forget`] if writing it failed.
    pub fn log(&mut self, batch: &Batch, log: &mut Vec<u8>) -> Vec<u64> {
        batch
            .iter()
            .map(|(labels, samples)| {
                let id = match self.ids.get(labels) {
                    Some(&id) => id,
                    None => {
                        let id = self.next_id;
                        self.next_id += 1;
                        self.ids.insert(labels.clone(), id);
                        self.series
                            .insert(id, (labels.clone(), MemSeries::default()));
                        wal::put_series(log, id, labels);
                        id
                    }
                };
                wal::put_samples(log, id, samples);
                id
            })
            .collect()
    }

    /// Adds the samples of `series` (already checked against [`Head::min_valid_t`]) to the series
    /// of references `ids`, as [`Head::log`] gave them.
    pub fn append(&mut self, ids: &[u64], batch: &Batch) {
        for (&id, (labels, samples)) in ids.iter().zip(batch.iter()) {
            self.add(id, labels, samples);
        }
    }

    /// Adds `samples` to the series of reference `id` and labels `labels`, for callers that number
    /// series themselves and keep no WAL (the importer): one reference per label set, never
    /// reused for another. A cut may drop a series that is empty; adding to it again recreates it.
    pub fn add(&mut self, id: u64, labels: &Labels, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        self.track(samples);
        let (_, m) = self.series.entry(id).or_insert_with(|| {
            self.ids.insert(labels.clone(), id);
            (labels.clone(), MemSeries::default())
        });
        m.push(samples, self.duration_ms, self.files.as_mut());
        self.next_id = self.next_id.max(id + 1);
    }

    /// Drops the series of `ids` that hold no samples (their log entries were not written).
    pub fn forget(&mut self, ids: &[u64]) {
        for id in ids {
            if self.series.get(id).is_some_and(|(_, m)| m.len == 0)
                && let Some((labels, _)) = self.series.remove(id)
            {
                self.ids.remove(&labels);
            }
        }
    }

    /// Applies one entry read back from the WAL. A label set logged again under a new reference
    /// (a cut dropped it before the checkpoint) keeps its first reference.
    pub fn replay(&mut self, entry: Entry) -> Result<(), String> {
        match entry {
            Entry::Series { id, labels } => {
                self.next_id = self.next_id.max(id + 1);
                match self.ids.get(&labels) {
                    Some(&first) => {
                        self.aliases.insert(id, first);
                    }
                    None => {
                        self.ids.insert(labels.clone(), id);
                        self.series.insert(id, (labels, MemSeries::default()));
                    }
                }
            }
            Entry::Samples { id, samples } => {
                let id = self.aliases.get(&id).copied().unwrap_or(id);
                let Some((_, m)) = self.series.get_mut(&id) else {
                    return Err(format!("samples of series {id}, which was never logged"));
                };
                m.push(&samples, self.duration_ms, self.files.as_mut());
                self.track(&samples);
            }
            Entry::Chunk { id, chunk } => {
                let id = self.aliases.get(&id).copied().unwrap_or(id);
                let Some((_, m)) = self.series.get_mut(&id) else {
                    return Err(format!("a chunk of series {id}, which was never logged"));
                };
                self.samples += chunk.n as usize;
                self.min_t = self.min_t.min(chunk.min_t);
                self.max_t = self.max_t.max(chunk.max_t);
                m.add_chunk(chunk, self.duration_ms, self.files.as_mut())
                    .map_err(|e| format!("a chunk of series {id}: {e}"))?;
            }
        }
        Ok(())
    }

    fn track(&mut self, samples: &[Sample]) {
        self.samples += samples.len();
        for x in samples {
            self.min_t = self.min_t.min(x.t);
            self.max_t = self.max_t.max(x.t);
        }
    }

    /// Series matching all `matchers` (with `external` labels added), samples in `[min_t, max_t]`
    /// sorted and unique, sorted by labels: what a querier needs of data not yet in blocks. Fails
    /// only if a chunk file cannot be read.
    pub fn select(
        &self,
        matchers: &[Matcher],
        external: &Labels,
        min_t: i64,
        max_t: i64,
    ) -> io::Result<Vec<Series>> {
        select_series(
            self.series.values().map(|(labels, m)| (labels, m)),
            matchers,
            external,
            |m: &MemSeries| m.samples(min_t, max_t),
        )
    }

    /// The references of every series, for a checkpoint ([`Head::checkpoint_record`]).
    pub fn series_ids(&self) -> Vec<u64> {
        self.series.keys().copied().collect()
    }

    /// A checkpoint's WAL record for the series of `ids` still held: each label set with its
    /// reference, its sealed chunks as they are, then its tail's samples.
    pub fn checkpoint_record(&self, ids: &[u64]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut tail = Vec::new();
        for (id, (labels, m)) in ids.iter().filter_map(|id| Some((id, self.series.get(id)?))) {
            wal::put_series(&mut out, *id, labels);
            for c in &m.sealed {
                wal::put_chunk(&mut out, *id, c, &c.bytes()?);
            }
            tail.clear();
            m.open.decode_into(&mut tail);
            if !tail.is_empty() {
                wal::put_samples(&mut out, *id, &tail);
            }
        }
        Ok(out)
    }

    /// The start of the oldest window that is complete: the head holds samples half a window past
    /// its end.
    pub fn due_window(&self) -> Option<i64> {
        let w = self.oldest_window()?;
        (self.max_t >= w + self.duration_ms + self.duration_ms / 2).then_some(w)
    }

    /// The length of the head's block windows (ms).
    pub fn duration_ms(&self) -> i64 {
        self.duration_ms
    }

    /// The start of the window of the oldest sample held.
    pub fn oldest_window(&self) -> Option<i64> {
        (self.samples > 0).then(|| window_start(self.min_t, self.duration_ms))
    }

    /// Removes the samples of window `w` (and any before it) and returns them for coding into a
    /// block ([`Taken::into_blocks`], best done after releasing the head); later samples before
    /// its end are refused. Chunks and tails move out as they are (each lies in one window).
    pub fn cut_window(&mut self, w: i64) -> Taken {
        let end = w + self.duration_ms;
        let mut taken = Vec::new();
        self.series.retain(|_, (labels, m)| {
            if m.min_t >= end {
                return true;
            }
            taken.push((labels.clone(), m.take_before(end)));
            m.len > 0
        });
        if let Some(files) = &mut self.files {
            files.close_before(end);
        }
        self.recount();
        self.min_valid_t = self.min_valid_t.max(end);
        Taken {
            duration_ms: self.duration_ms,
            series: taken,
        }
    }

    /// Removes everything (a flush), for coding into blocks by window ([`Taken::code`]). Does not
    /// move [`Head::min_valid_t`]: samples may still arrive for these windows and will be cut into
    /// further blocks.
    pub fn cut_all(&mut self) -> Taken {
        let series = std::mem::take(&mut self.series)
            .into_values()
            .map(|(labels, m)| {
                let mut pieces: Vec<Piece> = m.sealed.into_iter().map(Piece::Coded).collect();
                pieces.push(Piece::Tail(m.open));
                (labels, pieces)
            })
            .collect();
        if let Some(files) = &mut self.files {
            files.close_before(i64::MAX);
        }
        self.recount();
        Taken {
            duration_ms: self.duration_ms,
            series,
        }
    }

    /// Bytes held by samples (sealed chunks and open tails, both coded), for the metrics.
    pub fn sample_bytes(&self) -> usize {
        self.series
            .values()
            .map(|(_, m)| m.sealed.iter().map(Chunk::byte_len).sum::<usize>() + m.open.buf.len())
            .sum()
    }

    fn recount(&mut self) {
        let series = &self.series;
        self.ids.retain(|_, id| series.contains_key(id));
        self.samples = series.values().map(|(_, m)| m.len).sum();
        self.min_t = series
            .values()
            .map(|(_, m)| m.min_t)
            .min()
            .unwrap_or(i64::MAX);
        self.max_t = series
            .values()
            .map(|(_, m)| m.max_t)
            .max()
            .unwrap_or(i64::MIN);
    }
}

/// Samples taken out of the head, in arrival order per series, to be coded into blocks.
#[derive(Debug)]
pub struct Taken {
    duration_ms: i64,
    series: Vec<(Labels, Vec<Piece>)>,
}

/// Part of a taken series: a sealed chunk as it was, or a tail.
#[derive(Debug)]
enum Piece {
    Coded(Chunk),
    Tail(Tail),
}

impl Taken {
    /// Number of series taken.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True if nothing was taken.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The taken samples as blocks: per aligned window, oldest first, its series in block order
    /// ([`Labels::cmp_block_order`]), each coded only when the block writer comes to it. A series'
    /// pieces keep their arrival order (the last write of a timestamp wins).
    pub fn into_blocks(self) -> Vec<(i64, BlockSeries)> {
        let d = self.duration_ms;
        let mut windows: BTreeMap<i64, Vec<(Labels, Vec<Piece>)>> = BTreeMap::new();
        for (labels, pieces) in self.series {
            let mut by_window: BTreeMap<i64, Vec<Piece>> = BTreeMap::new();
            for p in pieces {
                if let Some(w) = p.window(d) {
                    by_window.entry(w).or_default().push(p);
                }
            }
            for (w, pieces) in by_window {
                windows.entry(w).or_default().push((labels.clone(), pieces));
            }
        }
        windows
            .into_iter()
            .map(|(w, mut series)| {
                series.sort_unstable_by(|a, b| a.0.cmp_block_order(&b.0));
                (
                    w,
                    BlockSeries {
                        series: series.into_iter(),
                        grid: SubChunks::covering(w, w.saturating_add(d - 1)),
                    },
                )
            })
            .collect()
    }
}

/// One window's series taken from a head, in block order, coded one at a time (samples sorted,
/// the last written kept for a repeated timestamp) as a block writer iterates them.
#[derive(Debug)]
pub struct BlockSeries {
    series: std::vec::IntoIter<(Labels, Vec<Piece>)>,
    /// The window's sub-chunks.
    grid: SubChunks,
}

impl Iterator for BlockSeries {
    type Item = Result<CodedSeries, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        for (labels, pieces) in self.series.by_ref() {
            let mut samples = Vec::new();
            for p in pieces {
                if let Err(e) = p.decode_into(&mut samples) {
                    return Some(Err(StoreError::Source {
                        what: "the head's chunk files".into(),
                        source: Box::new(e),
                    }));
                }
            }
            sort_dedup(&mut samples);
            match CodedSeries::new(labels, &samples, Some(self.grid)) {
                Ok(Some(coded)) => return Some(Ok(coded)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

impl Piece {
    fn decode_into(&self, out: &mut Vec<Sample>) -> io::Result<()> {
        match self {
            Piece::Coded(c) => c.decode_into(out),
            Piece::Tail(t) => {
                t.decode_into(out);
                Ok(())
            }
        }
    }

    /// The window the piece lies in (of length `d`); `None` if it is empty.
    fn window(&self, d: i64) -> Option<i64> {
        match self {
            Piece::Coded(c) => Some(window_start(c.min_t, d)),
            Piece::Tail(t) => (t.n > 0).then(|| window_start(t.t, d)),
        }
    }
}

/// One series' samples in arrival order: sealed chunks, then the open tail.
#[derive(Debug)]
struct MemSeries {
    sealed: Vec<Chunk>,
    open: Tail,
    len: usize,
    min_t: i64,
    max_t: i64,
}

impl Default for MemSeries {
    fn default() -> Self {
        Self {
            sealed: Vec::new(),
            open: Tail::default(),
            len: 0,
            min_t: i64::MAX,
            max_t: i64::MIN,
        }
    }
}

/// A sealed chunk: up to [`CHUNK_SAMPLES`] samples of one window in arrival order, coded with the
/// block codec (timestamps, then values from byte `split` on), in memory or in a chunk file.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The earliest timestamp.
    pub min_t: i64,
    /// The latest timestamp.
    pub max_t: i64,
    /// Number of samples.
    pub n: u32,
    /// Where the values' bytes start.
    pub split: u32,
    bytes: Bytes,
}

/// Where a chunk's bytes are.
#[derive(Debug, Clone)]
enum Bytes {
    Memory(Box<[u8]>),
    File(Stored),
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        match (self.read(), other.read()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl Bytes {
    fn read(&self) -> io::Result<Cow<'_, [u8]>> {
        match self {
            Bytes::Memory(b) => Ok(Cow::Borrowed(b)),
            Bytes::File(s) => s.read().map(Cow::Owned),
        }
    }
}

impl MemSeries {
    /// Appends a sealed chunk (only while the open tail is empty, to keep arrival order).
    fn keep(&mut self, c: Chunk) {
        debug_assert!(self.open.n == 0);
        if c.n == 0 {
            return;
        }
        self.min_t = self.min_t.min(c.min_t);
        self.max_t = self.max_t.max(c.max_t);
        self.len += c.n as usize;
        self.sealed.push(c);
    }

    /// Appends a sealed chunk (windows of length `d`) as it is if the tail is empty and the chunk
    /// lies in one window, else its samples.
    fn add_chunk(&mut self, c: Chunk, d: i64, files: Option<&mut ChunkFiles>) -> io::Result<()> {
        if self.open.n == 0 && window_start(c.min_t, d) == window_start(c.max_t, d) {
            self.keep(c.stored(d, files));
        } else {
            let mut samples = Vec::new();
            c.decode_into(&mut samples)?;
            self.push(&samples, d, files);
        }
        Ok(())
    }

    /// Appends `samples`, sealing the tail when it is full or a sample of another window (of
    /// length `d`) arrives.
    fn push(&mut self, samples: &[Sample], d: i64, mut files: Option<&mut ChunkFiles>) {
        for s in samples {
            self.min_t = self.min_t.min(s.t);
            self.max_t = self.max_t.max(s.t);
        }
        self.len += samples.len();
        for &s in samples {
            if self.open.n > 0 && window_start(s.t, d) != window_start(self.open.t, d) {
                self.seal(d, files.as_deref_mut());
            }
            self.open.push(s);
            if self.open.n as usize == CHUNK_SAMPLES {
                self.seal(d, files.as_deref_mut());
            }
        }
    }

    fn seal(&mut self, d: i64, files: Option<&mut ChunkFiles>) {
        let mut samples = Vec::with_capacity(self.open.n as usize);
        std::mem::take(&mut self.open).decode_into(&mut samples);
        self.sealed.push(Chunk::new(&samples).stored(d, files));
    }

    /// Takes out the chunks and the tail of the windows before `end`.
    fn take_before(&mut self, end: i64) -> Vec<Piece> {
        let (before, after): (Vec<Chunk>, Vec<Chunk>) = std::mem::take(&mut self.sealed)
            .into_iter()
            .partition(|c| c.max_t < end);
        let mut pieces: Vec<Piece> = before.into_iter().map(Piece::Coded).collect();
        if self.open.n > 0 && self.open.t < end {
            pieces.push(Piece::Tail(std::mem::take(&mut self.open)));
        }
        let tail = std::mem::take(&mut self.open);
        let mut tail_samples = Vec::new();
        tail.decode_into(&mut tail_samples);
        *self = MemSeries::default();
        for c in after {
            self.keep(c);
        }
        self.open = tail;
        self.len += tail_samples.len();
        for s in tail_samples {
            self.min_t = self.min_t.min(s.t);
            self.max_t = self.max_t.max(s.t);
        }
        pieces
    }

    /// Samples in `[min_t, max_t]`, sorted, the last written kept for a repeated timestamp.
    fn samples(&self, min_t: i64, max_t: i64) -> io::Result<Vec<Sample>> {
        let mut out = Vec::new();
        if self.max_t < min_t || self.min_t > max_t {
            return Ok(out);
        }
        for c in &self.sealed {
            if c.max_t >= min_t && c.min_t <= max_t {
                c.decode_into(&mut out)?;
            }
        }
        self.open.decode_into(&mut out);
        out.retain(|s| (min_t..=max_t).contains(&s.t));
        sort_dedup(&mut out);
        Ok(out)
    }
}

impl Chunk {
    /// `samples` coded, in the order given.
    pub fn new(samples: &[Sample]) -> Self {
        let ts: Vec<i64> = samples.iter().map(|s| s.t).collect();
        let vs: Vec<f64> = samples.iter().map(|s| s.v).collect();
        let mut bytes = zero_runs(&encode_timestamps(&ts));
        let split = bytes.len() as u32;
        bytes.extend_from_slice(&encode_values(&vs));
        Self {
            min_t: ts.iter().copied().min().unwrap_or(i64::MAX),
            max_t: ts.iter().copied().max().unwrap_or(i64::MIN),
            n: ts.len() as u32,
            split,
            bytes: Bytes::Memory(bytes.into_boxed_slice()),
        }
    }

    /// A chunk of `n` samples in `[min_t, max_t]` already coded (`bytes`, values from `split` on).
    pub fn coded(min_t: i64, max_t: i64, n: u32, split: u32, bytes: Box<[u8]>) -> Self {
        Self {
            min_t,
            max_t,
            n,
            split,
            bytes: Bytes::Memory(bytes),
        }
    }

    /// The coded bytes: timestamps, then values from byte `split` on. Fails only if the chunk's
    /// file cannot be read.
    pub fn bytes(&self) -> io::Result<Cow<'_, [u8]>> {
        self.bytes.read()
    }

    fn byte_len(&self) -> usize {
        match &self.bytes {
            Bytes::Memory(b) => b.len(),
            Bytes::File(s) => s.len(),
        }
    }

    /// The chunk moved to its window's file (windows of length `d`), if there are files.
    fn stored(self, d: i64, files: Option<&mut ChunkFiles>) -> Self {
        match (files, &self.bytes) {
            (Some(files), Bytes::Memory(b)) => {
                let stored = files.append(window_start(self.min_t, d), b);
                Self {
                    bytes: Bytes::File(stored),
                    ..self
                }
            }
            _ => self,
        }
    }

    fn decode_into(&self, out: &mut Vec<Sample>) -> io::Result<()> {
        let bytes = self.bytes()?;
        let (ts_bytes, vs_bytes) = bytes.split_at((self.split as usize).min(bytes.len()));
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        let decoded =
            decode_timestamps(&zeros(ts_bytes), &mut ts).and(decode_values(vs_bytes, &mut vs));
        // The head coded these bytes itself; failing to decode them is a bug, not bad input.
        debug_assert!(
            decoded.is_ok() && ts.len() == vs.len(),
            "head chunk round trip"
        );
        if let Err(e) = decoded {
            tracing::error!(error = %e, "head chunk does not decode; its samples are lost");
            return Ok(());
        }
        out.extend(ts.into_iter().zip(vs).map(|(t, v)| Sample { t, v }));
        Ok(())
    }
}

/// `bytes` with each run of zero bytes as one zero and the run's length (a varint). The block
/// codec writes a steady scrape's timestamps as one zero byte a sample, which Parquet's zstd
/// squeezes in a block; in the head, sealed chunks squeeze them this way (a byte a sample less).
fn zero_runs(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().min(32));
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        if b != 0 {
            out.push(b);
            rest = tail;
            continue;
        }
        let run = rest.iter().take_while(|&&x| x == 0).count();
        out.push(0);
        let mut n = run as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        rest = &rest[run..];
    }
    out
}

/// The inverse of [`zero_runs`].
fn zeros(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        out.push(b);
        if b == 0 {
            let (mut n, mut shift) = (0usize, 0);
            while let Some((&x, tail)) = rest.split_first() {
                rest = tail;
                n |= usize::from(x & 0x7f) << shift;
                shift += 7;
                if x < 0x80 || shift > 63 {
                    break;
                }
            }
            out.resize(out.len() + n.saturating_sub(1), 0);
        }
    }
    out
}

/// The open tail of a series, coded as samples arrive: per sample, the timestamp's
/// delta-of-delta as a zigzag varint (one byte at a steady scrape interval), then the value XOR the
/// previous value's bits as a header byte (leading and trailing zero bytes, `0xff` for "same
/// value") and the bytes between. A few bytes a sample instead of 16, in a buffer grown
/// [`TAIL_GROWTH`] bytes at a time, so a tail never holds more than that unused.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
    n: u32,
    t: i64,
    d: i64,
    v: u64,
}

/// Bytes a tail's buffer grows by.
const TAIL_GROWTH: usize = 64;
/// The most bytes one sample takes in a tail: a 10-byte varint, a header, 8 value bytes.
const TAIL_MAX_SAMPLE: usize = 19;

impl Tail {
    #[cfg(test)]
    fn from_samples(samples: &[Sample]) -> Self {
        let mut tail = Self::default();
        for &s in samples {
            tail.push(s);
        }
        tail
    }

    fn push(&mut self, s: Sample) {
        if self.buf.capacity() - self.buf.len() < TAIL_MAX_SAMPLE {
            self.buf.reserve_exact(TAIL_GROWTH);
        }
        let d = s.t.wrapping_sub(self.t);
        let dod = d.wrapping_sub(self.d);
        let mut z = ((dod << 1) ^ (dod >> 63)) as u64;
        while z >= 0x80 {
            self.buf.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.buf.push(z as u8);
        let bits = s.v.to_bits();
        let x = bits ^ self.v;
        if x == 0 {
            self.buf.push(0xff);
        } else {
            let lead = x.leading_zeros() as usize / 8;
            let trail = x.trailing_zeros() as usize / 8;
            self.buf.push(((lead << 4) | trail) as u8);
            self.buf
                .extend_from_slice(&x.to_be_bytes()[lead..8 - trail]);
        }
        self.t = s.t;
        self.d = d;
        self.v = bits;
        self.n += 1;
    }

    /// Appends the tail's samples, in arrival order, to `out`.
    fn decode_into(&self, out: &mut Vec<Sample>) {
        out.reserve(self.n as usize);
        let mut buf = &self.buf[..];
        let (mut t, mut d, mut v) = (0i64, 0i64, 0u64);
        for _ in 0..self.n {
            // The tail coded these bytes itself: they always decode.
            let mut z = 0u64;
            let mut shift = 0;
            while let Some((&b, rest)) = buf.split_first() {
                buf = rest;
                z |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b < 0x80 {
                    break;
                }
            }
            d = d.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
            t = t.wrapping_add(d);
            let Some((&h, rest)) = buf.split_first() else {
                break;
            };
            buf = rest;
            if h != 0xff {
                let (lead, trail) = ((h >> 4) as usize, (h & 15) as usize);
                let k = (8 - lead - trail).min(buf.len());
                let mut be = [0u8; 8];
                be[lead..lead + k].copy_from_slice(&buf[..k]);
                buf = &buf[k..];
                v ^= u64::from_be_bytes(be);
            }
            out.push(Sample {
                t,
                v: f64::from_bits(v),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs and appends, as the WAL thread does; returns the log.
    fn add(h: &mut Head, series: Vec<Series>) -> Vec<u8> {
        let batch = Batch::from(series);
        let mut log = Vec::new();
        let ids = h.log(&batch, &mut log);
        h.append(&ids, &batch);
        log
    }

    /// The blocks of `taken`, coded.
    fn coded(taken: Taken) -> BTreeMap<i64, Vec<CodedSeries>> {
        taken
            .into_blocks()
            .into_iter()
            .map(|(w, series)| (w, series.collect::<Result<Vec<_>, _>>().unwrap()))
            .collect()
    }

    fn s(t: i64) -> Series {
        Series {
            labels: Labels::from_pairs([("__name__", "up")]),
            samples: vec![Sample { t, v: 1.0 }],
        }
    }

    proptest::proptest! {
        /// A tail gives back exactly the samples pushed, bit for bit and in order, whatever the
        /// timestamps (out of order, extreme) and values (NaN payloads, -0.0, repeats).
        #[test]
        fn tails_round_trip(raw in proptest::collection::vec((proptest::prelude::any::<i64>(), proptest::prelude::any::<u64>(), 0u8..4), 0..300)) {
            let samples: Vec<Sample> = raw
                .iter()
                .scan(0i64, |t, &(r, bits, kind)| {
                    // Mostly a steady scrape with repeated or close values, sometimes anything.
                    *t = if kind == 0 { r } else { t.wrapping_add(15_000) };
                    let v = match kind {
                        1 => 1.0,
                        2 => (r % 1000) as f64 * 0.5,
                        _ => f64::from_bits(bits),
                    };
                    Some(Sample { t: *t, v })
                })
                .collect();
            let tail = Tail::from_samples(&samples);
            proptest::prop_assert!(tail.buf.capacity() - tail.buf.len() <= TAIL_GROWTH + TAIL_MAX_SAMPLE);
            let mut back = Vec::new();
            tail.decode_into(&mut back);
            let bits = |s: &[Sample]| s.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&back), bits(&samples));
        }
    }

    #[test]
    fn a_sealed_chunk_costs_48_bytes_of_memory_when_its_bytes_are_in_a_file() {
        // docs/shipper-memory.md's per-sample budget rests on this figure.
        assert_eq!(std::mem::size_of::<Chunk>(), 48);
    }

    #[test]
    fn zero_runs_round_trip_and_shrink_a_steady_scrape() {
        for bytes in [
            vec![],
            vec![0],
            vec![5, 0, 0, 0, 7, 0],
            vec![0; 300],
            (0..1000).map(|i| (i % 3) as u8).collect(),
        ] {
            assert_eq!(zeros(&zero_runs(&bytes)), bytes);
        }
        let steady: Vec<i64> = (0..CHUNK_SAMPLES as i64).map(|i| i * 15_000).collect();
        let coded = encode_timestamps(&steady);
        assert!(
            zero_runs(&coded).len() < 16,
            "{} bytes",
            zero_runs(&coded).len()
        );
    }

    #[test]
    fn windows_are_cut_half_a_window_late() {
        let mut h = Head::new(100);
        add(&mut h, vec![s(10), s(120)]);
        assert_eq!(h.due_window(), None, "120 < 100 + 50");
        add(&mut h, vec![s(150)]);
        assert_eq!(h.due_window(), Some(0));
        let cut = coded(h.cut_window(0));
        assert_eq!(cut.keys().copied().collect::<Vec<_>>(), [0]);
        assert_eq!(h.min_valid_t(), 100);
        assert_eq!(h.samples(), 2);
        let all = coded(h.cut_all());
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), [100]);
        assert_eq!(
            h.min_valid_t(),
            100,
            "a flush does not refuse later samples of its windows"
        );
        assert_eq!(h.due_window(), None);
    }

    #[test]
    fn sealed_chunks_read_back_exactly_with_the_last_write_winning() {
        round_trip(None);
    }

    #[test]
    fn sealed_chunks_in_files_read_back_exactly_and_their_files_go_with_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        round_trip(Some(dir.path()));
    }

    /// Writes 1,000 samples over 15 windows into a head (chunks in files in `dir`, or in memory),
    /// reads them back through selection, replays of the log and a checkpoint, and a cut.
    fn round_trip(dir: Option<&Path>) {
        let fresh = |name: &str| match dir {
            Some(d) => Head::with_chunk_dir(1_000_000, &d.join(name)).unwrap(),
            None => Head::new(1_000_000),
        };
        let files = |name: &str| {
            dir.map(|d| {
                std::fs::read_dir(d.join(name))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect::<Vec<_>>()
            })
        };
        let mut h = fresh("head");
        let labels = Labels::from_pairs([("__name__", "x"), ("job", "a")]);
        let mut want: BTreeMap<i64, f64> = BTreeMap::new();
        // 1,000 samples in requests of 7, a retried request, a NaN, -0.0 and a late sample.
        let mut all: Vec<Sample> = (0..1000)
            .map(|i| Sample {
                t: i * 15_000 + i % 3,
                v: if i == 500 {
                    f64::NAN
                } else {
                    (i as f64) * 0.25 - 7.0
                },
            })
            .collect();
        all[3].v = -0.0;
        all.extend_from_within(10..17);
        all.push(Sample {
            t: 40 * 15_000,
            v: 99.0,
        });
        let mut logs = Vec::new();
        for chunk in all.chunks(7) {
            logs.push(add(
                &mut h,
                vec![Series {
                    labels: labels.clone(),
                    samples: chunk.to_vec(),
                }],
            ));
            for x in chunk {
                want.insert(x.t, x.v);
            }
        }
        assert!(
            h.sample_bytes() < all.len() * 4,
            "{} bytes",
            h.sample_bytes()
        );
        let external = Labels::from_pairs([("cluster", "c"), ("job", "ignored")]);
        let got = h
            .select(
                &[Matcher::equal("cluster", "c"), Matcher::equal("job", "a")],
                &external,
                30 * 15_000,
                600 * 15_000,
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels.get("cluster"), Some("c"));
        assert_eq!(got[0].labels.get("job"), Some("a"), "own labels win");
        let bits = |v: &[(i64, f64)]| v.iter().map(|(t, v)| (*t, v.to_bits())).collect::<Vec<_>>();
        let expect: Vec<(i64, f64)> = want
            .range(30 * 15_000..=600 * 15_000)
            .map(|(t, v)| (*t, *v))
            .collect();
        let have: Vec<(i64, f64)> = got[0].samples.iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(bits(&have), bits(&expect));
        assert!(
            h.select(
                &[Matcher::equal("cluster", "other")],
                &external,
                0,
                i64::MAX
            )
            .unwrap()
            .is_empty()
        );
        // The log replays into the same head, and so does a checkpoint of it.
        let everything_in = |h: &Head, min_t, max_t| {
            h.select(&[], &Labels::empty(), min_t, max_t)
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s.labels.clone(),
                        s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
                    )
                })
                .collect::<Vec<(Labels, Vec<(i64, u64)>)>>()
        };
        let everything = |h: &Head| everything_in(h, i64::MIN, i64::MAX);
        let replayed = |records: &[Vec<u8>], name: &str| {
            let mut r = fresh(name);
            for e in records.iter().flat_map(|l| wal::decode_record(l).unwrap()) {
                r.replay(e).unwrap();
            }
            r
        };
        assert_eq!(everything(&replayed(&logs, "log")), everything(&h));
        let checkpoint: Vec<Vec<u8>> = h
            .series_ids()
            .iter()
            .map(|id| h.checkpoint_record(&[*id]).unwrap())
            .collect();
        assert!(
            checkpoint.concat().len() < all.len() * 4,
            "sealed chunks are written coded"
        );
        assert_eq!(
            everything(&replayed(&checkpoint, "checkpoint")),
            everything(&h)
        );
        if let Some(names) = files("head") {
            // One file per window: 15 windows of samples, the late one landing in window 0's.
            assert_eq!(names.len(), 15, "{names:?}");
            assert!(names.iter().any(|n| n.starts_with("0-")), "{names:?}");
        }
        // Cutting keeps every sample exactly once: the window's block holds what the head held
        // (the late rewrite of t = 600 s included), the rest stays.
        let before = everything_in(&h, 0, 999_999);
        let mut cut = coded(h.cut_window(0));
        assert_eq!(cut.len(), 1);
        if let Some(names) = files("head") {
            assert_eq!(
                names.len(),
                14,
                "window 0's file went with the cut: {names:?}"
            );
        }
        let store = fleetscope_store::objstore::open("memory://").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let block = rt.block_on(async {
            let meta = fleetscope_store::write_coded_block(
                &store,
                cut.remove(&0).unwrap(),
                &Labels::empty(),
                &Default::default(),
            )
            .await
            .unwrap();
            fleetscope_store::BlockReader::new(std::sync::Arc::clone(&store), meta)
                .select(&[], i64::MIN, i64::MAX)
                .await
                .unwrap()
                .series
        });
        let block: Vec<(Labels, Vec<(i64, u64)>)> = block
            .iter()
            .map(|s| {
                (
                    s.labels.clone(),
                    s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
                )
            })
            .collect();
        assert_eq!(block, before);
        let rest = h.select(&[], &Labels::empty(), i64::MIN, i64::MAX).unwrap();
        let n: usize = block.iter().map(|s| s.1.len()).sum::<usize>()
            + rest.iter().map(|s| s.samples.len()).sum::<usize>();
        assert_eq!(n, want.len());
        assert!(rest[0].samples[0].t >= 1_000_000);
    }
}
