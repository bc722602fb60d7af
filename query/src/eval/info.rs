//! `info(v, [data-label-selector])` (experimental in Prometheus): each series of `v` gains the
//! data labels of the info series (`target_info` unless the selector names others) that share its
//! identifying labels (`instance`, `job`), step by step, as Prometheus's `promql/info.go` does.

use std::collections::{BTreeSet, HashMap};

use fleetscope_store::labels::METRIC_NAME;
use fleetscope_store::{Labels, MatchOp, Matcher};
use promql_parser::parser::{Expr, VectorSelector};

use super::{Evaluator, selector_matchers};
use crate::error::{Result, bad, exec};
use crate::value::{Grid, StepSeries, Value};

/// The info metric read when the selector names none.
const TARGET_INFO: &str = "target_info";

/// Labels joining a series to its info series.
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// An info series' identity for the join: its name and identifying labels.
type Signature = (String, Vec<(String, String)>);

fn signature(name: &str, labels: &Labels) -> Signature {
    let ids = IDENTIFYING
        .iter()
        .filter_map(|&l| labels.get(l).map(|v| (l.to_string(), v.to_string())))
        .collect();
    (name.to_string(), ids)
}

/// The name matchers that pick info series: as given when one is positive, `.+_info` added to
/// only negative ones, `target_info` when there are none.
fn effective_name_matchers(mut given: Vec<Matcher>) -> Result<Vec<Matcher>> {
    if given
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex))
    {
        return Ok(given);
    }
    if given.is_empty() {
        return Ok(vec![Matcher::equal(METRIC_NAME, TARGET_INFO)]);
    }
    given.insert(
        0,
        Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info").map_err(|e| bad(e.to_string()))?,
    );
    Ok(given)
}

