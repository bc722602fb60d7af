//! `fleetscope-bench crash`: the shipper killed with SIGKILL many times under load, in every phase
//! of its work (WAL append and replay, cut, block write, upload, checkpoint), plus an object-store
//! outage of minutes; afterwards every acknowledged sample must be in the bucket exactly once.
//!
//! Real parts: a moto S3 server (frozen with SIGSTOP for the outage: connections hang, as behind
//! a dead network), the shipper binary, remote-write over HTTP. The writer sends 60 s of 20 series
//! per request through past windows (1h blocks), so cuts, uploads and checkpoints run all the
//! time; a failed request is sent again until it gets an answer, as Prometheus does.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;
use rand::Rng;

use crate::procs::{free_port, http};

/// Flags of `fleetscope-bench crash`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// SIGKILLs to deliver.
    #[arg(long, default_value_t = 100)]
    kills: usize,
    /// How long the object store is unreachable, in seconds (after a third of the kills).
    #[arg(long, default_value_t = 600)]
    outage_secs: u64,
    /// Working directory (default: a fresh temporary one).
    #[arg(long)]
    work: Option<PathBuf>,
    /// The fleetscope binary (default: next to this one).
    #[arg(long)]
    fleetscope: Option<PathBuf>,
}

/// Series per request and samples per series per request (one every 2 s: a minute).
const SERIES: usize = 20;
const PER_REQUEST: i64 = 30;

