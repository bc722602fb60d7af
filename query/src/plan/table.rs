//! The PromQL function and aggregation table: each operator's argument kinds and where it can run.

/// What an argument (or a result) of a PromQL operator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A number per step.
    Scalar,
    /// A set of series with a value per step.
    InstantVector,
    /// A set of series with a window of samples per step.
    RangeVector,
    /// A string literal.
    String,
}

/// Where a function's work can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Each output series depends on one input series only: runs inside each partition.
    PerSeries,
    /// Needs every series at once (or none): runs in the single-partition root.
    Root,
}

/// A PromQL function: its name, argument kinds (trailing `optional` may be left out) and placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The name as written in PromQL.
    pub name: &'static str,
    /// Argument kinds in order.
    pub args: &'static [ArgKind],
    /// How many trailing arguments may be left out (`usize::MAX`: variadic strings).
    pub optional: usize,
    /// Where it runs.
    pub placement: Placement,
}

use ArgKind::{InstantVector as I, RangeVector as R, Scalar as S, String as Str};
use Placement::{PerSeries, Root};

const fn f(
    name: &'static str,
    args: &'static [ArgKind],
    optional: usize,
    placement: Placement,
) -> Function {
    Function {
        name,
        args,
        optional,
        placement,
    }
}

/// Every function the engine evaluates.
pub static FUNCTIONS: &[Function] = &[
    // Range functions: one series' window per step.
    f("rate", &[R], 0, PerSeries),
    f("increase", &[R], 0, PerSeries),
    f("delta", &[R], 0, PerSeries),
    f("irate", &[R], 0, PerSeries),
    f("idelta", &[R], 0, PerSeries),
    f("deriv", &[R], 0, PerSeries),
    f("resets", &[R], 0, PerSeries),
    f("changes", &[R], 0, PerSeries),
    f("avg_over_time", &[R], 0, PerSeries),
    f("sum_over_time", &[R], 0, PerSeries),
    f("count_over_time", &[R], 0, PerSeries),
    f("min_over_time", &[R], 0, PerSeries),
    f("max_over_time", &[R], 0, PerSeries),
    f("last_over_time", &[R], 0, PerSeries),
    f("first_over_time", &[R], 0, PerSeries),
    f("present_over_time", &[R], 0, PerSeries),
    f("stddev_over_time", &[R], 0, PerSeries),
    f("stdvar_over_time", &[R], 0, PerSeries),
    f("mad_over_time", &[R], 0, PerSeries),
    f("ts_of_last_over_time", &[R], 0, PerSeries),
    f("ts_of_first_over_time", &[R], 0, PerSeries),
    f("ts_of_min_over_time", &[R], 0, PerSeries),
    f("ts_of_max_over_time", &[R], 0, PerSeries),
    f("quantile_over_time", &[S, R], 0, PerSeries),
    f("predict_linear", &[R, S], 0, PerSeries),
    f("double_exponential_smoothing", &[R, S, S], 0, PerSeries),
    f("holt_winters", &[R, S, S], 0, PerSeries),
    f("absent_over_time", &[R], 0, Root),
    // Per-series functions of an instant vector.
    f("abs", &[I], 0, PerSeries),
    f("ceil", &[I], 0, PerSeries),
    f("floor", &[I], 0, PerSeries),
    f("exp", &[I], 0, PerSeries),
    f("sqrt", &[I], 0, PerSeries),
    f("ln", &[I], 0, PerSeries),
    f("log2", &[I], 0, PerSeries),
    f("log10", &[I], 0, PerSeries),
    f("sgn", &[I], 0, PerSeries),
    f("acos", &[I], 0, PerSeries),
    f("acosh", &[I], 0, PerSeries),
    f("asin", &[I], 0, PerSeries),
    f("asinh", &[I], 0, PerSeries),
    f("atan", &[I], 0, PerSeries),
    f("atanh", &[I], 0, PerSeries),
    f("cos", &[I], 0, PerSeries),
    f("cosh", &[I], 0, PerSeries),
    f("sin", &[I], 0, PerSeries),
    f("sinh", &[I], 0, PerSeries),
    f("tan", &[I], 0, PerSeries),
    f("tanh", &[I], 0, PerSeries),
    f("deg", &[I], 0, PerSeries),
    f("rad", &[I], 0, PerSeries),
    f("clamp", &[I, S, S], 0, PerSeries),
    f("clamp_min", &[I, S], 0, PerSeries),
    f("clamp_max", &[I, S], 0, PerSeries),
    f("round", &[I, S], 1, PerSeries),
    f("timestamp", &[I], 0, PerSeries),
    f("day_of_month", &[I], 1, PerSeries),
    f("day_of_week", &[I], 1, PerSeries),
    f("day_of_year", &[I], 1, PerSeries),
    f("days_in_month", &[I], 1, PerSeries),
    f("hour", &[I], 1, PerSeries),
    f("minute", &[I], 1, PerSeries),
    f("month", &[I], 1, PerSeries),
    f("year", &[I], 1, PerSeries),
    // Functions over the whole vector, or without one.
    f("absent", &[I], 0, Root),
    f("histogram_quantile", &[S, I], 0, Root),
    f("label_replace", &[I, Str, Str, Str, Str], 0, Root),
    f("label_join", &[I, Str, Str, Str], usize::MAX, Root),
    f("sort", &[I], 0, Root),
    f("sort_desc", &[I], 0, Root),
    f("sort_by_label", &[I, Str], usize::MAX, Root),
    f("sort_by_label_desc", &[I, Str], usize::MAX, Root),
    f("scalar", &[I], 0, Root),
    f("vector", &[S], 0, Root),
    f("time", &[], 0, Root),
    f("pi", &[], 0, Root),
    f("start", &[], 0, Root),
    f("end", &[], 0, Root),
    f("range", &[], 0, Root),
    f("step", &[], 0, Root),
    f("min_of", &[S, S], 0, Root),
    f("max_of", &[S, S], 0, Root),
];

