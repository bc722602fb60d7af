//! Backfill in bounded memory: OpenMetrics / Prometheus text files streamed into blocks.
//!
//! Each file is read once, front to back, in pieces of whole lines ([`Parser::feed`]); its samples
//! go into a [`Head`] of their own, which keeps them as the shipper's head does (coded chunks of
//! 120 samples per series, a short raw tail). Whenever the head's samples pass the file's share of
//! the memory budget, its oldest windows are cut and written as blocks until half the share is
//! free; at the end of the file, every window left. So:
//!
//! * input that fits the budget gives one block per window, as before;
//! * input in time order (a scrape log) has its windows written as they fill, oldest first;
//! * input sorted by series (an OpenMetrics export), or in no order, gives a window's series in a
//!   few blocks, each a sorted run (an external sort whose runs are spilled to the bucket rather
//!   than to a local disk); the querier merges them exactly, and `fleetscope compact` joins them.
//!
//! Memory is the heads, one block being coded and written, and one cut waiting for it.
//!
//! **Nothing is visible until the whole run succeeded**: blocks are written without `meta.json`
//! ([`write_sorted_block_data`]) as they fill, and published all at the end ([`publish`]); a failed run
//! deletes what it wrote ([`discard`]), and `fleetscope compact` deletes the leftovers of a killed
//! one (files without `meta.json`) once they are older than its `--partial-delay`.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fleetscope_store::compact::delete_block;
use fleetscope_store::{
    BlockMeta, Labels, Sample, WriteOptions, publish_block, write_sorted_block_data,
};
use object_store::ObjectStore;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::head::{Head, Taken};
use crate::openmetrics::{Parser, TimestampUnit};

/// Bytes read from a file at a time (then cut after its last newline), at most: a piece is also at
/// most a quarter of the head's budget, which is checked after each piece.
const PIECE_BYTES: usize = 4 << 20;

/// How files are imported.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// How timestamps are written.
    pub unit: TimestampUnit,
    /// Length of a block's aligned window, ms.
    pub duration_ms: i64,
    /// External labels of the blocks written.
    pub external_labels: Labels,
    /// How blocks are written.
    pub write: WriteOptions,
    /// Bytes of coded samples a file's head holds before its oldest windows are written out. A
    /// file's whole import uses about three times this (the head, a cut waiting, a cut being
    /// written), plus its series' labels.
    pub head_bytes: usize,
}

/// Progress of a run, shared by the files being imported.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read so far.
    pub bytes: AtomicU64,
    /// Samples parsed so far.
    pub samples: AtomicU64,
    /// Blocks written so far (unpublished).
    pub blocks: AtomicU64,
}

/// What one file gave.
#[derive(Debug)]
pub struct FileImport {
    /// Series (distinct label sets) in the file.
    pub series: usize,
    /// Sample lines in the file.
    pub samples: usize,
}

