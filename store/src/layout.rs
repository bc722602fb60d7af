//! Object paths: the only place they are built or parsed.
//!
//! ```text
//! <prefix>/<ULID>/data.parquet
//! <prefix>/<ULID>/labels.json.zst    label names and values (blocks written before it lack it)
//! <prefix>/<ULID>/meta.json      written last: a block without it does not exist
//! <prefix>/<ULID>/deletion-mark.json   the compactor's: readers ignore the block, it goes later
//! ```

use object_store::path::Path;

use crate::meta::BlockId;
use crate::schema::{DATA_FILE, DELETION_MARK_FILE, META_FILE};

/// Path of a block's `meta.json`.
pub fn meta_path(id: BlockId) -> Path {
    Path::from_iter([id.to_string().as_str(), META_FILE])
}

/// Path of a block's `data.parquet`.
pub fn data_path(id: BlockId) -> Path {
    Path::from_iter([id.to_string().as_str(), DATA_FILE])
}

/// Path of any file of a block.
pub fn file_path(id: BlockId, file: &str) -> Path {
    Path::from_iter([id.to_string().as_str(), file])
}

/// Path of a block's deletion mark.
pub fn deletion_mark_path(id: BlockId) -> Path {
    Path::from_iter([id.to_string().as_str(), DELETION_MARK_FILE])
}

/// The block whose `meta.json` is at `path`, if `path` is one.
pub fn block_of_meta_path(path: &Path) -> Option<BlockId> {
    block_of(path, META_FILE)
}

/// The block whose deletion mark is at `path`, if `path` is one.
pub fn block_of_deletion_mark_path(path: &Path) -> Option<BlockId> {
    block_of(path, DELETION_MARK_FILE)
}

fn block_of(path: &Path, name: &str) -> Option<BlockId> {
    let mut parts = path.parts();
    let dir = parts.next()?;
    let file = parts.next()?;
    if parts.next().is_some() || file.as_ref() != name {
        return None;
    }
    dir.as_ref().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_paths_roundtrip() {
        let id = BlockId::new();
        assert_eq!(block_of_meta_path(&meta_path(id)), Some(id));
        assert_eq!(block_of_meta_path(&data_path(id)), None);
        assert_eq!(block_of_meta_path(&Path::from("x/meta.json")), None);
        assert_eq!(
            block_of_deletion_mark_path(&deletion_mark_path(id)),
            Some(id)
        );
        assert_eq!(block_of_deletion_mark_path(&meta_path(id)), None);
    }
}
