//! Sub-chunks: a raw block cuts every series' samples on one grid of time slots, one pair of
//! columns per slot (`timestamps_<k>`, `values_<k>`), so a query reads and decodes only the slots
//! its range reaches: an instant query about 120 samples at a 15 s scrape, not a series' whole
//! window (see `docs/block-format.md`, "Sub-chunks").

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::series::Sample;

/// Width of a slot, ms: 30 minutes, 120 samples at a 15 s scrape (a Prometheus chunk).
pub const SLOT_MS: i64 = 30 * 60 * 1000;
/// Most slots a block has: past `MAX_SLOTS` × 30 minutes (32h), slots widen by whole multiples of
/// [`SLOT_MS`] so that a merged block keeps a bounded number of columns.
pub const MAX_SLOTS: u32 = 64;

/// A block's slot grid, in `meta.json` as `"sub_chunks"`. Slot `k` holds the samples with
/// `start + k × width <= t < start + (k + 1) × width`, except that the first slot also holds every
/// earlier sample and the last every later one (a grid is chosen from the block's window before
/// its samples are seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubChunks {
    /// Start of the first slot, ms since the epoch (a multiple of `width`).
    #[serde(rename = "start_ms")]
    pub start: i64,
    /// Width of a slot, ms.
    #[serde(rename = "width_ms")]
    pub width: i64,
    /// Number of slots.
    pub count: u32,
}

