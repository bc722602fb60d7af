//! `meta.json`: what a block holds, written last so its presence is the block's existence.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::layout;
use crate::schema::FORMAT_VERSION;
use crate::sub_chunks::SubChunks;

/// A block's identity: a ULID, so names sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlockId(pub ulid::Ulid);

impl BlockId {
    /// A fresh id for the current time.
    pub fn new() -> Self {
        Self(ulid::Ulid::new())
    }
}

impl Default for BlockId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for BlockId {
    type Err = ulid::DecodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ulid::Ulid::from_string(s).map(Self)
    }
}

impl TryFrom<String> for BlockId {
    type Error = ulid::DecodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BlockId> for String {
    fn from(id: BlockId) -> String {
        id.to_string()
    }
}

/// The content of `<ulid>/meta.json` (see `docs/block-format.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Block format version (`schema::FORMAT_VERSION`; 1 for raw blocks without sub-chunks).
    pub version: u32,
    /// The block's id, equal to its directory name.
    pub ulid: BlockId,
    /// Timestamp of the earliest sample (ms, inclusive).
    pub min_t: i64,
    /// Timestamp of the latest sample plus one (ms, exclusive), as in Prometheus.
    pub max_t: i64,
    /// Labels of the producer (e.g. `cluster`), labels of every series in the block.
    pub external_labels: BTreeMap<String, String>,
    /// Counts.
    pub stats: BlockStats,
    /// What wrote the block, e.g. `fleetscope-import/0.1.0`.
    pub producer: String,
    /// Compaction level and source blocks.
    pub compaction: Compaction,
    /// The block's data files with their sizes.
    pub files: Vec<BlockFile>,
    /// Window of the block's summaries, ms (`downsample::RES_5M`, `RES_1H`); 0 for raw samples
    /// (blocks written before downsampling have none).
    #[serde(default)]
    pub resolution: i64,
    /// The slots a raw block's series are cut into (`None`: one chunk per series, as version 1
    /// blocks and downsampled blocks have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_chunks: Option<SubChunks>,
}

/// Counts of a block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// Number of series.
    pub series: u64,
    /// Number of samples.
    pub samples: u64,
    /// Bytes of all data files (`meta.json` excluded).
    pub bytes: u64,
}

/// Compaction history of a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 for a block cut from fresh samples; higher for merged blocks.
    pub level: u32,
    /// The level-1 blocks whose samples this block holds (itself, at level 1).
    pub sources: Vec<BlockId>,
}

/// One data file of a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    /// Path relative to the block directory.
    pub path: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

