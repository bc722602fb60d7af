//! The head: samples since the last cut, per series, in memory.
//!
//! Windows are aligned to the epoch (`--block-duration`). A window is cut once samples half a window
//! past its end have arrived (as Prometheus waits before compacting its head), so late samples
//! still land in it. Samples older than the last cut window are refused.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use fleetscope_store::series::{sort_dedup, window_start};
use fleetscope_store::{Labels, Sample, Series};

/// Samples not yet in a block.
#[derive(Debug)]
pub struct Head {
    series: FxHashMap<Labels, Vec<Sample>>,
    duration_ms: i64,
    /// Samples before this time belong to windows already cut.
    min_valid_t: i64,
    max_t: i64,
    samples: usize,
}

impl Head {
    /// An empty head cutting windows of `duration_ms`.
    pub fn new(duration_ms: i64) -> Self {
        Self {
            series: FxHashMap::default(),
            duration_ms: duration_ms.max(1),
            min_valid_t: i64::MIN,
            max_t: i64::MIN,
            samples: 0,
        }
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

    /// Adds samples (already checked against [`Head::min_valid_t`]).
    pub fn append(&mut self, series: Vec<Series>) {
        for s in series {
            if s.samples.is_empty() {
                continue;
            }
            self.samples += s.samples.len();
            if let Some(t) = s.samples.iter().map(|x| x.t).max() {
                self.max_t = self.max_t.max(t);
            }
            match self.series.get_mut(&s.labels) {
                Some(v) => v.extend(s.samples),
                None => {
                    self.series.insert(s.labels, s.samples);
                }
            }
        }
    }

    /// Series matching all `matchers` (with `external` labels added), samples in `[min_t, max_t]`
    /// sorted and unique: what a querier needs of data not yet in blocks.
    pub fn select(
        &self,
        matchers: &[fleetscope_store::Matcher],
        external: &Labels,
        min_t: i64,
        max_t: i64,
    ) -> Vec<Series> {
        fleetscope_store::mem::select_series(
            self.series.iter().map(|(l, s)| (l, s.as_slice())),
            matchers,
            external,
            min_t,
            max_t,
        )
    }

    /// Every series with its samples (for a WAL checkpoint).
    pub fn snapshot(&self) -> Vec<Series> {
        self.series
            .iter()
            .map(|(l, s)| Series {
                labels: l.clone(),
                samples: s.clone(),
            })
            .collect()
    }

    /// The start of the oldest window that is complete: the head holds samples half a window past
    /// its end.
    pub fn due_window(&self) -> Option<i64> {
        let oldest = self.series.values().flatten().map(|s| s.t).min()?;
        let w = window_start(oldest, self.duration_ms);
        (self.max_t >= w + self.duration_ms + self.duration_ms / 2).then_some(w)
    }

    /// Removes and returns the samples of window `w`; later samples before its end are refused.
    pub fn cut_window(&mut self, w: i64) -> Vec<Series> {
        let end = w + self.duration_ms;
        let mut out = Vec::new();
        self.series.retain(|labels, samples| {
            let (mut inside, rest): (Vec<Sample>, Vec<Sample>) =
                samples.drain(..).partition(|s| s.t < end);
            if !inside.is_empty() {
                sort_dedup(&mut inside);
                out.push(Series {
                    labels: labels.clone(),
                    samples: inside,
                });
            }
            *samples = rest;
            !samples.is_empty()
        });
        self.samples = self.series.values().map(Vec::len).sum();
        self.min_valid_t = self.min_valid_t.max(end);
        out
    }

    /// Removes everything, split by window (a flush). Does not move [`Head::min_valid_t`]: samples
    /// may still arrive for these windows and will be cut into further blocks.
    pub fn cut_all(&mut self) -> BTreeMap<i64, Vec<Series>> {
        let mut windows: BTreeMap<i64, Vec<Series>> = BTreeMap::new();
        for (labels, samples) in self.series.drain() {
            let mut by_window: BTreeMap<i64, Vec<Sample>> = BTreeMap::new();
            for s in samples {
                by_window
                    .entry(window_start(s.t, self.duration_ms))
                    .or_default()
                    .push(s);
            }
            for (w, samples) in by_window {
                windows.entry(w).or_default().push(Series {
                    labels: labels.clone(),
                    samples,
                });
            }
        }
        self.samples = 0;
        self.max_t = i64::MIN;
        windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64) -> Series {
        Series {
            labels: Labels::from_pairs([("__name__", "up")]),
            samples: vec![Sample { t, v: 1.0 }],
        }
    }

    #[test]
    fn windows_are_cut_half_a_window_late() {
        let mut h = Head::new(100);
        h.append(vec![s(10), s(120)]);
        assert_eq!(h.due_window(), None, "120 < 100 + 50");
        h.append(vec![s(150)]);
        assert_eq!(h.due_window(), Some(0));
        let cut = h.cut_window(0);
        assert_eq!(cut[0].samples, vec![Sample { t: 10, v: 1.0 }]);
        assert_eq!(h.min_valid_t(), 100);
        assert_eq!(h.samples(), 2);
        let all = h.cut_all();
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), [100]);
        assert_eq!(
            h.min_valid_t(),
            100,
            "a flush does not refuse later samples of its windows"
        );
    }
}
