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

/// A PromQL function: what the evaluator dispatches on; [`FUNCTIONS`] gives each its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the function of the same name in FUNCTIONS
pub enum Func {
    Info,
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    Resets,
    Changes,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    StddevOverTime,
    StdvarOverTime,
    MadOverTime,
    TsOfLastOverTime,
    TsOfFirstOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    QuantileOverTime,
    PredictLinear,
    DoubleExponentialSmoothing,
    HoltWinters,
    AbsentOverTime,
    Abs,
    Ceil,
    Floor,
    Exp,
    Sqrt,
    Ln,
    Log2,
    Log10,
    Sgn,
    Acos,
    Acosh,
    Asin,
    Asinh,
    Atan,
    Atanh,
    Cos,
    Cosh,
    Sin,
    Sinh,
    Tan,
    Tanh,
    Deg,
    Rad,
    Clamp,
    ClampMin,
    ClampMax,
    Round,
    Timestamp,
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    DaysInMonth,
    Hour,
    Minute,
    Month,
    Year,
    Absent,
    HistogramQuantile,
    LabelReplace,
    LabelJoin,
    Sort,
    SortDesc,
    SortByLabel,
    SortByLabelDesc,
    Scalar,
    Vector,
    Time,
    Pi,
    Start,
    End,
    Range,
    Step,
    MinOf,
    MaxOf,
}

/// A PromQL function: its name, argument kinds (trailing `optional` may be left out) and placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Which function.
    pub func: Func,
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

impl Function {
    /// Whether fleetscope keeps it behind `--enable-feature=promql-experimental-functions`, as
    /// Prometheus does (the experimental functions fleetscope answered before it had the flag
    /// stay on).
    pub fn experimental(&self) -> bool {
        matches!(self.func, Func::Info)
    }
}

const fn f(
    func: Func,
    name: &'static str,
    args: &'static [ArgKind],
    optional: usize,
    placement: Placement,
) -> Function {
    Function {
        func,
        name,
        args,
        optional,
        placement,
    }
}