impl BlockMeta {
    /// The external labels as a [`Labels`] set.
    pub fn external_labels(&self) -> Labels {
        Labels::from_pairs(
            self.external_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// Size of the data file named `name`, if the block lists it.
    pub fn file_size(&self, name: &str) -> Option<u64> {
        self.files
            .iter()
            .find(|f| f.path == name)
            .map(|f| f.size_bytes)
    }

    /// Whether the block may hold samples in `[min_t, max_t]` (both inclusive).
    pub fn overlaps(&self, min_t: i64, max_t: i64) -> bool {
        self.min_t <= max_t && min_t < self.max_t
    }

    /// Reads and checks `<id>/meta.json`.
    pub async fn read(store: &dyn ObjectStore, id: BlockId) -> Result<Self> {
        let path = layout::meta_path(id);
        let meta: BlockMeta = get_json(store, &path).await?;
        if meta.version > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                block: id,
                version: meta.version,
                supported: FORMAT_VERSION,
            });
        }
        if let Some(grid) = &meta.sub_chunks {
            grid.check()
                .map_err(|e| Error::Corrupt(format!("{path}: {e}")))?;
        }
        if meta.ulid != id {
            return Err(Error::Corrupt(format!("{path} names block {}", meta.ulid)));
        }
        Ok(meta)
    }

    /// Lists every block of the store (directories holding a `meta.json`, without a deletion mark),
    /// sorted by id.
    pub async fn list(store: &Arc<dyn ObjectStore>) -> Result<Vec<BlockMeta>> {
        let ids = Self::list_ids(store).await?;
        Self::read_all(store, ids).await
    }

    /// The ids of every block of the store, without reading their `meta.json` (one listing).
    pub async fn list_ids(store: &Arc<dyn ObjectStore>) -> Result<Vec<BlockId>> {
        let paths = list_paths(store.as_ref()).await?;
        let marked: std::collections::HashSet<BlockId> = paths
            .iter()
            .filter_map(layout::block_of_deletion_mark_path)
            .collect();
        let mut ids: Vec<BlockId> = paths
            .iter()
            .filter_map(layout::block_of_meta_path)
            .filter(|id| !marked.contains(id))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The `meta.json` of each block of `ids`, read [`READ_CONCURRENCY`] at a time, sorted by id.
    pub async fn read_all(store: &Arc<dyn ObjectStore>, ids: Vec<BlockId>) -> Result<Vec<Self>> {
        let mut metas: Vec<BlockMeta> = futures::stream::iter(ids.into_iter().map(|id| {
            let store = Arc::clone(store);
            async move { BlockMeta::read(store.as_ref(), id).await }
        }))
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
        metas.sort_by_key(|m| m.ulid);
        Ok(metas)
    }
}

/// `meta.json` files read at once: enough to hide an object store's latency.
const READ_CONCURRENCY: usize = 64;

/// Every object path of the store.
pub(crate) async fn list_paths(store: &dyn ObjectStore) -> Result<Vec<object_store::path::Path>> {
    store
        .list(None)
        .map_ok(|o| o.location)
        .try_collect()
        .await
        .map_err(|source| Error::ObjectStore {
            op: "list",
            path: "/".into(),
            source,
        })
}

/// A JSON object of the store, parsed.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
) -> Result<T> {
    let bytes = crate::upload::get(store, path).await?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Meta {
        path: path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_json_roundtrip() {
        let id = BlockId::new();
        let meta = BlockMeta {
            version: crate::schema::FORMAT_VERSION,
            ulid: id,
            min_t: 0,
            max_t: 10,
            external_labels: [("cluster".to_string(), "a".to_string())].into(),
            stats: BlockStats {
                series: 1,
                samples: 2,
                bytes: 3,
            },
            producer: "test".into(),
            compaction: Compaction {
                level: 1,
                sources: vec![id],
            },
            files: vec![BlockFile {
                path: "data.parquet".into(),
                size_bytes: 3,
            }],
            resolution: 0,
            sub_chunks: Some(SubChunks::covering(0, 9)),
        };
        let json = serde_json::to_string(&meta).unwrap();
        assert!(json.contains(&format!("\"ulid\":\"{id}\"")), "{json}");
        assert_eq!(serde_json::from_str::<BlockMeta>(&json).unwrap(), meta);
        assert!(
            json.contains(r#""sub_chunks":{"start_ms":0,"width_ms":1800000,"count":1}"#),
            "{json}"
        );
        // Blocks written before downsampling have no `resolution` (raw), version 1 blocks no
        // `sub_chunks`.
        let old = json.replace(",\"resolution\":0", "");
        assert_ne!(old, json);
        assert_eq!(serde_json::from_str::<BlockMeta>(&old).unwrap(), meta);
        let v1 = BlockMeta {
            sub_chunks: None,
            ..meta.clone()
        };
        let json = serde_json::to_string(&v1).unwrap();
        assert!(!json.contains("sub_chunks"), "{json}");
        assert_eq!(serde_json::from_str::<BlockMeta>(&json).unwrap(), v1);
        assert!(meta.overlaps(9, 20));
        assert!(!meta.overlaps(10, 20), "max_t is exclusive");
    }
}
