//! Sealed head chunks on local disk, one file per block window, so that the head keeps only where
//! each chunk is (as Prometheus's head writes its full chunks to `chunks_head/`).
//!
//! A chunk is appended once and read back through the page cache (`pread`) when a query or a cut
//! needs it; the kernel keeps hot pages and drops cold ones under pressure, which memory held by
//! the process cannot do. Nothing here is needed after a crash (the WAL holds every sample), so the
//! folder is emptied at start. A window's file is removed when the last chunk in it is dropped: once
//! the head has cut the window and its block is written. A file that cannot be written keeps its
//! chunks in memory instead, so a full disk costs memory, never samples.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes gathered in memory before one write to a window's file.
const WRITE_BUFFER: usize = 64 << 10;

/// The head's chunk files: the file being appended to for each window.
#[derive(Debug)]
pub(crate) struct ChunkFiles {
    dir: PathBuf,
    next: u64,
    windows: BTreeMap<i64, Arc<WindowFile>>,
}

/// One window's file (more than one if a window outgrows 4 GiB).
#[derive(Debug)]
pub(crate) struct WindowFile {
    path: PathBuf,
    /// `None` if the file could not be created: everything stays in `pending`.
    file: Option<File>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Appended and not yet written, starting at offset `written`.
    pending: Vec<u8>,
    written: u64,
    /// A write failed (logged): this file's later chunks stay pending, in memory.
    failed: bool,
}

/// A chunk's place in a window's file.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    file: Arc<WindowFile>,
    offset: u32,
    len: u32,
}

impl ChunkFiles {
    /// Chunk files in `dir` (created), removing any a previous process left.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
        for entry in std::fs::read_dir(dir).map_err(|e| at(dir, e))? {
            let path = entry.map_err(|e| at(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "chunks") {
                std::fs::remove_file(&path).map_err(|e| at(&path, e))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            next: 0,
            windows: BTreeMap::new(),
        })
    }

    /// Appends `bytes`, a chunk of the window starting at `window`.
    pub(crate) fn append(&mut self, window: i64, bytes: &[u8]) -> Stored {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let room = |f: &WindowFile| f.len() + u64::from(len) <= u64::from(u32::MAX);
        let file = match self.windows.get(&window) {
            Some(f) if room(f) => Arc::clone(f),
            _ => {
                self.next += 1;
                let f = Arc::new(WindowFile::create(
                    self.dir.join(format!("{window}-{}.chunks", self.next)),
                ));
                self.windows.insert(window, Arc::clone(&f));
                f
            }
        };
        let offset = file.append(bytes);
        Stored { file, offset, len }
    }

    /// Stops appending to the windows before `end` (the head has cut them): their files go when
    /// their last chunk does.
    pub(crate) fn close_before(&mut self, end: i64) {
        self.windows = self.windows.split_off(&end);
    }
}

impl WindowFile {
    fn create(path: PathBuf) -> Self {
        let file = match File::create_new(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot create a head chunk file; keeping its chunks in memory");
                None
            }
        };
        Self {
            path,
            file,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change to the state is one step: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> u64 {
        let s = self.state();
        s.written + s.pending.len() as u64
    }

    /// Appends `bytes`; returns their offset.
    fn append(&self, bytes: &[u8]) -> u32 {
        let mut s = self.state();
        let offset = s.written + s.pending.len() as u64;
        s.pending.extend_from_slice(bytes);
        if s.pending.len() >= WRITE_BUFFER
            && !s.failed
            && let Some(file) = &self.file
        {
            match file.write_all_at(&s.pending, s.written) {
                Ok(()) => {
                    s.written += s.pending.len() as u64;
                    s.pending.clear();
                }
                Err(e) => {
                    s.failed = true;
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write a head chunk file; keeping the rest of its window's chunks in memory");
                }
            }
        }
        // `ChunkFiles::append` opens a new file before one passes 4 GiB.
        offset as u32
    }
}

impl Drop for WindowFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Stored {
    /// The chunk's bytes.
    pub(crate) fn read(&self) -> io::Result<Vec<u8>> {
        let (offset, len) = (u64::from(self.offset), self.len as usize);
        {
            let s = self.file.state();
            if offset >= s.written {
                let start = (offset - s.written) as usize;
                return s
                    .pending
                    .get(start..start + len)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        at(
                            &self.file.path,
                            io::Error::other(format!("chunk at {offset} past the end")),
                        )
                    });
            }
        }
        // Written bytes never change: read them without the lock.
        let file = self
            .file
            .file
            .as_ref()
            .ok_or_else(|| at(&self.file.path, io::Error::other("written without a file")))?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| at(&self.file.path, e))?;
        Ok(buf)
    }

    /// The chunk's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }
}

/// `e` with the file it happened on.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_back_from_the_buffer_and_the_file_which_goes_with_its_last_chunk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0-1.chunks"), b"left by a crash").unwrap();
        let mut files = ChunkFiles::open(dir.path()).unwrap();
        let listing = || std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(listing(), 0, "leftovers removed");
        // Enough chunks to pass the write buffer several times, in two windows.
        let chunks: Vec<(i64, Vec<u8>)> = (0..3000u32)
            .map(|i| {
                (
                    i64::from(i % 2) * 100,
                    vec![(i % 251) as u8; 50 + (i % 70) as usize],
                )
            })
            .collect();
        let stored: Vec<Stored> = chunks.iter().map(|(w, b)| files.append(*w, b)).collect();
        assert_eq!(listing(), 2);
        for ((_, bytes), s) in chunks.iter().zip(&stored) {
            assert_eq!(&s.read().unwrap(), bytes);
            assert_eq!(s.len(), bytes.len());
        }
        let on_disk = std::fs::metadata(&stored[0].file.path).unwrap().len();
        assert!(on_disk >= WRITE_BUFFER as u64, "{on_disk} bytes written");
        // Window 0 cut: its file stays while a chunk of it is held.
        files.close_before(100);
        let (window0, window100): (Vec<_>, Vec<_>) =
            chunks.iter().zip(stored).partition(|((w, _), _)| *w == 0);
        let kept = window0[0].1.clone();
        drop(window0);
        assert_eq!(listing(), 2);
        assert_eq!(kept.read().unwrap(), chunks[0].1);
        drop(kept);
        assert_eq!(listing(), 1, "window 0's file removed with its last chunk");
        drop(window100);
        assert_eq!(listing(), 1, "window 100 is still being appended to");
    }

    #[test]
    fn chunks_stay_in_memory_when_their_file_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = ChunkFiles::open(&dir.path().join("chunks")).unwrap();
        std::fs::remove_dir(dir.path().join("chunks")).unwrap();
        let chunks: Vec<Vec<u8>> = (0..2000u32).map(|i| vec![(i % 7) as u8; 90]).collect();
        let stored: Vec<Stored> = chunks.iter().map(|b| files.append(0, b)).collect();
        for (bytes, s) in chunks.iter().zip(&stored) {
            assert_eq!(&s.read().unwrap(), bytes);
        }
    }
}