/// Every function the engine evaluates.
pub static FUNCTIONS: &[Function] = &[
    // Range functions: one series' window per step.
    f(Func::Rate, "rate", &[R], 0, PerSeries),
    f(Func::Increase, "increase", &[R], 0, PerSeries),
    f(Func::Delta, "delta", &[R], 0, PerSeries),
    f(Func::Irate, "irate", &[R], 0, PerSeries),
    f(Func::Idelta, "idelta", &[R], 0, PerSeries),
    f(Func::Deriv, "deriv", &[R], 0, PerSeries),
    f(Func::Resets, "resets", &[R], 0, PerSeries),
    f(Func::Changes, "changes", &[R], 0, PerSeries),
    f(Func::AvgOverTime, "avg_over_time", &[R], 0, PerSeries),
    f(Func::SumOverTime, "sum_over_time", &[R], 0, PerSeries),
    f(Func::CountOverTime, "count_over_time", &[R], 0, PerSeries),
    f(Func::MinOverTime, "min_over_time", &[R], 0, PerSeries),
    f(Func::MaxOverTime, "max_over_time", &[R], 0, PerSeries),
    f(Func::LastOverTime, "last_over_time", &[R], 0, PerSeries),
    f(Func::FirstOverTime, "first_over_time", &[R], 0, PerSeries),
    f(
        Func::PresentOverTime,
        "present_over_time",
        &[R],
        0,
        PerSeries,
    ),
    f(Func::StddevOverTime, "stddev_over_time", &[R], 0, PerSeries),
    f(Func::StdvarOverTime, "stdvar_over_time", &[R], 0, PerSeries),
    f(Func::MadOverTime, "mad_over_time", &[R], 0, PerSeries),
    f(
        Func::TsOfLastOverTime,
        "ts_of_last_over_time",
        &[R],
        0,
        PerSeries,
    ),
    f(
        Func::TsOfFirstOverTime,
        "ts_of_first_over_time",
        &[R],
        0,
        PerSeries,
    ),
    f(
        Func::TsOfMinOverTime,
        "ts_of_min_over_time",
        &[R],
        0,
        PerSeries,
    ),
    f(
        Func::TsOfMaxOverTime,
        "ts_of_max_over_time",
        &[R],
        0,
        PerSeries,
    ),
    f(
        Func::QuantileOverTime,
        "quantile_over_time",
        &[S, R],
        0,
        PerSeries,
    ),
    f(Func::PredictLinear, "predict_linear", &[R, S], 0, PerSeries),
    f(
        Func::DoubleExponentialSmoothing,
        "double_exponential_smoothing",
        &[R, S, S],
        0,
        PerSeries,
    ),
    f(Func::HoltWinters, "holt_winters", &[R, S, S], 0, PerSeries),
    f(Func::AbsentOverTime, "absent_over_time", &[R], 0, Root),
    // Per-series functions of an instant vector.
    f(Func::Abs, "abs", &[I], 0, PerSeries),
    f(Func::Ceil, "ceil", &[I], 0, PerSeries),
    f(Func::Floor, "floor", &[I], 0, PerSeries),
    f(Func::Exp, "exp", &[I], 0, PerSeries),
    f(Func::Sqrt, "sqrt", &[I], 0, PerSeries),
    f(Func::Ln, "ln", &[I], 0, PerSeries),
    f(Func::Log2, "log2", &[I], 0, PerSeries),
    f(Func::Log10, "log10", &[I], 0, PerSeries),
    f(Func::Sgn, "sgn", &[I], 0, PerSeries),
    f(Func::Acos, "acos", &[I], 0, PerSeries),
    f(Func::Acosh, "acosh", &[I], 0, PerSeries),
    f(Func::Asin, "asin", &[I], 0, PerSeries),
    f(Func::Asinh, "asinh", &[I], 0, PerSeries),
    f(Func::Atan, "atan", &[I], 0, PerSeries),
    f(Func::Atanh, "atanh", &[I], 0, PerSeries),
    f(Func::Cos, "cos", &[I], 0, PerSeries),
    f(Func::Cosh, "cosh", &[I], 0, PerSeries),
    f(Func::Sin, "sin", &[I], 0, PerSeries),
    f(Func::Sinh, "sinh", &[I], 0, PerSeries),
    f(Func::Tan, "tan", &[I], 0, PerSeries),
    f(Func::Tanh, "tanh", &[I], 0, PerSeries),
    f(Func::Deg, "deg", &[I], 0, PerSeries),
    f(Func::Rad, "rad", &[I], 0, PerSeries),
    f(Func::Clamp, "clamp", &[I, S, S], 0, PerSeries),
    f(Func::ClampMin, "clamp_min", &[I, S], 0, PerSeries),
    f(Func::ClampMax, "clamp_max", &[I, S], 0, PerSeries),
    f(Func::Round, "round", &[I, S], 1, PerSeries),
    f(Func::Timestamp, "timestamp", &[I], 0, PerSeries),
    f(Func::DayOfMonth, "day_of_month", &[I], 1, PerSeries),
    f(Func::DayOfWeek, "day_of_week", &[I], 1, PerSeries),
    f(Func::DayOfYear, "day_of_year", &[I], 1, PerSeries),
    f(Func::DaysInMonth, "days_in_month", &[I], 1, PerSeries),
    f(Func::Hour, "hour", &[I], 1, PerSeries),
    f(Func::Minute, "minute", &[I], 1, PerSeries),
    f(Func::Month, "month", &[I], 1, PerSeries),
    f(Func::Year, "year", &[I], 1, PerSeries),
    // Functions over the whole vector, or without one.
    f(Func::Absent, "absent", &[I], 0, Root),
    // Experimental in Prometheus (`--enable-feature=promql-experimental-functions`); its second
    // argument is a label selector, never read as a selection of its own.
    f(Func::Info, "info", &[I, I], 1, Root),
    f(
        Func::HistogramQuantile,
        "histogram_quantile",
        &[S, I],
        0,
        Root,
    ),
    f(
        Func::LabelReplace,
        "label_replace",
        &[I, Str, Str, Str, Str],
        0,
        Root,
    ),
    f(
        Func::LabelJoin,
        "label_join",
        &[I, Str, Str, Str],
        usize::MAX,
        Root,
    ),
    f(Func::Sort, "sort", &[I], 0, Root),
    f(Func::SortDesc, "sort_desc", &[I], 0, Root),
    f(
        Func::SortByLabel,
        "sort_by_label",
        &[I, Str],
        usize::MAX,
        Root,
    ),
    f(
        Func::SortByLabelDesc,
        "sort_by_label_desc",
        &[I, Str],
        usize::MAX,
        Root,
    ),
    f(Func::Scalar, "scalar", &[I], 0, Root),
    f(Func::Vector, "vector", &[S], 0, Root),
    f(Func::Time, "time", &[], 0, Root),
    f(Func::Pi, "pi", &[], 0, Root),
    f(Func::Start, "start", &[], 0, Root),
    f(Func::End, "end", &[], 0, Root),
    f(Func::Range, "range", &[], 0, Root),
    f(Func::Step, "step", &[], 0, Root),
    f(Func::MinOf, "min_of", &[S, S], 0, Root),
    f(Func::MaxOf, "max_of", &[S, S], 0, Root),
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
    /// `limitk` (experimental: `--enable-feature=promql-experimental-functions`)
    Limitk,
    /// `limit_ratio` (experimental: `--enable-feature=promql-experimental-functions`)
    LimitRatio,
}

impl AggOp {
    /// Every operator.
    pub const ALL: [AggOp; 14] = [
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
        AggOp::Limitk,
        AggOp::LimitRatio,
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
            AggOp::Limitk => "limitk",
            AggOp::LimitRatio => "limit_ratio",
        }
    }

    /// The kind of its parameter, if it takes one.
    pub fn param(self) -> Option<ArgKind> {
        match self {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::Limitk | AggOp::LimitRatio => {
                Some(ArgKind::Scalar)
            }
            AggOp::CountValues => Some(ArgKind::String),
            _ => None,
        }
    }

    /// Whether Prometheus keeps it behind `--enable-feature=promql-experimental-functions`.
    pub fn experimental(self) -> bool {
        matches!(self, AggOp::Limitk | AggOp::LimitRatio)
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
