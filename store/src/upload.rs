//! Objects written as their bytes come: [`Upload`] holds at most [`PART_BYTES`] (plus parts in
//! flight) in memory, sending one `put` for a small object and a multipart upload for a large one;
//! [`copy`] streams an object from one store to another. Blocks are written and shipped this way,
//! so neither a block's file nor its upload is ever held whole in memory. Small objects (`meta.json`,
//! marks, label indexes) go whole: [`put`] and [`get`].

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};

/// Bytes buffered before a part is sent (S3's smallest part but the last).
pub const PART_BYTES: usize = 5 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// An object being written. Call [`Upload::finish`] to make it exist, or [`Upload::abort`].
#[derive(Debug)]
pub struct Upload {
    path: Path,
    writer: BufWriter,
}

impl Upload {
    /// Starts writing `path` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, path: Path) -> Self {
        let writer = BufWriter::with_capacity(store, path.clone(), PART_BYTES)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        Self { path, writer }
    }

    /// Appends `bytes`; waits while the parts in flight are at their limit.
    pub async fn write(&mut self, bytes: Bytes) -> Result<()> {
        let path = &self.path;
        self.writer
            .put(bytes)
            .await
            .map_err(|source| Error::ObjectStore {
                op: "put",
                path: path.to_string(),
                source,
            })
    }

    /// Sends what is left and completes the object.
    pub async fn finish(mut self) -> Result<()> {
        self.writer
            .shutdown()
            .await
            .map_err(|e| Error::ObjectStore {
                op: "put",
                path: self.path.to_string(),
                source: io_to_store(e),
            })
    }

    /// Gives up, removing the parts already sent (best effort).
    pub async fn abort(mut self) {
        if let Err(e) = self.writer.abort().await {
            tracing::warn!(path = %self.path, error = %e, "aborting an upload failed");
        }
    }
}

/// Writes a small object whole.
pub async fn put(store: &dyn ObjectStore, path: &Path, bytes: impl Into<PutPayload>) -> Result<()> {
    store
        .put(path, bytes.into())
        .await
        .map_err(|source| Error::ObjectStore {
            op: "put",
            path: path.to_string(),
            source,
        })?;
    Ok(())
}

/// Reads a small object whole.
pub async fn get(store: &dyn ObjectStore, path: &Path) -> Result<Bytes> {
    let get_err = |source| Error::ObjectStore {
        op: "get",
        path: path.to_string(),
        source,
    };
    store
        .get(path)
        .await
        .map_err(get_err)?
        .bytes()
        .await
        .map_err(get_err)
}

/// Copies `path` from `from` to `to` a part at a time. Returns the bytes copied.
pub async fn copy(from: &dyn ObjectStore, to: &Arc<dyn ObjectStore>, path: &Path) -> Result<u64> {
    let get_error = |source| Error::ObjectStore {
        op: "get",
        path: path.to_string(),
        source,
    };
    let mut stream = from.get(path).await.map_err(get_error)?.into_stream();
    let mut upload = Upload::new(Arc::clone(to), path.clone());
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        let written = match chunk {
            Ok(chunk) => {
                bytes += chunk.len() as u64;
                upload.write(chunk).await
            }
            Err(source) => Err(get_error(source)),
        };
        if let Err(e) = written {
            upload.abort().await;
            return Err(e);
        }
    }
    upload.finish().await?;
    Ok(bytes)
}

/// An I/O error of a [`BufWriter`] as the object store error it carries, if it does.
fn io_to_store(e: std::io::Error) -> object_store::Error {
    match e.downcast::<object_store::Error>() {
        Ok(e) => e,
        Err(e) => object_store::Error::Generic {
            store: "upload",
            source: Box::new(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn small_and_multipart_objects_arrive_whole() {
        let from: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let to: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        for (name, len) in [("small", 1000), ("large", 2 * PART_BYTES + 12_345)] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let path = Path::from(name);
            let mut up = Upload::new(Arc::clone(&from), path.clone());
            for piece in data.chunks(1 << 20) {
                up.write(Bytes::copy_from_slice(piece)).await.unwrap();
            }
            up.finish().await.unwrap();
            assert_eq!(copy(from.as_ref(), &to, &path).await.unwrap(), len as u64);
            let got = to.get(&path).await.unwrap().bytes().await.unwrap();
            assert!(got == data, "{name}");
        }
        let err = copy(from.as_ref(), &to, &Path::from("missing"))
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, "object store get missing");
    }
}
