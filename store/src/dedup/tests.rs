use super::*;

const S: i64 = 1000;
const M: i64 = 60 * S;

/// A target's counter: 10 per second, reset to 0 at each of `resets` (ms).
fn counter(t: i64, resets: &[i64]) -> f64 {
    let since = resets
        .iter()
        .filter(|&&r| r <= t)
        .max()
        .copied()
        .unwrap_or(0);
    (t - since) as f64 / 100.0
}

/// A replica scraping every 15 s from `phase`, with up to ±3 s of jitter, except in `gaps`.
fn replica(phase: i64, gaps: &[(i64, i64)], resets: &[i64], seed: u64) -> Vec<Sample> {
    let mut x = seed;
    (0..240)
        .filter_map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = ((x >> 33) % 6001) as i64 - 3000;
            let t = phase + i * 15 * S + jitter;
            let missing = gaps.iter().any(|&(a, b)| (a..b).contains(&t));
            (!missing).then(|| Sample {
                t,
                v: counter(t, resets),
            })
        })
        .collect()
}

/// Increase with counter resets, as PromQL counts it, and the resets.
fn increase(samples: &[Sample]) -> (f64, usize) {
    let mut inc = 0.0;
    let mut resets = 0;
    for w in samples.windows(2) {
        if w[1].v < w[0].v {
            resets += 1;
            inc += w[1].v;
        } else {
            inc += w[1].v - w[0].v;
        }
    }
    (inc, resets)
}

fn ha_pair() -> (Vec<Sample>, Vec<Sample>, Vec<i64>) {
    let resets = vec![20 * M + 500, 45 * M];
    // Replica 0 is down for 10 minutes; replica 1 scrapes 7 s later and restarts for 5 minutes.
    let a = replica(M, &[(30 * M, 40 * M)], &resets, 1);
    let b = replica(M + 7 * S, &[(50 * M, 55 * M)], &resets, 2);
    (a, b, resets)
}

#[test]
fn one_series_with_gaps_filled_never_denser_than_a_replica() {
    let (a, b, resets) = ha_pair();
    let merged = merge(&[a.clone(), b.clone()], true, i64::MAX);
    let spacing: Vec<i64> = merged.windows(2).map(|w| w[1].t - w[0].t).collect();
    // Never closer than half an interval (with jitter), never a hole longer than a replica's own.
    assert!(
        spacing.iter().all(|&d| d >= 15 * S / 2 - 6 * S),
        "{spacing:?}"
    );
    assert!(
        spacing.iter().all(|&d| d <= 2 * 15 * S + 6 * S),
        "{spacing:?}"
    );
    // The gap of replica 0 is filled from replica 1.
    assert!(
        merged
            .iter()
            .filter(|s| (31 * M..39 * M).contains(&s.t))
            .count()
            >= 30
    );
    // Real resets only, and the increase of the truth.
    let (inc, n) = increase(&merged);
    assert_eq!(n, resets.len(), "{merged:?}");
    let (first, last) = (merged[0].t, merged[merged.len() - 1].t);
    let truth = counter(20 * M + 500 - 1, &[]) - counter(first, &[])
        + counter(45 * M - 1, &resets)
        + counter(last, &resets);
    assert!((inc - truth).abs() / truth < 0.01, "{inc} vs {truth}");
}

#[test]
fn a_lagging_replica_does_not_look_like_a_reset() {
    // Replica 0 stops; replica 1, scraped earlier each round, is a little behind at the switch.
    let a: Vec<Sample> = (0..10)
        .map(|i| Sample {
            t: i * 15 * S,
            v: 100.0 + i as f64 * 10.0,
        })
        .collect();
    let b: Vec<Sample> = (0..20)
        .map(|i| Sample {
            t: i * 15 * S - 5 * S,
            v: 100.0 + i as f64 * 10.0 - 8.0,
        })
        .collect();
    let merged = merge(&[a.clone(), b.clone()], true, i64::MAX);
    let (inc, resets) = increase(&merged);
    assert_eq!(resets, 0, "{merged:?}");
    let (single, _) = increase(&b);
    assert!((inc - single).abs() <= 10.0, "{inc} vs {single}");
    // Read as a gauge, the values are the replicas' own.
    let raw = merge(&[a, b.clone()], false, i64::MAX);
    assert!(raw.iter().all(|s| b.contains(s) || s.t % (15 * S) == 0));
}

#[test]
fn it_stays_on_one_replica_and_keeps_stale_markers() {
    let stale = f64::from_bits(crate::STALE_NAN_BITS);
    let a = vec![
        Sample { t: 0, v: 1.0 },
        Sample { t: 15 * S, v: 2.0 },
        Sample {
            t: 30 * S,
            v: stale,
        },
    ];
    let b = vec![
        Sample { t: 2 * S, v: 10.0 },
        Sample { t: 17 * S, v: 20.0 },
        Sample { t: 32 * S, v: 30.0 },
        Sample { t: 47 * S, v: 40.0 },
    ];
    let merged = merge(&[a, b], true, i64::MAX);
    let times: Vec<i64> = merged.iter().map(|s| s.t / S).collect();
    assert_eq!(times, [0, 15, 30, 47]);
    assert_eq!(merged[2].v.to_bits(), crate::STALE_NAN_BITS);
}

