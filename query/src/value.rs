//! Query results (what the API renders) and the values flowing between evaluation steps.

use fleetscope_store::Labels;

/// The result of a query, in Prometheus's four result types.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A single number at a time.
    Scalar {
        /// Evaluation time (ms).
        t: i64,
        /// The value.
        v: f64,
    },
    /// A string at a time.
    String {
        /// Evaluation time (ms).
        t: i64,
        /// The string.
        s: String,
    },
    /// One sample per series at one time (instant queries).
    Vector(Vec<InstantSample>),
    /// Samples over time per series (range queries, range-vector instant queries).
    Matrix(Vec<RangeSeries>),
}

impl QueryValue {
    /// `scalar`, `string`, `vector` or `matrix`, as in the API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::String { .. } => "string",
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    /// The series labels.
    pub labels: Labels,
    /// Timestamp (ms).
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// A series of a matrix: its samples in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series labels.
    pub labels: Labels,
    /// `(t ms, v)` in increasing `t`.
    pub samples: Vec<(i64, f64)>,
}

/// The evaluation steps: `start, start + step, ..., <= end` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
}

impl Grid {
    pub(crate) fn len(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            ((self.end - self.start) / self.step.max(1)) as usize + 1
        }
    }

    pub(crate) fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub(crate) fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.t(i))
    }
}

/// An instant-vector series over the grid: one optional value per step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepSeries {
    pub(crate) labels: Labels,
    pub(crate) vals: Vec<Option<f64>>,
}

impl StepSeries {
    /// The series' values as `(t, v)` samples at the steps of `grid` that have one.
    pub(crate) fn samples(&self, grid: Grid) -> Vec<(i64, f64)> {
        self.vals
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (grid.t(i), v)))
            .collect()
    }
}

/// What an expression evaluates to over a grid.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// One number per step.
    Scalar(Vec<f64>),
    /// Series with a value at some steps.
    Vector(Vec<StepSeries>),
    /// A string literal (only an argument: its text is read from the AST).
    String,
}

/// A range vector: raw samples per series and, per step, the window `(t - range, t]` to look at.
#[derive(Debug, Clone)]
pub(crate) struct RangeInput {
    pub(crate) series: Vec<(Labels, Vec<(i64, f64)>)>,
    /// The range (ms).
    pub(crate) range: i64,
    /// Effective evaluation time of each step (`@` and `offset` applied).
    pub(crate) times: Vec<i64>,
    /// Windows include their left edge (Prometheus 2 semantics, see [`crate::Compat`]).
    pub(crate) left_closed: bool,
}

impl RangeInput {
    /// The samples of a series inside the window of step `i`: `(t - range, t]`.
    pub(crate) fn window<'s>(&self, samples: &'s [(i64, f64)], i: usize) -> &'s [(i64, f64)] {
        self.window_at(samples, self.times[i])
    }

    /// The steps whose windows may hold a sample of `samples`, step times being in order:
    /// outside them a window is empty without looking (a series that lives an hour of a 14-day
    /// query is searched an hour's steps).
    pub(crate) fn live_steps(&self, samples: &[(i64, f64)]) -> std::ops::Range<usize> {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return 0..0;
        };
        let lo = self.times.partition_point(|&t| t < first.0);
        let hi = self
            .times
            .partition_point(|&t| t.saturating_sub(self.range) <= last.0);
        lo..hi.max(lo)
    }

    /// The samples inside the window ending at `end`.
    pub(crate) fn window_at<'s>(&self, samples: &'s [(i64, f64)], end: i64) -> &'s [(i64, f64)] {
        let start = end - self.range;
        let lo = if self.left_closed {
            samples.partition_point(|s| s.0 < start)
        } else {
            samples.partition_point(|s| s.0 <= start)
        };
        let hi = samples.partition_point(|s| s.0 <= end);
        &samples[lo..hi.max(lo)]
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` with Prometheus's spellings of the special values
/// (sample values in answers, and the label `count_values` adds).
/// A value as Prometheus prints it: `NaN`, `+Inf`, `-Inf`, or the shortest decimal that reads back.
pub(crate) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