/// One sample: series index, timestamp.
type Key = (usize, i64);

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let fleetscope = match &args.fleetscope {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("fleetscope"),
    };
    let s3_port = free_port()?;
    let mut s3 = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("moto.log"))?)
        .spawn()
        .context("start moto_server (pip install 'moto[server]')")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while http("PUT", s3_port, "/fleet", &[], b"").map(|r| r.0).ok() != Some(200) {
        if Instant::now() > deadline {
            bail!("moto_server did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = free_port()?;
    let shipper = ShipperProc {
        program: fleetscope,
        work: work.clone(),
        s3_port,
        port,
    };

    // The writer: from 40 days ago, a minute of 20 series per request, each sent until answered.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let base = (now_ms - 40 * 86_400_000).div_euclid(3_600_000) * 3_600_000;
    let acked: Arc<Mutex<HashSet<Key>>> = Arc::default();
    let refused: Arc<Mutex<HashSet<Key>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (acked, refused, stop) = (Arc::clone(&acked), Arc::clone(&refused), Arc::clone(&stop));
        let requests = Arc::clone(&requests);
        std::thread::spawn(move || {
            let labels: Vec<Vec<u8>> = (0..SERIES)
                .map(|s| {
                    let s = s.to_string();
                    crate_labels(&[("__name__", "crash_test"), ("s", &s)])
                })
                .collect();
            let mut k = 0i64;
            while !stop.load(Ordering::Relaxed) && base + (k + 1) * 60_000 < now_ms {
                let samples: Vec<(i64, usize, f64)> = (0..SERIES)
                    .flat_map(|s| {
                        (0..PER_REQUEST).map(move |j| {
                            let t = base + k * 60_000 + j * 2_000;
                            (t, s, (t / 1000) as f64 + s as f64)
                        })
                    })
                    .collect();
                let body = fleetscope_sim::remote_write::encode(&samples, |i| &labels[i]);
                let keys = samples.iter().map(|&(t, s, _)| (s, t));
                loop {
                    let headers = [
                        ("Content-Type", "application/x-protobuf"),
                        ("Content-Encoding", "snappy"),
                        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                    ];
                    match http("POST", port, "/api/v1/write", &headers, &body).map(|r| r.0) {
                        Ok(s) if (200..300).contains(&s) => {
                            acked.lock().map(|mut a| a.extend(keys)).ok();
                            break;
                        }
                        Ok(s) if (400..500).contains(&s) && s != 429 => {
                            refused.lock().map(|mut r| r.extend(keys)).ok();
                            break;
                        }
                        _ if stop.load(Ordering::Relaxed) => return,
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                requests.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
        })
    };

    let mut rng = rand::rng();
    let mut phases: HashMap<&'static str, usize> = HashMap::new();
    let mut ready_ms: Vec<u128> = Vec::new();
    let mut child = shipper.start(0)?;
    let outage_at = args.kills / 3;
    let mut outage: Option<Instant> = None;
    let mut outage_took = Duration::ZERO;
    for kill in 0..args.kills {
        if kill == outage_at && args.outage_secs > 0 {
            signal(s3.id(), "-STOP")?;
            outage = Some(Instant::now());
            eprintln!("object store frozen for {} s", args.outage_secs);
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(300..4000)));
        if let Some(since) = outage
            && since.elapsed() >= Duration::from_secs(args.outage_secs)
        {
            signal(s3.id(), "-CONT")?;
            outage_took = since.elapsed();
            outage = None;
            eprintln!("object store back");
        }
        let phase = phase_of(&shipper.log(kill))?;
        child.kill()?;
        child.wait()?;
        *phases.entry(phase).or_default() += 1;
        let started = Instant::now();
        child = shipper.start(kill + 1)?;
        ready_ms.push(started.elapsed().as_millis());
        eprintln!(
            "kill {:>3}: during {phase:<10} ready again in {:>5} ms",
            kill + 1,
            started.elapsed().as_millis()
        );
    }
    if let Some(since) = outage {
        // Fewer kills than the outage lasts: wait it out under load.
        let left = Duration::from_secs(args.outage_secs).saturating_sub(since.elapsed());
        std::thread::sleep(left);
        signal(s3.id(), "-CONT")?;
        outage_took = since.elapsed();
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    // A clean stop cuts the head and uploads everything.
    signal(child.id(), "-TERM")?;
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "the shipper's final stop failed ({status}); see {}",
            shipper.log(args.kills).display()
        );
    }

    let store = s3_store(s3_port)?;
    let stored = tokio::runtime::Runtime::new()?.block_on(stored_samples(store))?;
    let _ = s3.kill();
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let refused = refused.lock().map(|r| r.clone()).unwrap_or_default();
    let mut count: HashMap<Key, usize> = HashMap::new();
    for k in &stored {
        *count.entry(*k).or_default() += 1;
    }
    let missing = acked.iter().filter(|k| !count.contains_key(k)).count();
    let duplicated = count.values().filter(|&&n| n > 1).count();
    let unknown = count
        .keys()
        .filter(|k| !acked.contains(k) && !refused.contains(k))
        .count();
    ready_ms.sort_unstable();
    let pct = |p: f64| {
        ready_ms
            .get(((ready_ms.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let mut by_phase: Vec<_> = phases.into_iter().collect();
    by_phase.sort();
    println!("kills by phase:         {by_phase:?}");
    println!("object store outage:    {:.0} s", outage_took.as_secs_f64());
    println!(
        "requests answered:      {}",
        requests.load(Ordering::Relaxed)
    );
    println!("samples acknowledged:   {}", acked.len());
    println!("samples refused (4xx):  {}", refused.len());
    println!(
        "samples in the bucket:  {} ({} distinct)",
        stored.len(),
        count.len()
    );
    println!("acknowledged, missing:  {missing}");
    println!("stored more than once:  {duplicated}");
    println!("stored, never sent:     {unknown}");
    println!(
        "ready after restart:    median {} ms, p90 {} ms, max {} ms",
        pct(0.5),
        pct(0.9),
        pct(1.0)
    );
    if missing > 0 || duplicated > 0 || unknown > 0 {
        bail!(
            "acknowledged samples lost or duplicated (logs in {})",
            work.display()
        );
    }
    Ok(())
}

fn crate_labels(pairs: &[(&str, &str)]) -> Vec<u8> {
    fleetscope_sim::remote_write::encode_labels(pairs.iter().copied())
}

/// The shipper binary, restarted on the same port and data folder.
struct ShipperProc {
    program: PathBuf,
    work: PathBuf,
    s3_port: u16,
    port: u16,
}

impl ShipperProc {
    fn log(&self, run: usize) -> PathBuf {
        self.work.join(format!("shipper-{run:03}.log"))
    }

    fn start(&self, run: usize) -> anyhow::Result<Child> {
        let child = Command::new(&self.program)
            .args([
                "shipper",
                "--objstore",
                "s3://fleet/blocks",
                "--cluster",
                "crash",
                "--block-duration",
                "1h",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data-dir",
                &self.work.join("data").display().to_string(),
                "--log.level",
                "info,fleetscope_ingest=debug",
            ])
            .envs(s3_env(self.s3_port))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log(run))?)
            .spawn()
            .context("start the shipper")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while http("GET", self.port, "/-/ready", &[], b"")
            .map(|r| r.0)
            .ok()
            != Some(200)
        {
            if Instant::now() > deadline {
                bail!(
                    "the shipper did not become ready: {}",
                    self.log(run).display()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(child)
    }
}

fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
    ]
}

fn s3_store(port: u16) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let s3 = AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_bucket_name("fleet")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_region("us-east-1")
        .build()?;
    Ok(Arc::new(PrefixStore::new(s3, "blocks")))
}

/// What the shipper was doing when killed, from the last phase its log names.
fn phase_of(log: &Path) -> anyhow::Result<&'static str> {
    let text = std::fs::read_to_string(log)?;
    let mut phase = if text.contains("wal replayed") {
        "append"
    } else {
        "replay"
    };
    for line in text.lines() {
        phase = if line.contains("cutting block") {
            "cut+write"
        } else if line.contains("block staged") || line.contains("block upload failed") {
            "upload"
        } else if line.contains("block uploaded") {
            "checkpoint"
        } else if line.contains("wal checkpointed") {
            "append"
        } else {
            phase
        };
    }
    Ok(phase)
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?
        .success();
    if !ok {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

/// Every sample of `crash_test` in the bucket, once per block it is in.
async fn stored_samples(store: Arc<dyn ObjectStore>) -> anyhow::Result<Vec<Key>> {
    let mut out = Vec::new();
    for meta in fleetscope_store::BlockMeta::list(&store).await? {
        let reader = fleetscope_store::BlockReader::new(Arc::clone(&store), meta);
        for s in reader.select(&[], i64::MIN, i64::MAX).await?.series {
            let Some(i) = s.labels.get("s").and_then(|v| v.parse::<usize>().ok()) else {
                continue;
            };
            out.extend(s.samples.iter().map(|x| (i, x.t)));
        }
    }
    Ok(out)
}
