//! Bytes per sample of one bucket's blocks rewritten in each layout: version 1 (one chunk per
//! series) and version 2 (sub-chunks) at zstd levels 3 to 15 (docs/block-format.md,
//! "Sub-chunks"). Usage: `cargo run --profile bench-fast -p fleetscope-store --example layouts --
//! file:///path/to/bucket`, e.g. the bucket `fleetscope-bench compare --work DIR` leaves.

use std::sync::Arc;

use fleetscope_store::sub_chunks::SubChunks;
use fleetscope_store::{BlockMeta, BlockReader, CodedSeries, WriteOptions, objstore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: layouts OBJSTORE_URL")?;
    let store = objstore::open(&url)?;
    let out = objstore::open("memory://")?;
    for meta in BlockMeta::list(&store).await? {
        let reader = BlockReader::new(Arc::clone(&store), meta.clone());
        let mut series = reader.select(&[], i64::MIN, i64::MAX).await?.series;
        series.sort_by(|a, b| a.labels.cmp_block_order(&b.labels));
        let grid = SubChunks::covering(meta.min_t, meta.max_t - 1);
        for (grid, zstd_level) in [
            (None, 3),
            (Some(grid), 3),
            (Some(grid), 6),
            (Some(grid), 9),
            (Some(grid), 12),
            (Some(grid), 15),
        ] {
            let coded = series
                .iter()
                .map(|s| CodedSeries::new(s.labels.clone(), &s.samples, grid))
                .filter_map(Result::transpose)
                .collect::<Result<Vec<_>, _>>()?;
            let started = std::time::Instant::now();
            let options = WriteOptions {
                zstd_level,
                ..Default::default()
            };
            let written =
                fleetscope_store::write_coded_block(&out, coded, &meta.external_labels(), &options)
                    .await?;
            let written_in = started.elapsed();
            let started = std::time::Instant::now();
            let back = BlockReader::new(Arc::clone(&out), written.clone())
                .select(&[], i64::MIN, i64::MAX)
                .await?;
            let read_in = started.elapsed();
            assert_eq!(back.series.len(), series.len(), "every series reads back");
            println!(
                "block {} ({} samples), {}, zstd {zstd_level}: {:.4} bytes per sample, written in {:.2?}, read in {:.2?}",
                meta.ulid,
                written.stats.samples,
                match grid {
                    Some(g) => format!("version 2, {} sub-chunks", g.count),
                    None => "version 1".into(),
                },
                written.stats.bytes as f64 / written.stats.samples.max(1) as f64,
                written_in,
                read_in
            );
        }
    }
    Ok(())
}
