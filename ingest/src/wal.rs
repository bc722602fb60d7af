//! The write-ahead log: every accepted sample is here, fsynced, before the sender gets a 2xx.
//!
//! Segments `wal/00000001`, `wal/00000002`, ... hold framed records (see `docs/wal-format.md`):
//! `u32 LE length | u32 LE CRC-32 of the payload | payload`. A torn tail (a crash mid-write) fails its
//! length or checksum; replay keeps everything before it and cuts the file there. After the blocks
//! holding its samples are uploaded, the log is *checkpointed*: the head's remaining series are
//! written to a fresh segment (their sealed chunks as the head holds them, coded) and the older
//! segments deleted.
//!
//! Replay streams: one thread reads, checks and decodes records while the caller applies the
//! previous ones, so nothing but a few records is ever held in memory.
//!
//! A payload is a sequence of [`Entry`]s: a label set is logged once with the reference the head
//! gave it, and samples refer to it by that number (as Prometheus's WAL does).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use fleetscope_store::{Label, Labels, Sample};

use crate::head::Chunk;

/// WAL errors.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("wal {op} {path}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The head could not be read for a checkpoint (its chunk files); the older segments stay.
    #[error("reading the head for a checkpoint")]
    Checkpoint(#[source] std::io::Error),
    /// A record that passed its checksum but does not decode (a bug or a foreign file).
    #[error("wal record in {path} at offset {offset}: {what}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Offset of the record.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

type Result<T, E = WalError> = std::result::Result<T, E>;

/// Segments are rotated past this size.
const SEGMENT_BYTES: u64 = 128 << 20;
const HEADER: usize = 8;
/// Largest record accepted on replay (a request is at most a few tens of MiB decoded).
const MAX_RECORD: usize = 1 << 30;

/// An open log, appending to its newest segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    segment: u64,
    size: u64,
}

/// One entry of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A label set and its reference, logged before any samples refer to it.
    Series {
        /// The reference.
        id: u64,
        /// The label set.
        labels: Labels,
    },
    /// Samples of the series with reference `id`, in arrival order.
    Samples {
        /// The reference.
        id: u64,
        /// The samples.
        samples: Vec<Sample>,
    },
    /// A sealed chunk of the series with reference `id`, as a checkpoint writes the head.
    Chunk {
        /// The reference.
        id: u64,
        /// The chunk.
        chunk: Chunk,
    },
}

const ENTRY_SERIES: u8 = 1;
const ENTRY_SAMPLES: u8 = 2;
const ENTRY_CHUNK: u8 = 3;

/// What [`Wal::open`] replayed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    /// Records read.
    pub records: u64,
    /// Entries applied.
    pub entries: u64,
    /// Bytes cut off a torn tail, if any.
    pub torn_bytes: u64,
}

/// Records decoded ahead of the one being applied during replay (a checkpoint's record holds
/// about a megabyte of chunks; an append's, a group commit of requests).
const REPLAY_AHEAD: usize = 4;

