//! Downsampling end to end: 21 days of a counter (reset once exactly at a block boundary, once
//! inside a window) and a gauge at 15 s, written as daily raw blocks and compacted after each day.
//! 5m blocks appear only once a finished 48h window spans 40h, the 1h block once its 14 days hold
//! 10 days of 5m data; each window's count, sum, min and max equal the raw answers exactly;
//! `increase(c[1d])` read at 5m and 1h stays within 0.5% of raw; the querier fills the days not
//! yet downsampled from raw blocks; a range too short for the resolution asked is a warning.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleetscope_query::api::{ApiOptions, ApiState, router};
use fleetscope_query::{Catalog, Engine};
use fleetscope_store::compact::{CompactOptions, compact};
use fleetscope_store::downsample::{Aggregate, RES_1H, RES_5M};
use fleetscope_store::{
    BlockMeta, BlockReader, Labels, Matcher, Sample, Series, WriteOptions, objstore, write_block,
};
use tower::ServiceExt;

const S: i64 = 1000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const D: i64 = 24 * H;
/// A 14-day-aligned origin (2046), so every 48h and 14d window lines up with the days.
const T0: i64 = 2000 * 14 * D;
/// The data: from 10h into the first day (the first 48h window spans 38h: never downsampled) to
/// the end of day 21.
const START: i64 = T0 + 10 * H;
const DAYS: i64 = 21;
/// Counter resets: exactly at the start of day 4 (a raw block's first sample, and a 5m block's),
/// and inside a 5m window of day 7.
const RESETS: [i64; 2] = [T0 + 4 * D, T0 + 7 * D + 3 * H + 7 * M + 30 * S];

fn labels(name: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", "api")])
}

/// Both series over `[from, to)`: a counter growing by 0 to 19.9 per scrape, a gauge walking in
/// tenths.
fn samples(from: i64, to: i64) -> (Vec<Sample>, Vec<Sample>) {
    let (mut counter, mut gauge) = (Vec::new(), Vec::new());
    let (mut c, mut g, mut x) = (1000.0f64, 50.0f64, 7u64);
    let mut t = START;
    while t < to {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if RESETS.contains(&t) {
            c = 0.0;
        }
        c += ((x >> 33) % 200) as f64 / 10.0;
        g = ((g * 10.0).round() + ((x >> 20) % 21) as f64 - 10.0) / 10.0;
        if t >= from {
            counter.push(Sample { t, v: c });
            gauge.push(Sample { t, v: g });
        }
        t += 15 * S;
    }
    (counter, gauge)
}

fn options(now_ms: i64) -> CompactOptions {
    CompactOptions {
        range_ms: D,
        retention_ms: [None; 3],
        downsample: true,
        delete_delay_ms: H,
        partial_delay_ms: H,
        now_ms,
        producer: "test".into(),
        replica_labels: vec![],
    }
}

fn count(metas: &[BlockMeta], resolution: i64) -> usize {
    metas.iter().filter(|m| m.resolution == resolution).count()
}