#[test]
fn replica_labels_disappear_and_groups_stay_apart() {
    let series = |cluster: &str, replica: &str, v: f64| Series {
        labels: Labels::from_pairs([
            ("__name__", "up"),
            ("cluster", cluster),
            ("replica", replica),
        ]),
        samples: vec![Sample { t: 0, v }],
    };
    let out = dedup_series(
        vec![
            series("a", "0", 1.0),
            series("a", "1", 2.0),
            series("b", "1", 3.0),
        ],
        &["replica".to_string()],
        false,
        i64::MAX,
    );
    let labels: Vec<String> = out.iter().map(|s| format!("{:?}", s.labels)).collect();
    assert_eq!(out.len(), 2, "{labels:?}");
    assert!(out.iter().all(|s| s.labels.get("replica").is_none()));
    assert_eq!(out[1].samples, vec![Sample { t: 0, v: 3.0 }]);
}

#[test]
fn replicas_a_fraction_of_a_second_apart_never_interleave() {
    // Thanos #7623/#2890: samples 200 ms apart, the later replica a little behind in value.
    let a: Vec<Sample> = (0..100)
        .map(|i| Sample {
            t: i * 15 * S,
            v: i as f64 * 150.0,
        })
        .collect();
    let b: Vec<Sample> = (0..100)
        .map(|i| Sample {
            t: i * 15 * S + 200,
            v: i as f64 * 150.0 - 1.0,
        })
        .collect();
    for counter in [false, true] {
        assert_eq!(merge(&[a.clone(), b.clone()], counter, i64::MAX), a);
    }
}

#[tokio::test]
async fn parts_are_one_per_source_with_its_replicas_together() {
    use crate::{Catalog, MemSource, WriteOptions, objstore, write_block};
    let store = objstore::open("memory://").unwrap();
    for cluster in ["a", "b"] {
        for replica in ["0", "1"] {
            let series = vec![Series {
                labels: Labels::from_pairs([("__name__", "up")]),
                samples: vec![Sample { t: 0, v: 1.0 }, Sample { t: 15 * S, v: 1.0 }],
            }];
            let external = Labels::from_pairs([("cluster", cluster), ("replica", replica)]);
            write_block(&store, series, &external, &WriteOptions::default())
                .await
                .unwrap();
        }
    }
    let catalog = Arc::new(Catalog::new(store));
    catalog.refresh().await.unwrap();
    let dedup = Dedup::new(Arc::<Catalog>::clone(&catalog), vec!["replica".into()]);
    let parts = dedup.parts(&SelectHints::range(0, 15 * S)).unwrap();
    assert_eq!(parts.len(), 2);
    let hints = SelectHints::range(0, 15 * S);
    for part in &parts {
        let series = part.select(&[], &hints).await.unwrap();
        assert_eq!(series.len(), 1, "{series:?}");
        assert!(series[0].labels.get("replica").is_none());
    }
    // A part whose labels are unknown (a shipper) could hold any replica: one part for all.
    let mixed = Fanout(vec![catalog, Arc::new(MemSource::default())]);
    assert!(
        Dedup::new(Arc::new(mixed), vec!["replica".into()])
            .parts(&SelectHints::range(0, 15 * S))
            .is_none()
    );
}

/// Label names and values asked for on their own agree with the full label index, through a
/// catalog, a fanout with a source without an index of its own, and deduplication.
#[tokio::test]
async fn label_names_and_values_agree_with_the_label_index() {
    use crate::{Catalog, MemSeriesSet, MemSource, WriteOptions, objstore, write_block};
    let store = objstore::open("memory://").unwrap();
    for (cluster, replica, job) in [("a", "0", "x"), ("a", "1", "y"), ("b", "0", "x")] {
        let series = vec![Series {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
            samples: vec![Sample { t: 0, v: 1.0 }],
        }];
        let external = Labels::from_pairs([("cluster", cluster), ("replica", replica)]);
        write_block(&store, series, &external, &WriteOptions::default())
            .await
            .unwrap();
    }
    let catalog = Arc::new(Catalog::new(store));
    catalog.refresh().await.unwrap();
    let mut set = MemSeriesSet::new();
    set.append(
        &Labels::from_pairs([("__name__", "fresh"), ("pod", "p")]),
        0,
        1.0,
    );
    let mem = MemSource {
        set,
        ..MemSource::default()
    };
    let fanout: Arc<dyn Source> = Arc::new(Fanout(vec![catalog, Arc::new(mem)]));
    let dedup: Arc<dyn Source> = Arc::new(Dedup::new(Arc::clone(&fanout), vec!["replica".into()]));
    for source in [&fanout, &dedup] {
        let index = source.label_index(0, 10).await.unwrap();
        let names = source.label_names(0, 10).await.unwrap();
        assert_eq!(names, index.keys().cloned().collect());
        for name in ["__name__", "job", "cluster", "replica", "pod", "absent"] {
            let values = source.label_values(name, 0, 10).await.unwrap();
            assert_eq!(
                values,
                index.get(name).cloned().unwrap_or_default(),
                "{name}"
            );
        }
    }
    let names = dedup.label_names(0, 10).await.unwrap();
    assert!(
        !names.contains("replica") && names.contains("pod"),
        "{names:?}"
    );
    assert_eq!(fanout.label_values("job", 0, 10).await.unwrap().len(), 2);
}