impl Wal {
    /// Opens the log in `dir` (creating it), handing every entry to `apply` in log order; a torn
    /// tail is cut off. Records are read and decoded on a second thread while `apply` runs; an
    /// error from `apply` stops the replay and is returned with the record's place.
    pub fn open(
        dir: &Path,
        mut apply: impl FnMut(Entry) -> std::result::Result<(), String>,
    ) -> Result<(Self, Replay)> {
        std::fs::create_dir_all(dir).map_err(|source| WalError::Io {
            op: "create",
            path: dir.into(),
            source,
        })?;
        let segments = list_segments(dir)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, u64, Vec<Entry>)>(REPLAY_AHEAD);
        let (read, applied) = std::thread::scope(|scope| {
            let reader = scope.spawn(|| read_all(dir, &segments, tx));
            let mut replay = Replay::default();
            let mut failed = None;
            for (path, offset, entries) in rx.iter() {
                replay.records += 1;
                for entry in entries {
                    replay.entries += 1;
                    if let Err(what) = apply(entry) {
                        failed = Some(WalError::Corrupt { path, offset, what });
                        break;
                    }
                }
                if failed.is_some() {
                    break;
                }
            }
            // Dropping the receiver stops the reader at its next record.
            drop(rx);
            let read = reader.join().unwrap_or_else(|_| {
                Err(WalError::Corrupt {
                    path: dir.into(),
                    offset: 0,
                    what: "the replay thread panicked".into(),
                })
            });
            (read, failed.map_or(Ok(replay), Err))
        });
        let (last_segment, torn_bytes) = read?;
        let replay = Replay {
            torn_bytes,
            ..applied?
        };
        let segment = last_segment + 1;
        let (file, size) = create_segment(dir, segment)?;
        Ok((
            Self {
                dir: dir.into(),
                file,
                segment,
                size,
            },
            replay,
        ))
    }

    /// Appends records and fsyncs once for all of them (group commit).
    pub fn append<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> Result<u64> {
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.as_ref().len() + HEADER).sum());
        for p in payloads {
            frame(&mut buf, p.as_ref());
        }
        self.write(&buf)?;
        self.sync()?;
        if self.size >= SEGMENT_BYTES {
            self.rotate()?;
        }
        Ok(buf.len() as u64)
    }

    /// Starts a new segment holding `records` (the head's series, see `Head::checkpoint_record`),
    /// written one at a time and fsynced once, then deletes older segments. Returns the bytes
    /// written.
    pub fn checkpoint(
        &mut self,
        records: impl IntoIterator<Item = Result<Vec<u8>>>,
    ) -> Result<u64> {
        let old = self.segment;
        self.rotate()?;
        let mut written = 0;
        for record in records {
            let record = record?;
            written += (record.len() + HEADER) as u64;
            let mut buf = Vec::with_capacity(record.len() + HEADER);
            frame(&mut buf, &record);
            self.write(&buf)?;
            if self.size >= SEGMENT_BYTES {
                self.sync()?;
                self.rotate()?;
            }
        }
        self.sync()?;
        for seg in list_segments(&self.dir)? {
            if seg <= old {
                let p = segment_path(&self.dir, seg);
                std::fs::remove_file(&p).map_err(|source| WalError::Io {
                    op: "remove",
                    path: p,
                    source,
                })?;
            }
        }
        sync_dir(&self.dir)?;
        Ok(written)
    }

    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf).map_err(|source| WalError::Io {
            op: "write",
            path: segment_path(&self.dir, self.segment),
            source,
        })?;
        self.size += buf.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|source| WalError::Io {
            op: "fsync",
            path: segment_path(&self.dir, self.segment),
            source,
        })
    }

    fn rotate(&mut self) -> Result<()> {
        self.segment += 1;
        let (file, size) = create_segment(&self.dir, self.segment)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

fn segment_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:08}"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let entries = std::fs::read_dir(dir).map_err(|source| WalError::Io {
        op: "list",
        path: dir.into(),
        source,
    })?;
    let mut segs: Vec<u64> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    segs.sort_unstable();
    Ok(segs)
}

fn create_segment(dir: &Path, seg: u64) -> Result<(File, u64)> {
    let path = segment_path(dir, seg);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| WalError::Io {
            op: "create",
            path: path.clone(),
            source,
        })?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    sync_dir(dir)?;
    Ok((file, size))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| WalError::Io {
            op: "fsync directory",
            path: dir.into(),
            source,
        })
}

