//! [`MemSeriesSet`]: series in memory, the reference implementation readers are checked against,
//! and what the importer and the shipper's head collect samples into.

use std::collections::{BTreeMap, HashMap};

use crate::labels::{Labels, Matcher, matches_all};
use crate::series::{Sample, Series, sort_dedup, window_start};

/// Series kept in memory, keyed by their full label set.
#[derive(Debug, Default, Clone)]
pub struct MemSeriesSet {
    series: HashMap<Labels, Vec<Sample>>,
    samples: usize,
}

impl MemSeriesSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one sample to the series `labels` (order is fixed when reading).
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) {
        match self.series.get_mut(labels) {
            Some(samples) => samples.push(Sample { t, v }),
            None => {
                self.series.insert(labels.clone(), vec![Sample { t, v }]);
            }
        }
        self.samples += 1;
    }

    /// Appends a whole series.
    pub fn append_series(&mut self, series: Series) {
        self.samples += series.samples.len();
        self.series
            .entry(series.labels)
            .or_default()
            .extend(series.samples);
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True if there are no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Number of samples appended (duplicates included).
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Series matching all `matchers`, with external labels added first, and their samples in
    /// `[min_t, max_t]`: the contract of [`crate::BlockReader::select`].
    pub fn select(
        &self,
        matchers: &[Matcher],
        external: &Labels,
        min_t: i64,
        max_t: i64,
    ) -> Vec<Series> {
        let in_range = |samples: &[Sample]| {
            let mut samples = samples.to_vec();
            sort_dedup(&mut samples);
            samples.retain(|s| (min_t..=max_t).contains(&s.t));
            Ok::<_, std::convert::Infallible>(samples)
        };
        let Ok(series) = select_series(
            self.series.iter().map(|(l, s)| (l, s.as_slice())),
            matchers,
            external,
            in_range,
        );
        series
    }

    /// Splits the set into aligned windows of `duration_ms`: window start -> series of that window.
    pub fn into_windows(self, duration_ms: i64) -> BTreeMap<i64, Vec<Series>> {
        let mut windows: BTreeMap<i64, HashMap<Labels, Vec<Sample>>> = BTreeMap::new();
        for (labels, samples) in self.series {
            let mut by_window: BTreeMap<i64, Vec<Sample>> = BTreeMap::new();
            for s in samples {
                by_window
                    .entry(window_start(s.t, duration_ms))
                    .or_default()
                    .push(s);
            }
            for (w, samples) in by_window {
                windows
                    .entry(w)
                    .or_default()
                    .insert(labels.clone(), samples);
            }
        }
        windows
            .into_iter()
            .map(|(w, m)| {
                (
                    w,
                    m.into_iter()
                        .map(|(labels, samples)| Series { labels, samples })
                        .collect(),
                )
            })
            .collect()
    }
}

/// The selection contract of [`crate::BlockReader::select`] over series held in memory: series
/// whose labels (external labels added) match every matcher, with their samples, series without
/// samples left out, sorted by labels. `samples(series)` gives a matching series' samples in the
/// time range, sorted, the last write of a timestamp kept; it is called for matching series only,
/// and its first error is the answer.
pub fn select_series<'a, S, E>(
    series: impl Iterator<Item = (&'a Labels, S)>,
    matchers: &[Matcher],
    external: &Labels,
    samples: impl Fn(S) -> Result<Vec<Sample>, E>,
) -> Result<Vec<Series>, E> {
    let mut out = Vec::new();
    for (labels, s) in series {
        if !matches_all(matchers, labels, external) {
            continue;
        }
        let samples = samples(s)?;
        if !samples.is_empty() {
            out.push(Series {
                labels: labels.with_external(external),
                samples,
            });
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_split_series_at_boundaries() {
        let mut m = MemSeriesSet::new();
        let l = Labels::from_pairs([("__name__", "up")]);
        for t in [0, 10, 20, 30] {
            m.append(&l, t, 1.0);
        }
        let w = m.into_windows(20);
        assert_eq!(w.keys().copied().collect::<Vec<_>>(), [0, 20]);
        assert_eq!(w[&20][0].samples.len(), 2);
    }
}