impl SubChunks {
    /// The grid of epoch-aligned slots covering `[min_t, max_t]` (both inclusive).
    pub fn covering(min_t: i64, max_t: i64) -> Self {
        let (lo, hi) = (i128::from(min_t.min(max_t)), i128::from(max_t.max(min_t)));
        let slots = |width: i128| {
            let start = lo.div_euclid(width) * width;
            (start, (hi - start) / width + 1)
        };
        let max = i128::from(MAX_SLOTS);
        let (_, narrow) = slots(i128::from(SLOT_MS));
        // Aligning the start down to a wider slot can add one: widen until it fits.
        let mut times = (narrow + max - 1) / max;
        let (mut start, mut count) = slots(i128::from(SLOT_MS) * times);
        while count > max {
            times += 1;
            (start, count) = slots(i128::from(SLOT_MS) * times);
        }
        let width = i128::from(SLOT_MS) * times;
        let clamp = |x: i128| i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX });
        Self {
            start: clamp(start),
            width: clamp(width),
            count: u32::try_from(count.clamp(1, max)).unwrap_or(MAX_SLOTS),
        }
    }

    /// Checks a grid read from `meta.json`.
    pub fn check(&self) -> Result<()> {
        if self.width <= 0 || self.count == 0 || self.count > MAX_SLOTS {
            return Err(Error::Corrupt(format!(
                "sub_chunks: width {} ms and count {} (count must be 1..={MAX_SLOTS})",
                self.width, self.count
            )));
        }
        Ok(())
    }

    /// The slot holding a sample at `t`.
    pub fn slot(&self, t: i64) -> usize {
        let k = (i128::from(t) - i128::from(self.start)).div_euclid(i128::from(self.width.max(1)));
        usize::try_from(k.clamp(0, i128::from(self.count.max(1) - 1))).unwrap_or(0)
    }

    /// Start of slot `k`, ms (its timestamps are coded from it and the series' first sample).
    pub fn slot_start(&self, k: usize) -> i64 {
        let t = i128::from(self.start) + i128::from(self.width) * k as i128;
        i64::try_from(t).unwrap_or(if t < 0 { i64::MIN } else { i64::MAX })
    }

    /// The slots that may hold samples in `[min_t, max_t]` (both inclusive).
    pub fn slots(&self, min_t: i64, max_t: i64) -> Range<usize> {
        if min_t > max_t {
            return 0..0;
        }
        self.slot(min_t)..self.slot(max_t) + 1
    }

    /// `samples` (sorted by time) cut into the grid's slots, one slice per slot (empty where a
    /// slot has none).
    pub fn split<'a>(&self, samples: &'a [Sample]) -> Vec<&'a [Sample]> {
        let mut out = Vec::with_capacity(self.count as usize);
        let mut rest = samples;
        for k in 0..self.count as usize {
            let n = if k + 1 == self.count as usize {
                rest.len()
            } else {
                rest.partition_point(|s| self.slot(s.t) <= k)
            };
            let (here, after) = rest.split_at(n);
            out.push(here);
            rest = after;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ts: &[i64]) -> Vec<Sample> {
        ts.iter().map(|&t| Sample { t, v: t as f64 }).collect()
    }

    #[test]
    fn two_hour_window_is_four_slots_of_thirty_minutes() {
        let h = 3_600_000;
        let grid = SubChunks::covering(4 * h, 6 * h - 1);
        assert_eq!(
            grid,
            SubChunks {
                start: 4 * h,
                width: SLOT_MS,
                count: 4
            }
        );
        assert_eq!(grid.slot(4 * h), 0);
        assert_eq!(grid.slot(4 * h + SLOT_MS - 1), 0);
        assert_eq!(grid.slot(4 * h + SLOT_MS), 1);
        assert_eq!(grid.slot(6 * h - 1), 3);
        // Outside the grid: the end slots.
        assert_eq!(grid.slot(0), 0);
        assert_eq!(grid.slot(i64::MAX), 3);
        assert_eq!(grid.slot(i64::MIN), 0);
        // An instant query with a 5m lookback reaches one slot, or two across a boundary.
        assert_eq!(grid.slots(5 * h - 300_000, 5 * h - 1), 1..2);
        assert_eq!(grid.slots(5 * h - 300_000, 5 * h + 10), 1..3);
        assert_eq!(grid.slots(i64::MIN, i64::MAX), 0..4);
        assert_eq!(grid.slots(10, 5), 0..0);
        // A window not aligned to the slots still gets whole slots around it.
        let odd = SubChunks::covering(SLOT_MS / 2, SLOT_MS + 1);
        assert_eq!((odd.start, odd.count), (0, 2));
    }

    #[test]
    fn long_blocks_widen_their_slots() {
        let day = 86_400_000;
        let grid = SubChunks::covering(0, day - 1);
        assert_eq!((grid.width, grid.count), (SLOT_MS, 48));
        let grid = SubChunks::covering(0, 14 * day - 1);
        assert!(grid.count <= MAX_SLOTS);
        assert_eq!(grid.width % SLOT_MS, 0);
        assert_eq!(grid.start % grid.width, 0);
        assert!(grid.start + grid.width * i64::from(grid.count) >= 14 * day);
        // Any range, however wide, is a valid grid.
        for (lo, hi) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (-5, -5), (0, 0)] {
            let grid = SubChunks::covering(lo, hi);
            grid.check().unwrap();
            assert_eq!(grid.slot(lo.min(hi)), 0);
            assert_eq!(grid.slot(lo.max(hi)), grid.count as usize - 1);
        }
    }

    #[test]
    fn split_keeps_every_sample_once_in_its_slot() {
        let grid = SubChunks {
            start: 100,
            width: 10,
            count: 3,
        };
        let all = samples(&[5, 100, 109, 110, 125, 130, 500]);
        let parts = grid.split(&all);
        let ts: Vec<Vec<i64>> = parts
            .iter()
            .map(|p| p.iter().map(|s| s.t).collect())
            .collect();
        assert_eq!(ts, vec![vec![5, 100, 109], vec![110], vec![125, 130, 500]]);
        let one = samples(&[115]);
        let empty = grid.split(&one);
        assert_eq!(empty.iter().map(|p| p.len()).collect::<Vec<_>>(), [0, 1, 0]);
        assert!(
            SubChunks {
                start: 0,
                width: 0,
                count: 1
            }
            .check()
            .is_err()
        );
    }
}