/// `u32 LE length | u32 LE CRC-32 | payload`, appended to `buf`.
fn frame(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads `segments` in order, sending each record's entries (with its segment and offset) to
/// `tx`; cuts a torn tail off (and drops the segments after it). Returns the number of the last
/// segment kept (0 if none) and the bytes cut off. Stops early, without error, once `tx`'s
/// receiver is gone.
fn read_all(
    dir: &Path,
    segments: &[u64],
    tx: std::sync::mpsc::SyncSender<(PathBuf, u64, Vec<Entry>)>,
) -> Result<(u64, u64)> {
    for (i, &seg) in segments.iter().enumerate() {
        let path = segment_path(dir, seg);
        let Some((valid_len, file_len)) = read_segment(&path, &tx)? else {
            return Ok((segments.last().copied().unwrap_or(0), 0));
        };
        if valid_len < file_len {
            tracing::warn!(segment = seg, path = %path.display(), valid_len, file_len, "torn wal tail cut off");
            let f = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| WalError::Io {
                    op: "open",
                    path: path.clone(),
                    source,
                })?;
            f.set_len(valid_len).map_err(|source| WalError::Io {
                op: "truncate",
                path: path.clone(),
                source,
            })?;
            f.sync_all().map_err(|source| WalError::Io {
                op: "fsync",
                path: path.clone(),
                source,
            })?;
            // Later segments cannot follow a torn one; drop them.
            for &later in &segments[i + 1..] {
                let p = segment_path(dir, later);
                std::fs::remove_file(&p).map_err(|source| WalError::Io {
                    op: "remove",
                    path: p,
                    source,
                })?;
            }
            return Ok((seg, file_len - valid_len));
        }
    }
    Ok((segments.last().copied().unwrap_or(0), 0))
}

/// Sends the records of a segment to `tx`; returns the length of its valid prefix and the file
/// length, or `None` if the receiver went away.
fn read_segment(
    path: &Path,
    tx: &std::sync::mpsc::SyncSender<(PathBuf, u64, Vec<Entry>)>,
) -> Result<Option<(u64, u64)>> {
    let file = File::open(path).map_err(|source| WalError::Io {
        op: "open",
        path: path.into(),
        source,
    })?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        if read_full(&mut r, &mut header).map_err(|source| WalError::Io {
            op: "read",
            path: path.into(),
            source,
        })? < HEADER
        {
            break;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            break;
        }
        payload.resize(len, 0);
        let got = read_full(&mut r, &mut payload).map_err(|source| WalError::Io {
            op: "read",
            path: path.into(),
            source,
        })?;
        if got < len || crc32fast::hash(&payload) != crc {
            break;
        }
        let entries = decode_record(&payload).map_err(|what| WalError::Corrupt {
            path: path.into(),
            offset,
            what,
        })?;
        if tx.send((path.into(), offset, entries)).is_err() {
            return Ok(None);
        }
        offset += (HEADER + len) as u64;
    }
    Ok(Some((offset, file_len)))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Appends a [`Entry::Series`] to a payload.
pub fn put_series(out: &mut Vec<u8>, id: u64, labels: &Labels) {
    out.push(ENTRY_SERIES);
    put_uvarint(out, id);
    put_uvarint(out, labels.len() as u64);
    for l in labels.iter() {
        put_bytes(out, l.name.as_bytes());
        put_bytes(out, l.value.as_bytes());
    }
}

/// Appends a [`Entry::Samples`] to a payload: timestamps as zigzag deltas, values as raw bits.
pub fn put_samples(out: &mut Vec<u8>, id: u64, samples: &[Sample]) {
    out.push(ENTRY_SAMPLES);
    put_uvarint(out, id);
    put_uvarint(out, samples.len() as u64);
    let mut prev = 0i64;
    for x in samples {
        let d = x.t.wrapping_sub(prev);
        put_uvarint(out, zigzag(d));
        out.extend_from_slice(&x.v.to_bits().to_le_bytes());
        prev = x.t;
    }
}