async fn call(app: &axum::Router, params: &[(&str, &str)]) -> serde_json::Value {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let req = Request::get(format!("/api/v1/query_range?{form}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 26)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::OK, "{json}");
    json
}

/// The one series of a range query: `(t ms, value)`.
async fn range(
    app: &axum::Router,
    query: &str,
    (start, end, step): (i64, i64, i64),
    resolution: &str,
) -> Vec<(i64, f64)> {
    let (start, end, step) = (
        format!("{}", start as f64 / 1000.0),
        format!("{}", end as f64 / 1000.0),
        format!("{}s", step / 1000),
    );
    let json = call(
        app,
        &[
            ("query", query),
            ("start", &start),
            ("end", &end),
            ("step", &step),
            ("max_source_resolution", resolution),
        ],
    )
    .await;
    let result = json["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{query} at {resolution}: {json}");
    result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_one_days_downsampled_answer_as_the_raw_data() {
    let store = objstore::open("memory://").unwrap();
    let external = Labels::from_pairs([("cluster", "a")]);
    // One raw block per day, a compaction pass after each: the levels appear at their thresholds.
    for day in 0..DAYS {
        let (counter, gauge) = samples(T0 + day * D, T0 + (day + 1) * D);
        let series = vec![
            Series {
                labels: labels("requests_total"),
                samples: counter,
            },
            Series {
                labels: labels("temperature"),
                samples: gauge,
            },
        ];
        write_block(&store, series, &external, &WriteOptions::default())
            .await
            .unwrap();
        compact(&store, &options(T0 + (day + 1) * D)).await.unwrap();
        let metas = BlockMeta::list(&store).await.unwrap();
        // The 48h window [2k, 2k+2) days is downsampled once a block starts at its end; the
        // first (38h of data) never is.
        let want_5m = ((day - 2) / 2).max(0) as usize;
        assert_eq!(count(&metas, RES_5M), want_5m, "5m blocks after day {day}");
        // The first 14 days (12 of them in 5m blocks) once a 5m block starts at day 14.
        assert_eq!(
            count(&metas, RES_1H),
            usize::from(day >= 16),
            "1h after {day}"
        );
        assert_eq!(count(&metas, 0), day as usize + 1, "raw blocks stay");
    }
    let metas = BlockMeta::list(&store).await.unwrap();
    let raw_bytes: u64 = metas
        .iter()
        .filter(|m| m.resolution == 0)
        .map(|m| m.stats.bytes)
        .sum();
    for res in [RES_5M, RES_1H] {
        let m = metas.iter().find(|m| m.resolution == res).unwrap();
        assert_eq!(m.version, 2);
        assert_eq!(m.external_labels["cluster"], "a");
        let bytes: u64 = metas
            .iter()
            .filter(|m| m.resolution == res)
            .map(|m| m.stats.bytes)
            .sum();
        println!("resolution {res}: {bytes} bytes, raw {raw_bytes}");
    }

    let catalog = Arc::new(Catalog::new(Arc::clone(&store)));
    catalog.refresh().await.unwrap();
    let app = router(Arc::new(ApiState::new(
        Engine::default(),
        catalog,
        ApiOptions::default(),
    )));

    // Every window's summaries equal the raw answers at the window's end, exactly.
    for (res, window) in [(RES_5M, "5m"), (RES_1H, "1h")] {
        let blocks: Vec<&BlockMeta> = metas.iter().filter(|m| m.resolution == res).collect();
        for name in ["requests_total", "temperature"] {
            for (view, func) in [
                (Aggregate::Count, "count_over_time"),
                (Aggregate::Sum, "sum_over_time"),
                (Aggregate::Min, "min_over_time"),
                (Aggregate::Max, "max_over_time"),
            ] {
                let mut checked = 0;
                for m in &blocks {
                    let reader = BlockReader::new(Arc::clone(&store), (*m).clone());
                    let matcher = [Matcher::equal("__name__", name)];
                    let summaries = reader
                        .select_view(&matcher, i64::MIN, i64::MAX, view)
                        .await
                        .unwrap()
                        .series;
                    let summaries = &summaries[0].samples;
                    // Window ends, each 1 ms before the next window: `(end - w, end]` is the window.
                    let first = summaries[0].t.div_euclid(res) * res + res - 1;
                    let last = summaries.last().unwrap().t.div_euclid(res) * res + res - 1;
                    let query = format!("{func}({name}[{window}])");
                    let raw = range(&app, &query, (first, last, res), "raw").await;
                    assert_eq!(raw.len(), summaries.len(), "{query}");
                    for (s, (t, v)) in summaries.iter().zip(&raw) {
                        assert_eq!(s.t.div_euclid(res), t.div_euclid(res), "{query}");
                        assert!(s.v == *v, "{query} at {t}: summary {} raw {v}", s.v);
                        checked += 1;
                    }
                }
                assert!(checked > 0);
            }
        }
    }

    // increase over a day, read at each resolution, one step an hour from day 2 to the end (the
    // last day only in raw blocks: filled from them).
    let steps = (T0 + 2 * D, T0 + DAYS * D, H);
    let raw = range(&app, "increase(requests_total[1d])", steps, "raw").await;
    assert_eq!(raw.len() as i64, (DAYS - 2) * 24 + 1);
    for res in ["5m", "1h"] {
        let down = range(&app, "increase(requests_total[1d])", steps, res).await;
        assert_eq!(down.len(), raw.len(), "{res}");
        let worst = raw
            .iter()
            .zip(&down)
            .map(|((t, r), (t2, d))| {
                assert_eq!(t, t2);
                (d - r).abs() / r
            })
            .fold(0.0, f64::max);
        println!(
            "increase(requests_total[1d]) at {res}: worst {:.4}%",
            worst * 100.0
        );
        assert!(worst <= 0.005, "{res}: {worst}");
        // Across the reset at a block boundary: the day holding it answers too.
        let at = |t: i64| down.iter().find(|p| p.0 == t).unwrap().1;
        let r = raw.iter().find(|p| p.0 == T0 + 4 * D + 12 * H).unwrap().1;
        assert!((at(T0 + 4 * D + 12 * H) - r).abs() / r <= 0.005);
    }
    // count_over_time adds up the windows' counts: a day of 15 s scrapes, where the day lies in
    // downsampled blocks (where a day straddles raw and downsampled blocks, the sample at the
    // boundary can count on both sides: the summaries are stamped at their windows' last sample).
    let days = (T0 + 3 * D, T0 + 20 * D - H, H);
    let counts = range(&app, "count_over_time(temperature[1d])", days, "1h").await;
    assert_eq!(counts.len(), 17 * 24);
    assert!(counts.iter().all(|(_, v)| *v == 5760.0), "{counts:?}");

    // One selector read twice for two summaries (sums, counts): two selections, not one shared.
    let q = "sum_over_time(temperature[1d]) / count_over_time(temperature[1d])";
    let avg = range(&app, q, days, "1h").await;
    let raw_avg = range(&app, "avg_over_time(temperature[1d])", days, "raw").await;
    for ((_, a), (_, r)) in avg.iter().zip(&raw_avg) {
        // The windows end a sample earlier than the raw range: the averages differ by a sample.
        assert!((a - r).abs() <= 0.05 + 1e-3 * r.abs(), "{a} vs {r}");
    }

    // The plan says what each scan reads.
    let json = call(
        &app,
        &[
            ("query", "increase(requests_total[1d])"),
            ("start", &(steps.0 / 1000).to_string()),
            ("end", &(steps.1 / 1000).to_string()),
            ("step", "3600s"),
            ("max_source_resolution", "auto"),
            ("explain", "true"),
        ],
    )
    .await;
    let plan = json["data"]["plan"].as_str().unwrap();
    assert!(plan.contains("resolution<=5m, aggregate=counter"), "{plan}");

    // A range too short for the resolution asked reads finer data, and says so.
    let json = call(
        &app,
        &[
            ("query", "rate(requests_total[5m])"),
            ("start", &((T0 + 3 * D) / 1000).to_string()),
            ("end", &((T0 + 4 * D) / 1000).to_string()),
            ("step", "3600s"),
            ("max_source_resolution", "1h"),
        ],
    )
    .await;
    assert_eq!(
        json["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        25
    );
    let warning = json["warnings"][0].as_str().unwrap();
    assert!(warning.contains("shorter than two windows"), "{warning}");
    // A bad resolution is a 400 naming the parameter.
    let req = Request::get("/api/v1/query?query=up&max_source_resolution=fast")
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