/// Imports one file: every window's samples are written as blocks *without* `meta.json`; each
/// block's meta is pushed to `written` as soon as its data is in the bucket, so a caller can
/// [`publish`] them all after the run, or [`discard`] them if anything failed.
pub async fn import_file(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    options: &ImportOptions,
    progress: &Arc<Progress>,
    written: &Arc<std::sync::Mutex<Vec<BlockMeta>>>,
) -> Result<FileImport> {
    // Cuts travel from the parsing thread to this task; one may wait while one is written.
    let (tx, mut rx) = mpsc::channel::<Taken>(1);
    let parse = {
        let (path, options, progress) = (path.to_path_buf(), options.clone(), Arc::clone(progress));
        tokio::task::spawn_blocking(move || parse_file(&path, &options, &progress, &tx))
    };
    let mut write_error = None;
    while let Some(taken) = rx.recv().await {
        if let Err(e) = write_taken(store, taken, options, progress, written).await {
            write_error = Some(e);
            break;
        }
    }
    // Closing the channel stops the parser at its next cut.
    drop(rx);
    let parsed = parse.await.map_err(|e| Error::Read {
        file: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    match write_error {
        Some(e) => Err(e),
        None => parsed,
    }
}

/// Writes `meta.json` of every block of a run: they become visible.
pub async fn publish(store: &Arc<dyn ObjectStore>, metas: &[BlockMeta]) -> Result<()> {
    for meta in metas {
        publish_block(store, meta)
            .await
            .map_err(|source| Error::WriteBlock {
                window_start: meta.min_t,
                source,
            })?;
    }
    Ok(())
}

/// Deletes every file of the blocks of a failed run.
pub async fn discard(store: &Arc<dyn ObjectStore>, metas: &[BlockMeta]) -> Result<()> {
    for meta in metas {
        delete_block(store, meta.ulid)
            .await
            .map_err(|source| Error::WriteBlock {
                window_start: meta.min_t,
                source,
            })?;
    }
    Ok(())
}

/// Sorts a cut (off the async threads) and writes one block per window in it, each series coded
/// as the block writer reaches it.
async fn write_taken(
    store: &Arc<dyn ObjectStore>,
    taken: Taken,
    options: &ImportOptions,
    progress: &Progress,
    written: &std::sync::Mutex<Vec<BlockMeta>>,
) -> Result<()> {
    let windows = tokio::task::spawn_blocking(move || taken.into_blocks())
        .await
        .map_err(|e| Error::WriteBlock {
            window_start: 0,
            source: fleetscope_store::Error::Corrupt(format!("sorting task: {e}")),
        })?;
    for (window_start, series) in windows {
        let meta = write_sorted_block_data(store, series, &options.external_labels, &options.write)
            .await
            .map_err(|source| Error::WriteBlock {
                window_start,
                source,
            })?;
        progress.blocks.fetch_add(1, Ordering::Relaxed);
        written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(meta);
    }
    Ok(())
}

/// The parsing thread: reads `path` piece by piece into a head, sending cuts to the writer.
fn parse_file(
    path: &Path,
    options: &ImportOptions,
    progress: &Progress,
    cuts: &mpsc::Sender<Taken>,
) -> Result<FileImport> {
    let name = path.display().to_string();
    let read_err = |source| Error::Read {
        file: name.clone(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut parser = Parser::new(options.unit);
    let mut head = Head::new(options.duration_ms);
    // Samples of consecutive lines of one series go to the head together.
    let mut run: (u32, Labels, Vec<Sample>) = (0, Labels::empty(), Vec::new());
    let piece = PIECE_BYTES.min(options.head_bytes / 4).max(1024);
    let mut buf: Vec<u8> = Vec::with_capacity(piece);
    let mut eof = false;
    while !eof {
        // Fill the buffer (after what was left of the last piece), then feed its whole lines.
        let filled = buf.len();
        buf.resize(filled.max(piece).max(filled * 2), 0);
        let mut end = filled;
        while end < buf.len() {
            match file.read(&mut buf[end..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        buf.truncate(end);
        progress
            .bytes
            .fetch_add((end - filled) as u64, Ordering::Relaxed);
        let lines = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                // A line longer than the buffer: read more before parsing.
                None => continue,
            }
        };
        let before = parser.samples();
        parser
            .feed(&buf[..lines], &mut |r, labels, sample| {
                if r != run.0 || run.2.is_empty() {
                    head.add(u64::from(run.0), &run.1, &run.2);
                    run.2.clear();
                    run.0 = r;
                    run.1 = labels.clone();
                }
                run.2.push(sample);
            })
            .map_err(|error| Error::Parse {
                file: name.clone(),
                error,
            })?;
        head.add(u64::from(run.0), &run.1, &run.2);
        run.2.clear();
        progress
            .samples
            .fetch_add((parser.samples() - before) as u64, Ordering::Relaxed);
        buf.drain(..lines);

        if head.sample_bytes() > options.head_bytes {
            // Oldest windows out until half the budget is free.
            while head.sample_bytes() > options.head_bytes / 2
                && let Some(w) = head.oldest_window()
            {
                send(cuts, head.cut_window(w), &name)?;
            }
        }
    }
    while let Some(w) = head.oldest_window() {
        send(cuts, head.cut_window(w), &name)?;
    }
    Ok(FileImport {
        series: parser.series(),
        samples: parser.samples(),
    })
}

/// Hands a cut to the writer; an error if the writer has stopped (its own error is the one told).
fn send(cuts: &mpsc::Sender<Taken>, taken: Taken, file: &str) -> Result<()> {
    if taken.is_empty() {
        return Ok(());
    }
    cuts.blocking_send(taken).map_err(|_| Error::Read {
        file: file.into(),
        source: std::io::Error::other("the block writer stopped"),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fleetscope_store::{BlockReader, MemSeriesSet, Series, objstore};

    use super::*;
    use crate::cutter::write_windows;
    use crate::openmetrics::parse;

    /// Every series of every block, merged per label set, samples sorted: what a querier sees.
    async fn contents(store: &Arc<dyn ObjectStore>, metas: &[BlockMeta]) -> Vec<Series> {
        let mut all: BTreeMap<Labels, BTreeMap<i64, u64>> = BTreeMap::new();
        for m in metas {
            let sel = BlockReader::new(Arc::clone(store), m.clone())
                .select(&[], i64::MIN, i64::MAX)
                .await
                .unwrap();
            for s in sel.series {
                let e = all.entry(s.labels).or_default();
                for x in s.samples {
                    e.insert(x.t, x.v.to_bits());
                }
            }
        }
        all.into_iter()
            .map(|(labels, samples)| Series {
                labels,
                samples: samples
                    .into_iter()
                    .map(|(t, v)| Sample {
                        t,
                        v: f64::from_bits(v),
                    })
                    .collect(),
            })
            .collect()
    }

    /// How the lines of a test input are ordered.
    #[derive(Debug, Clone, Copy)]
    enum Order {
        BySeries,
        ByTime,
        Shuffled,
    }

    /// OpenMetrics text of `series` series over `hours`, in `order`.
    fn text(series: usize, hours: i64, order: Order) -> String {
        let step = 60;
        let points = hours * 3600 / step;
        let line = |s: usize, i: i64| {
            format!(
                "m{}{{pod=\"p{s}\"}} {} {}\n",
                s % 3,
                (i as f64) * 0.5 + s as f64,
                1_700_000_000 + i * step
            )
        };
        let mut lines: Vec<String> = match order {
            Order::BySeries => (0..series)
                .flat_map(|s| (0..points).map(move |i| (s, i)))
                .map(|(s, i)| line(s, i))
                .collect(),
            _ => (0..points)
                .flat_map(|i| (0..series).map(move |s| (s, i)))
                .map(|(s, i)| line(s, i))
                .collect(),
        };
        if let Order::Shuffled = order {
            // A fixed permutation (multiplicative, coprime with the length) scatters every line.
            let n = lines.len();
            let step = (0..).map(|k| 7919 + k).find(|p| gcd(*p, n) == 1).unwrap();
            lines = (0..n).map(|i| lines[(i * step) % n].clone()).collect();
        }
        lines.concat() + "# EOF\n"
    }

    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 { a } else { gcd(b, a % b) }
    }

    async fn streamed(input: &str, head_bytes: usize) -> (Vec<Series>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.om");
        std::fs::write(&path, input).unwrap();
        let store = objstore::open("memory://").unwrap();
        let options = ImportOptions {
            unit: TimestampUnit::Seconds,
            duration_ms: 2 * 3_600_000,
            external_labels: Labels::from_pairs([("cluster", "a")]),
            write: WriteOptions::default(),
            head_bytes,
        };
        let written = Arc::default();
        import_file(&store, &path, &options, &Arc::default(), &written)
            .await
            .unwrap();
        let metas = written.lock().unwrap().clone();
        assert!(
            BlockMeta::list(&store).await.unwrap().is_empty(),
            "nothing visible before publishing"
        );
        publish(&store, &metas).await.unwrap();
        assert_eq!(BlockMeta::list(&store).await.unwrap().len(), metas.len());
        (contents(&store, &metas).await, metas.len())
    }

    async fn in_memory(input: &str) -> (Vec<Series>, usize) {
        let store = objstore::open("memory://").unwrap();
        let mut set = MemSeriesSet::new();
        for s in parse(input.as_bytes(), TimestampUnit::Seconds, &mut |_| {})
            .unwrap()
            .series
        {
            set.append_series(s);
        }
        let metas = write_windows(
            &store,
            set,
            &Labels::from_pairs([("cluster", "a")]),
            std::time::Duration::from_secs(7200),
            &WriteOptions::default(),
            &mut |_| {},
        )
        .await
        .unwrap();
        (contents(&store, &metas).await, metas.len())
    }

    #[tokio::test]
    async fn streaming_blocks_hold_what_the_in_memory_path_writes() {
        for order in [Order::BySeries, Order::ByTime, Order::Shuffled] {
            let input = text(40, 7, order);
            let (want, want_blocks) = in_memory(&input).await;
            assert_eq!(want.len(), 40);
            // Within budget: the same blocks, one per window.
            let (got, blocks) = streamed(&input, 64 << 20).await;
            assert_eq!(got, want, "{order:?}");
            assert_eq!(blocks, want_blocks);
            // A tiny budget: windows go out in runs, the contents stay the same.
            let (got, blocks) = streamed(&input, 4 << 10).await;
            assert_eq!(got, want, "{order:?}, small budget");
            assert!(blocks > want_blocks, "{blocks} blocks");
        }
    }

    #[tokio::test]
    async fn a_malformed_line_fails_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.om");
        std::fs::write(&path, "up 1 1\nup x 2\n").unwrap();
        let store = objstore::open("memory://").unwrap();
        let options = ImportOptions {
            unit: TimestampUnit::Seconds,
            duration_ms: 7_200_000,
            external_labels: Labels::empty(),
            write: WriteOptions::default(),
            head_bytes: 1 << 20,
        };
        let err = import_file(&store, &path, &options, &Arc::default(), &Arc::default())
            .await
            .unwrap_err();
        assert!(
            err.to_string().ends_with("bad.om:2:4: invalid value \"x\""),
            "{err}"
        );
    }
}
