//! Which resolution a selection reads and which summary of it ([`Aggregate`]): Thanos's
//! `max_source_resolution` and `--query.auto-downsampling`, with two fixes for its known
//! surprises: a range function whose range is too short for the resolution reads finer data (with
//! a warning if the resolution was asked for) instead of answering nothing, and
//! `count_over_time` adds up the windows' counts instead of counting windows.

use std::str::FromStr;

use fleetscope_store::downsample::{Aggregate, RES_1H, RES_5M, resolution_name};
use promql_parser::parser::Expr;

/// The coarsest resolution queries may read (API parameter `max_source_resolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceResolution {
    /// At most this coarse, ms (0: raw samples only).
    Fixed(i64),
    /// At most a fifth of the query's step (raw for instant queries).
    Auto,
}

impl Default for SourceResolution {
    fn default() -> Self {
        Self::Fixed(0)
    }
}

impl FromStr for SourceResolution {
    type Err = String;

    /// `raw`, `auto`, or a duration (`0s`, `5m`, `1h`, ...).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" | "0" | "0s" => Ok(Self::Fixed(0)),
            "auto" => Ok(Self::Auto),
            _ => promql_parser::util::parse_duration(s)
                .map(|d| Self::Fixed(d.as_millis() as i64))
                .map_err(|_| {
                    format!("{s:?} is not a resolution (raw, 5m, 1h, auto or a duration)")
                }),
        }
    }
}

impl SourceResolution {
    /// The coarsest resolution for a query of `step` (ms; 0 for an instant query).
    pub(crate) fn max_for_step(self, step: i64) -> i64 {
        match self {
            Self::Fixed(ms) => ms.max(0),
            Self::Auto => step / 5,
        }
    }
}

/// The summary a selection feeding `func` reads (Thanos's choice, functions only).
fn aggregate_for(func: Option<&str>) -> Aggregate {
    match func {
        Some("min_over_time") => Aggregate::Min,
        Some("max_over_time") => Aggregate::Max,
        Some("sum_over_time") => Aggregate::Sum,
        Some("count_over_time") => Aggregate::Count,
        Some("rate" | "increase" | "irate" | "resets") => Aggregate::Counter,
        _ => Aggregate::Avg,
    }
}

/// What a selection reads: the resolution (0, or the coarsest level at most `max` that suits it),
/// the summary, and a warning when the range is too short for the resolution asked.
///
/// A range function reads a level only if its range holds two of its windows at least (a
/// `rate(x[5m])` at 1h would find one sample, or none); otherwise the next finer level.
pub(crate) fn for_selection(
    max: i64,
    explicit: bool,
    func: Option<&str>,
    range: Option<i64>,
) -> (i64, Aggregate, Option<String>) {
    if max <= 0 {
        return (0, Aggregate::default(), None);
    }
    let aggregate = aggregate_for(func);
    let allowed = [RES_1H, RES_5M].into_iter().filter(|&r| r <= max);
    let mut resolution = 0;
    for r in allowed {
        if range.is_none_or(|range| range >= 2 * r) {
            resolution = r;
            break;
        }
    }
    let warning = match (range, explicit) {
        (Some(range), true) if max >= RES_5M && resolution < max.min(RES_1H) => Some(format!(
            "the range {} of {} is shorter than two windows of the {} resolution asked for: read at {}",
            fmt_ms(range),
            func.unwrap_or("the selection"),
            resolution_name(if max >= RES_1H { RES_1H } else { RES_5M }),
            resolution_name(resolution),
        )),
        _ => None,
    };
    (resolution, aggregate, warning)
}

fn fmt_ms(ms: i64) -> String {
    promql_parser::util::display_duration(&std::time::Duration::from_millis(ms.max(0) as u64))
}

/// `expr` as it must run over downsampled data: `count_over_time` adds up the windows' counts.
pub(crate) fn rewrite(expr: &Expr) -> Expr {
    let mut expr = expr.clone();
    rewrite_in_place(&mut expr);
    expr
}

fn rewrite_in_place(expr: &mut Expr) {
    match expr {
        Expr::Call(c) => {
            if c.func.name == "count_over_time" {
                c.func.name = "sum_over_time";
            }
            c.args.args.iter_mut().for_each(|a| rewrite_in_place(a));
        }
        Expr::Paren(p) => rewrite_in_place(&mut p.expr),
        Expr::Unary(u) => rewrite_in_place(&mut u.expr),
        Expr::Binary(b) => {
            rewrite_in_place(&mut b.lhs);
            rewrite_in_place(&mut b.rhs);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions_parse_as_thanos_spells_them() {
        let p = |s: &str| s.parse::<SourceResolution>();
        assert_eq!(p("raw"), Ok(SourceResolution::Fixed(0)));
        assert_eq!(p("0s"), Ok(SourceResolution::Fixed(0)));
        assert_eq!(p("5m"), Ok(SourceResolution::Fixed(RES_5M)));
        assert_eq!(p("1h"), Ok(SourceResolution::Fixed(RES_1H)));
        assert_eq!(p("auto"), Ok(SourceResolution::Auto));
        assert!(p("fast").unwrap_err().contains("\"fast\""));
        assert_eq!(SourceResolution::Auto.max_for_step(3_600_000), 720_000);
        assert_eq!(SourceResolution::Auto.max_for_step(0), 0);
    }

    #[test]
    fn a_range_too_short_reads_finer_data_with_a_warning_when_asked() {
        let (r, a, w) = for_selection(RES_1H, true, Some("rate"), Some(RES_5M));
        assert_eq!((r, a), (0, Aggregate::Counter));
        assert!(w.unwrap().contains("5m of rate"));
        let (r, _, w) = for_selection(RES_1H, true, Some("rate"), Some(RES_1H));
        assert_eq!((r, w.is_some()), (RES_5M, true));
        let (r, _, w) = for_selection(RES_1H, true, Some("max_over_time"), Some(3 * RES_1H));
        assert_eq!((r, w), (RES_1H, None));
        // Auto chooses silently; instant selectors read the coarsest level allowed.
        assert_eq!(
            for_selection(RES_1H, false, Some("rate"), Some(RES_5M)).2,
            None
        );
        assert_eq!(for_selection(RES_1H, false, None, None).0, RES_1H);
        assert_eq!(for_selection(0, true, Some("rate"), Some(RES_1H)).0, 0);
    }

    #[test]
    fn count_over_time_sums_counts() {
        let e = promql_parser::parser::parse("-count_over_time(x[1h]) * 2").unwrap();
        assert_eq!(rewrite(&e).to_string(), "-sum_over_time(x[1h]) * 2");
    }
}