/// Appends a [`Entry::Chunk`] to a payload: `chunk`, whose coded bytes are `bytes`.
pub fn put_chunk(out: &mut Vec<u8>, id: u64, chunk: &Chunk, bytes: &[u8]) {
    out.push(ENTRY_CHUNK);
    put_uvarint(out, id);
    put_uvarint(out, zigzag(chunk.min_t));
    put_uvarint(out, chunk.max_t.wrapping_sub(chunk.min_t) as u64);
    put_uvarint(out, u64::from(chunk.n));
    put_uvarint(out, u64::from(chunk.split));
    put_bytes(out, bytes);
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// The entries of a payload.
pub fn decode_record(mut buf: &[u8]) -> std::result::Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = buf.split_first() {
        buf = rest;
        let id = get_uvarint(&mut buf)?;
        match kind {
            ENTRY_SERIES => {
                let nl = get_uvarint(&mut buf)? as usize;
                let mut labels = Vec::with_capacity(nl.min(64));
                for _ in 0..nl {
                    let name = get_string(&mut buf)?;
                    let value = get_string(&mut buf)?;
                    labels.push(Label { name, value });
                }
                let labels = Labels::from_sorted(labels).map_err(|e| e.to_string())?;
                out.push(Entry::Series { id, labels });
            }
            ENTRY_SAMPLES => {
                let ns = get_uvarint(&mut buf)? as usize;
                let mut samples = Vec::with_capacity(ns.min(1 << 16));
                let mut t = 0i64;
                for _ in 0..ns {
                    let z = get_uvarint(&mut buf)?;
                    t = t.wrapping_add(unzigzag(z));
                    let (bits, rest) = buf.split_first_chunk::<8>().ok_or("truncated value")?;
                    buf = rest;
                    samples.push(Sample {
                        t,
                        v: f64::from_bits(u64::from_le_bytes(*bits)),
                    });
                }
                out.push(Entry::Samples { id, samples });
            }
            ENTRY_CHUNK => {
                let min_t = unzigzag(get_uvarint(&mut buf)?);
                let max_t = min_t.wrapping_add(get_uvarint(&mut buf)? as i64);
                let n = u32::try_from(get_uvarint(&mut buf)?).map_err(|_| "chunk too long")?;
                let split = u32::try_from(get_uvarint(&mut buf)?).map_err(|_| "bad split")?;
                let len = get_uvarint(&mut buf)? as usize;
                let bytes = buf.get(..len).ok_or("truncated chunk")?;
                buf = &buf[len..];
                if split as usize > len {
                    return Err(format!("chunk split {split} past its {len} bytes"));
                }
                let chunk = Chunk::coded(min_t, max_t, n, split, bytes.into());
                out.push(Entry::Chunk { id, chunk });
            }
            other => return Err(format!("unknown entry kind {other}")),
        }
    }
    Ok(out)
}

fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn get_uvarint(buf: &mut &[u8]) -> std::result::Result<u64, String> {
    let mut x = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        x |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *buf = &buf[i + 1..];
            return Ok(x);
        }
    }
    Err("truncated varint".into())
}