impl Evaluator<'_> {
    pub(super) async fn info(&self, args: &[&Expr], grid: Grid) -> Result<Value> {
        let Some(&first) = args.first() else {
            return Err(bad("info: missing argument 0"));
        };
        let base = self.vector_arg(first, grid).await?;
        let selector = match args.get(1).map(|a| super::unparen(a)) {
            None => Vec::new(),
            Some(Expr::VectorSelector(vs)) => {
                let mut groups = selector_matchers(vs)?;
                if groups.len() != 1 {
                    return Err(bad("info(): the data label selector cannot use \"or\""));
                }
                groups.remove(0)
            }
            Some(_) => {
                return Err(bad(
                    "info(): the second argument must be a label selector such as {data=~\".+\"}",
                ));
            }
        };
        let (names, data): (Vec<Matcher>, Vec<Matcher>) =
            selector.into_iter().partition(|m| m.name == METRIC_NAME);
        let names = effective_name_matchers(names)?;
        // Info series themselves are not enriched.
        let ignored: Vec<bool> = base
            .iter()
            .map(|s| {
                let name = s.labels.get(METRIC_NAME).unwrap_or("");
                names.iter().all(|m| m.matches(name))
            })
            .collect();
        let info = self
            .info_series(first, &base, &ignored, &names, &data, grid)
            .await?;
        let info_names: BTreeSet<String> = info
            .iter()
            .map(|s| s.labels.get(METRIC_NAME).unwrap_or("").to_string())
            .collect();
        let info_sigs: Vec<Signature> = info
            .iter()
            .map(|s| signature(s.labels.get(METRIC_NAME).unwrap_or(""), &s.labels))
            .collect();
        let must_match = data.iter().any(|m| !m.matches(""));
        // Each base series' identity under each info metric, computed once for every step.
        let base_sigs: Vec<Vec<Signature>> = base
            .iter()
            .map(|s| info_names.iter().map(|n| signature(n, &s.labels)).collect())
            .collect();

        let mut out: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
        let mut order: Vec<Labels> = Vec::new();
        for i in 0..grid.len() {
            // The newest sample of each info series identity at this step (values are the
            // samples' timestamps).
            let mut latest: HashMap<&Signature, (usize, f64)> = HashMap::new();
            for (j, s) in info.iter().enumerate() {
                let Some(t) = s.vals[i] else { continue };
                match latest.get(&info_sigs[j]) {
                    Some(&(_, held)) if held > t => {}
                    Some(&(k, held)) if held == t => {
                        return Err(exec(format!(
                            "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                            info[k].labels, held, s.labels, t
                        )));
                    }
                    _ => {
                        latest.insert(&info_sigs[j], (j, t));
                    }
                }
            }
            let mut seen_out: HashMap<Labels, ()> = HashMap::new();
            for (k, s) in base.iter().enumerate() {
                let Some(v) = s.vals[i] else { continue };
                let labels = if ignored[k] {
                    s.labels.clone()
                } else {
                    let mut added: Vec<(String, String)> = Vec::new();
                    let mut matched = false;
                    for sig in &base_sigs[k] {
                        let Some(&(j, _)) = latest.get(sig) else {
                            continue;
                        };
                        matched = true;
                        for l in info[j].labels.iter() {
                            if l.name == METRIC_NAME
                                || (!data.is_empty() && !data.iter().any(|m| m.name == l.name))
                            {
                                continue;
                            }
                            if added.iter().any(|(n, v)| *n == l.name && *v != l.value) {
                                return Err(exec(format!("conflicting label: {}", l.name)));
                            }
                            if s.labels.get(&l.name).is_none()
                                && !added.iter().any(|(n, _)| *n == l.name)
                            {
                                added.push((l.name.clone(), l.value.clone()));
                            }
                        }
                    }
                    if !matched && must_match {
                        continue;
                    }
                    added
                        .iter()
                        .fold(s.labels.clone(), |labels, (n, v)| labels.with(n, v))
                };
                if seen_out.insert(labels.clone(), ()).is_some() {
                    return Err(exec("vector cannot contain metrics with the same labelset"));
                }
                let vals = out.entry(labels.clone()).or_insert_with(|| {
                    order.push(labels);
                    vec![None; grid.len()]
                });
                vals[i] = Some(v);
            }
        }
        Ok(Value::Vector(
            order
                .into_iter()
                .map(|labels| {
                    let vals = out.remove(&labels).unwrap_or_default();
                    StepSeries { labels, vals }
                })
                .collect(),
        ))
    }

    /// The info series that may join `base` (by the identifying label values its series carry),
    /// as the timestamps of their samples at each step (lookback and staleness as any selector).
    async fn info_series(
        &self,
        first: &Expr,
        base: &[StepSeries],
        ignored: &[bool],
        names: &[Matcher],
        data: &[Matcher],
        grid: Grid,
    ) -> Result<Vec<StepSeries>> {
        let mut values: Vec<(&str, BTreeSet<&str>)> =
            IDENTIFYING.iter().map(|&l| (l, BTreeSet::new())).collect();
        for (s, _) in base.iter().zip(ignored).filter(|(_, ignored)| !**ignored) {
            for (label, vals) in &mut values {
                if let Some(v) = s.labels.get(label).filter(|v| !v.is_empty()) {
                    vals.insert(v);
                }
            }
        }
        if values.iter().all(|(_, v)| v.is_empty()) {
            return Ok(Vec::new());
        }
        let quote = |s: &str| format!("{s:?}");
        let mut matchers: Vec<String> = values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(label, vals)| {
                let alternatives: Vec<String> = vals.iter().map(|v| regex::escape(v)).collect();
                format!("{label}=~{}", quote(&alternatives.join("|")))
            })
            .collect();
        for m in data.iter().chain(names) {
            let op = match m.op {
                MatchOp::Equal => "=",
                MatchOp::NotEqual => "!=",
                MatchOp::Regex => "=~",
                MatchOp::NotRegex => "!~",
            };
            matchers.push(format!("{}{op}{}", m.name, quote(&m.value)));
        }
        let text = format!("{{{}}}", matchers.join(", "));
        let Ok(Expr::VectorSelector(mut vs)) = promql_parser::parser::parse(&text) else {
            return Err(exec(format!(
                "info(): cannot select info series with {text}"
            )));
        };
        // The info series are read as of the time the base series are: the `@` and `offset` of
        // the first argument's selector.
        if let Some(of) = first_selector(first) {
            vs.at = of.at.clone();
            vs.offset = of.offset.clone();
        }
        self.select_instant(&vs, grid, |t, _| t as f64, false).await
    }
}

/// The first vector selector of `expr` (inside a range selector too).
fn first_selector(expr: &Expr) -> Option<&VectorSelector> {
    match expr {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        Expr::Paren(p) => first_selector(&p.expr),
        Expr::Unary(u) => first_selector(&u.expr),
        Expr::Binary(b) => first_selector(&b.lhs).or_else(|| first_selector(&b.rhs)),
        Expr::Aggregate(a) => first_selector(&a.expr),
        Expr::Call(c) => c.args.args.iter().find_map(|a| first_selector(a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_metric_names_default_to_target_info_and_negatives_get_info_suffix() {
        let names = |given: Vec<Matcher>| {
            effective_name_matchers(given)
                .unwrap()
                .iter()
                .map(|m| format!("{}{:?}{}", m.name, m.op, m.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(vec![]), ["__name__Equaltarget_info"]);
        let not_target = Matcher::new(MatchOp::NotEqual, METRIC_NAME, "target_info").unwrap();
        assert_eq!(
            names(vec![not_target]),
            ["__name__Regex.+_info", "__name__NotEqualtarget_info"]
        );
        assert_eq!(
            names(vec![Matcher::equal(METRIC_NAME, "build_info")]),
            ["__name__Equalbuild_info"]
        );
    }
}
