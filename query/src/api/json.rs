//! Prometheus API JSON, written by hand for exactness: float-second timestamps as Prometheus's
//! `MarshalTimestamp`, values as strings as `strconv.FormatFloat(v, 'f', -1, 64)`.

use std::fmt::Write;

use fleetscope_store::Labels;

use crate::value::{QueryValue, format_value};

/// `{"status":"success","data":<data>}` with optional warnings.
pub(crate) fn success(data: &str, warnings: &[String]) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str("{\"status\":\"success\",\"data\":");
    out.push_str(data);
    if !warnings.is_empty() {
        out.push_str(",\"warnings\":");
        out.push_str(&string_array(warnings.iter().map(String::as_str)));
    }
    out.push('}');
    out
}

/// `{"status":"error","errorType":...,"error":...}`.
pub(crate) fn error(error_type: &str, message: &str) -> String {
    format!(
        "{{\"status\":\"error\",\"errorType\":{},\"error\":{}}}",
        quote(error_type),
        quote(message)
    )
}

/// The `data` of a query result.
pub(crate) fn query_data(value: &QueryValue) -> String {
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "{{\"resultType\":\"{}\",\"result\":",
        value.type_name()
    );
    match value {
        QueryValue::Scalar { t, v } => point(&mut out, *t, &format_value(*v)),
        QueryValue::String { t, s } => point(&mut out, *t, s),
        QueryValue::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels(&mut out, &s.labels);
                out.push_str(",\"value\":");
                point(&mut out, s.t, &format_value(s.v));
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (t, v)) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    point(&mut out, *t, &format_value(*v));
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// A JSON array of label sets (the series endpoint).
pub(crate) fn label_sets(sets: &[Labels]) -> String {
    let mut out = String::from("[");
    for (i, l) in sets.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        labels(&mut out, l);
    }
    out.push(']');
    out
}

/// A JSON array of strings.
pub(crate) fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote(s));
    }
    out.push(']');
    out
}

fn labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&quote(&l.name));
        out.push(':');
        out.push_str(&quote(&l.value));
    }
    out.push('}');
}

fn point(out: &mut String, t: i64, v: &str) {
    out.push('[');
    timestamp(out, t);
    out.push(',');
    out.push_str(&quote(v));
    out.push(']');
}

/// Milliseconds as seconds with up to three decimals, like Prometheus's `MarshalTimestamp`.
fn timestamp(out: &mut String, t: i64) {
    if t < 0 {
        out.push('-');
    }
    let a = t.unsigned_abs();
    let _ = write!(out, "{}", a / 1000);
    let frac = a % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{InstantSample, RangeSeries};

    #[test]
    fn renders_like_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        let v = QueryValue::Vector(vec![InstantSample {
            labels: l.clone(),
            t: 1_435_781_451_781,
            v: 1.0,
        }]);
        assert_eq!(
            query_data(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1435781451.781,"1"]}]}"#
        );
        let m = QueryValue::Matrix(vec![RangeSeries {
            labels: l,
            samples: vec![(1000, f64::NAN), (-1500, 0.1)],
        }]);
        assert!(
            query_data(&m).ends_with(r#""values":[[1,"NaN"],[-1.500,"0.1"]]}]}"#),
            "{}",
            query_data(&m)
        );
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(
            query_data(&QueryValue::Scalar { t: 5, v: 2.5 }),
            r#"{"resultType":"scalar","result":[0.005,"2.5"]}"#
        );
    }
}