fn get_string(buf: &mut &[u8]) -> std::result::Result<String, String> {
    let n = get_uvarint(buf)? as usize;
    let b = buf.get(..n).ok_or("truncated string")?;
    let s = String::from_utf8(b.to_vec()).map_err(|_| "string is not UTF-8")?;
    *buf = &buf[n..];
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Opens the log, collecting what it replays.
    fn open(dir: &Path) -> (Wal, Vec<Entry>) {
        let mut entries = Vec::new();
        let (wal, replay) = Wal::open(dir, |e| {
            entries.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(replay.entries, entries.len() as u64);
        (wal, entries)
    }

    /// A record holding one series (reference `id`) and its samples.
    fn record(id: u64, name: &str, samples: &[(i64, f64)]) -> (Vec<u8>, Vec<Entry>) {
        let labels = Labels::from_pairs([("__name__", name), ("job", "x")]);
        let samples: Vec<Sample> = samples.iter().map(|&(t, v)| Sample { t, v }).collect();
        let mut payload = Vec::new();
        put_series(&mut payload, id, &labels);
        put_samples(&mut payload, id, &samples);
        (
            payload,
            vec![Entry::Series { id, labels }, Entry::Samples { id, samples }],
        )
    }

    fn bits(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Series { id, labels } => format!("{id} {labels}"),
                Entry::Samples { id, samples } => format!(
                    "{id} {:?}",
                    samples
                        .iter()
                        .map(|s| (s.t, s.v.to_bits()))
                        .collect::<Vec<_>>()
                ),
                Entry::Chunk { id, chunk } => format!("{id} {chunk:?}"),
            })
            .collect()
    }

    #[test]
    fn replays_what_was_appended_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, replayed) = open(dir.path());
        assert!(replayed.is_empty());
        let (a, a_entries) = record(
            1,
            "a",
            &[
                (1_767_225_600_000, 1.0),
                (-5, f64::from_bits(fleetscope_store::STALE_NAN_BITS)),
                (i64::MAX, f64::NAN),
            ],
        );
        let (b, b_entries) = record(2, "b", &[(3, -0.0)]);
        wal.append(&[a, b.clone()]).unwrap();
        drop(wal);
        let (mut wal, replayed) = open(dir.path());
        let both: Vec<Entry> = a_entries.into_iter().chain(b_entries.clone()).collect();
        assert_eq!(bits(&replayed), bits(&both));
        let chunk = Chunk::new(&[Sample { t: -3, v: 0.5 }, Sample { t: 9, v: f64::NAN }]);
        let mut c = Vec::new();
        put_chunk(&mut c, 2, &chunk, &chunk.bytes().unwrap());
        wal.checkpoint([Ok(b), Ok(c)]).unwrap();
        drop(wal);
        let (_, replayed) = open(dir.path());
        let mut want = b_entries;
        want.push(Entry::Chunk { id: 2, chunk });
        assert_eq!(bits(&replayed), bits(&want));
        assert_eq!(
            list_segments(dir.path()).unwrap().len(),
            2,
            "checkpoint segment + the new empty one"
        );
        assert!(
            decode_record(&[9, 1])
                .unwrap_err()
                .contains("unknown entry kind 9")
        );
        assert!(
            decode_record(&[ENTRY_SAMPLES, 1, 1, 2])
                .unwrap_err()
                .contains("truncated")
        );
        assert!(
            decode_record(&[ENTRY_CHUNK, 1, 0, 0, 1, 3, 2, 0, 0])
                .unwrap_err()
                .contains("split 3 past its 2 bytes")
        );
    }

    #[test]
    fn a_failing_apply_stops_replay_and_names_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = open(dir.path());
        let (a, _) = record(1, "a", &[(1, 1.0)]);
        let (b, _) = record(2, "b", &[(2, 2.0)]);
        wal.append(std::slice::from_ref(&a)).unwrap();
        wal.append(&[b]).unwrap();
        drop(wal);
        let mut seen = 0;
        let err = Wal::open(dir.path(), |e| {
            seen += 1;
            match e {
                Entry::Series { id: 2, .. } => Err("no room".into()),
                _ => Ok(()),
            }
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            seen, 3,
            "two entries of the first record, then the failing one"
        );
        let offset = a.len() + HEADER;
        assert!(
            err.ends_with(&format!("00000001 at offset {offset}: no room")),
            "{err}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// A log torn at any byte replays exactly the records written completely before the tear.
        #[test]
        fn torn_tail_replays_a_clean_prefix(sizes in proptest::collection::vec(1usize..20, 1..6), cut in any::<prop::sample::Index>()) {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = open(dir.path());
            let records: Vec<(Vec<u8>, Vec<Entry>)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| record(i as u64, &format!("m{i}"), &(0..n as i64).map(|t| (t, t as f64 * 0.5)).collect::<Vec<_>>()))
                .collect();
            let mut ends = Vec::new();
            let mut total = 0;
            for r in &records {
                total += wal.append(&[&r.0]).unwrap();
                ends.push(total);
            }
            drop(wal);
            let seg = segment_path(dir.path(), 1);
            let len = std::fs::metadata(&seg).unwrap().len();
            let cut_at = cut.index(len as usize + 1) as u64;
            OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut_at).unwrap();
            let (_, replayed) = open(dir.path());
            let complete = ends.iter().filter(|&&e| e <= cut_at).count();
            let want: Vec<Entry> = records[..complete].iter().flat_map(|r| r.1.clone()).collect();
            prop_assert_eq!(replayed, want);
            // The file was cut back to the last complete record.
            let valid = if complete == 0 { 0 } else { ends[complete - 1] };
            prop_assert_eq!(std::fs::metadata(&seg).unwrap().len(), valid);
        }
    }
}
