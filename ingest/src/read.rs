//! Remote-read served by the shipper (`POST /api/v1/read`): what it holds that queriers cannot list
//! yet — the head, staged blocks, blocks uploaded within the local retention — in Prometheus's
//! remote-read protocol, so a fleetscope querier (`--remote-read`) or a Prometheus (`remote_read:`)
//! can read it.
//!
//! Responses are `SAMPLES` (one snappy-compressed `ReadResponse`); the hint `func = "series"` asks
//! for labels only, as Prometheus's own server treats it.

use fleetscope_proto::read::{MatchType, QueryResult, ReadRequest, ReadResponse, ResponseType};
use fleetscope_proto::v1;
use fleetscope_store::{MatchOp, Matcher, SelectHints, Series, Source};
use prost::Message;

use crate::shipper::Shipper;

/// Why a read was refused; the receiver maps each to its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Malformed request, bad matcher, unsupported response type or over the sample limit (400).
    #[error("{0}")]
    BadRequest(String),
    /// The shipper could not read its own data (500).
    #[error("{0}")]
    Internal(String),
}

/// Answers a decompressed remote-read request with an uncompressed `ReadResponse`, refusing to
/// return more than `max_samples` samples in all.
pub async fn answer(
    shipper: &Shipper,
    raw: &[u8],
    max_samples: usize,
) -> Result<Vec<u8>, ReadError> {
    let request = ReadRequest::decode(raw)
        .map_err(|e| ReadError::BadRequest(format!("decode ReadRequest: {e}")))?;
    let samples_ok = request.accepted_response_types.is_empty()
        || request
            .accepted_response_types
            .contains(&(ResponseType::Samples as i32));
    if !samples_ok {
        return Err(ReadError::BadRequest(format!(
            "server does not support any of the requested response types: {:?}; supported: [SAMPLES]",
            request.accepted_response_types
        )));
    }
    let mut results = Vec::with_capacity(request.queries.len());
    let mut total = 0usize;
    for (i, query) in request.queries.iter().enumerate() {
        let matchers = query
            .matchers
            .iter()
            .map(|m| {
                let op = match MatchType::try_from(m.r#type) {
                    Ok(MatchType::Eq) => MatchOp::Equal,
                    Ok(MatchType::Neq) => MatchOp::NotEqual,
                    Ok(MatchType::Re) => MatchOp::Regex,
                    Ok(MatchType::Nre) => MatchOp::NotRegex,
                    Err(_) => {
                        return Err(ReadError::BadRequest(format!(
                            "query {i}: unknown matcher type {} on {:?}",
                            m.r#type, m.name
                        )));
                    }
                };
                Matcher::new(op, m.name.clone(), m.value.clone())
                    .map_err(|e| ReadError::BadRequest(format!("query {i}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (min_t, max_t) = (query.start_timestamp_ms, query.end_timestamp_ms);
        let labels_only = query.hints.as_ref().is_some_and(|h| h.func == "series");
        let hints = match &query.hints {
            Some(h) => SelectHints {
                start: min_t,
                end: max_t,
                step: h.step_ms,
                range: h.range_ms,
                func: (!h.func.is_empty()).then(|| h.func.clone()),
                grouping: h.grouping.clone(),
                by: h.by,
                ..SelectHints::default()
            },
            None => SelectHints::range(min_t, max_t),
        };
        let series: Vec<Series> = if labels_only {
            shipper.series(&matchers, min_t, max_t).await.map(|all| {
                all.into_iter()
                    .map(|labels| Series {
                        labels,
                        samples: Vec::new(),
                    })
                    .collect()
            })
        } else {
            shipper.select(&matchers, &hints).await
        }
        .map_err(|e| ReadError::Internal(fleetscope_store::error::display_chain(&e)))?;
        total += series.iter().map(|s| s.samples.len()).sum::<usize>();
        if total > max_samples {
            return Err(ReadError::BadRequest(format!(
                "exceeded sample limit ({max_samples})"
            )));
        }
        results.push(QueryResult {
            timeseries: series.into_iter().map(to_proto).collect(),
        });
    }
    Ok(ReadResponse { results }.encode_to_vec())
}

fn to_proto(s: Series) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: s
            .labels
            .iter()
            .map(|l| v1::Label {
                name: l.name.clone(),
                value: l.value.clone(),
            })
            .collect(),
        samples: s
            .samples
            .iter()
            .map(|x| v1::Sample {
                value: x.v,
                timestamp: x.t,
            })
            .collect(),
        ..Default::default()
    }
}