/// The function called `name`.
pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// An aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `count`
    Count,
    /// `group`
    Group,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
    /// `quantile`
    Quantile,
    /// `count_values`
    CountValues,
}

impl AggOp {
    /// Every operator.
    pub const ALL: [AggOp; 12] = [
        AggOp::Sum,
        AggOp::Avg,
        AggOp::Count,
        AggOp::Group,
        AggOp::Min,
        AggOp::Max,
        AggOp::Stddev,
        AggOp::Stdvar,
        AggOp::Topk,
        AggOp::Bottomk,
        AggOp::Quantile,
        AggOp::CountValues,
    ];

    /// The operator spelled `name` (case-insensitive, as the parser's token prints it).
    pub fn parse(name: &str) -> Option<AggOp> {
        Self::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// The name as written in PromQL.
    pub fn name(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Count => "count",
            AggOp::Group => "group",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::Quantile => "quantile",
            AggOp::CountValues => "count_values",
        }
    }

    /// The kind of its parameter, if it takes one.
    pub fn param(self) -> Option<ArgKind> {
        match self {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile => Some(ArgKind::Scalar),
            AggOp::CountValues => Some(ArgKind::String),
            _ => None,
        }
    }

    /// Whether partial results per partition merge exactly into the final one (see
    /// `PromAggregateExec`); the others need all series in one place.
    pub fn two_phase(self) -> bool {
        matches!(
            self,
            AggOp::Sum | AggOp::Avg | AggOp::Count | AggOp::Group | AggOp::Min | AggOp::Max
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a function is listed twice");
        for op in AggOp::ALL {
            assert_eq!(AggOp::parse(op.name()), Some(op));
            assert_eq!(AggOp::parse(&op.name().to_uppercase()), Some(op));
        }
        assert_eq!(
            function("rate").map(|f| f.args),
            Some(&[ArgKind::RangeVector][..])
        );
        assert!(function("no_such_function").is_none());
    }
}
