//! One write's series, flat: label sets and one buffer of samples for the whole write, so a
//! request of thousands of series costs two allocations, not one per series, on its way from the
//! receiver to the WAL thread and the head.

use fleetscope_store::{Labels, Sample, Series};

/// Series of one write: each label set with where its samples end in one sample buffer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Batch {
    series: Vec<(Labels, usize)>,
    samples: Vec<Sample>,
}

impl Batch {
    /// A batch of `series` label sets and `samples` samples before it grows.
    pub fn with_capacity(series: usize, samples: usize) -> Self {
        Self {
            series: Vec::with_capacity(series),
            samples: Vec::with_capacity(samples),
        }
    }

    /// Adds a series with its samples (in increasing time); a series without any is not added.
    pub fn push(&mut self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        self.samples.extend(samples);
        let start = self.series.last().map_or(0, |&(_, end)| end);
        if self.samples.len() > start {
            self.series.push((labels, self.samples.len()));
        }
    }

    /// A batch of the series of `series` whose labels are given, each with its samples: those
    /// from the end of the previous series to its `end` in `samples`. Samples of series without
    /// labels (refused) are dropped.
    pub(crate) fn from_flat(
        mut samples: Vec<Sample>,
        series: impl ExactSizeIterator<Item = (Option<Labels>, usize)>,
    ) -> Self {
        let mut kept = Vec::with_capacity(series.len());
        let (mut read, mut write) = (0, 0);
        for (labels, end) in series {
            if let Some(labels) = labels
                && end > read
            {
                samples.copy_within(read..end, write);
                write += end - read;
                kept.push((labels, write));
            }
            read = end;
        }
        samples.truncate(write);
        Self {
            series: kept,
            samples,
        }
    }

    /// Each series with its samples, in the order pushed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Labels, &[Sample])> {
        let mut start = 0;
        self.series.iter().map(move |(labels, end)| {
            let samples = &self.samples[start..*end];
            start = *end;
            (labels, samples)
        })
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True if the batch holds no series.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Number of samples.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    /// Keeps the samples for which `keep` is true, in place; series left without any go.
    pub fn retain(&mut self, mut keep: impl FnMut(&Labels, &Sample) -> bool) {
        let (mut read, mut write) = (0, 0);
        let mut series = Vec::with_capacity(self.series.len());
        for (labels, end) in std::mem::take(&mut self.series) {
            let start = write;
            for i in read..end {
                let s = self.samples[i];
                if keep(&labels, &s) {
                    self.samples[write] = s;
                    write += 1;
                }
            }
            read = end;
            if write > start {
                series.push((labels, write));
            }
        }
        self.samples.truncate(write);
        self.series = series;
    }
}

impl From<Vec<Series>> for Batch {
    fn from(series: Vec<Series>) -> Self {
        let mut b =
            Batch::with_capacity(series.len(), series.iter().map(|s| s.samples.len()).sum());
        for s in series {
            b.push(s.labels, s.samples);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    fn s(t: i64) -> Sample {
        Sample { t, v: t as f64 }
    }

    fn flat(b: &Batch) -> Vec<(String, Vec<i64>)> {
        b.iter()
            .map(|(l, s)| {
                (
                    l.get("__name__").unwrap_or("").to_string(),
                    s.iter().map(|s| s.t).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn series_keep_their_samples_and_empty_ones_are_not_added() {
        let mut b = Batch::default();
        b.push(l("a"), [s(1), s(2)]);
        b.push(l("b"), []);
        b.push(l("c"), [s(3)]);
        assert_eq!(
            flat(&b),
            [("a".to_string(), vec![1, 2]), ("c".to_string(), vec![3])]
        );
        assert_eq!((b.len(), b.samples()), (2, 3));
    }

    #[test]
    fn from_flat_drops_the_samples_of_refused_series() {
        let b = Batch::from_flat(
            (1..=6).map(s).collect(),
            [(None, 2), (Some(l("b")), 3), (None, 5), (Some(l("d")), 6)].into_iter(),
        );
        assert_eq!(
            flat(&b),
            [("b".to_string(), vec![3]), ("d".to_string(), vec![6])]
        );
        assert_eq!(b.samples(), 2);
    }

    #[test]
    fn retain_drops_samples_and_the_series_they_leave_empty() {
        let mut b = Batch::from(vec![
            Series {
                labels: l("a"),
                samples: vec![s(1), s(5), s(2)],
            },
            Series {
                labels: l("b"),
                samples: vec![s(7)],
            },
            Series {
                labels: l("c"),
                samples: vec![s(3), s(8)],
            },
        ]);
        b.retain(|_, x| x.t < 6);
        assert_eq!(
            flat(&b),
            [("a".to_string(), vec![1, 5, 2]), ("c".to_string(), vec![3])]
        );
        assert_eq!(b.samples(), 4);
    }
}
