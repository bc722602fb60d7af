//! `fleetscope top`'s view of the fleet: per cluster, CPU cores in use and their share of what the
//! nodes offer, memory, GPU utilisation and memory, GPUs free for jobs, and the top namespaces.
//! [`Snapshot::fetch`] asks a [`Backend`] (a querier over HTTP, or the object store through the
//! engine); [`View`] draws a snapshot with ratatui and handles keys; [`plain_table`] is the output
//! when there is no terminal.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use fleetscope_query::capacity::{Job, capacity};
use fleetscope_query::{Engine, QueryValue, Source};
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table as TuiTable, TableState};

use crate::chart::{Unit, format_value};

/// Namespaces shown per cluster.
pub const TOP_NAMESPACES: usize = 5;

/// The PromQL behind each column, summed by cluster.
const CPU_USED: &str = "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))";
const CPU_TOTAL: &str = r#"sum by (cluster) (kube_node_status_allocatable{resource="cpu"}) or count by (cluster) (node_cpu_seconds_total{mode="idle"})"#;
const MEMORY_USED: &str = "sum by (cluster) (container_memory_working_set_bytes)";
const MEMORY_TOTAL: &str = r#"sum by (cluster) (kube_node_status_allocatable{resource="memory"})"#;
const GPU_UTIL: &str = "avg by (cluster) (DCGM_FI_DEV_GPU_UTIL)";
const GPU_MEMORY_USED: &str = "sum by (cluster) (DCGM_FI_DEV_FB_USED)";
const GPU_MEMORY_TOTAL: &str = "sum by (cluster) (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)";
const TOP_NS: &str = "topk by (cluster) (5, sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total[5m])))";

/// One cluster's figures; `None` where the fleet has no such metric.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterRow {
    /// The `cluster` label.
    pub cluster: String,
    /// CPU cores in use.
    pub cpu_cores: Option<f64>,
    /// CPU cores the nodes offer.
    pub cpu_total: Option<f64>,
    /// Containers' working-set memory, bytes.
    pub memory_bytes: Option<f64>,
    /// Memory the nodes offer, bytes.
    pub memory_total: Option<f64>,
    /// Mean GPU utilisation, percent.
    pub gpu_util: Option<f64>,
    /// GPU memory used, MiB.
    pub gpu_memory_used: Option<f64>,
    /// GPU memory in all, MiB.
    pub gpu_memory_total: Option<f64>,
    /// GPUs free for new pods (schedulable nodes only), and the most on one node.
    pub gpus_free: Option<(f64, f64)>,
    /// The busiest namespaces by CPU cores, largest first.
    pub top_namespaces: Vec<(String, f64)>,
}

impl ClusterRow {
    fn cpu_share(&self) -> Option<f64> {
        Some(self.cpu_cores? / self.cpu_total.filter(|t| *t > 0.0)?)
    }
    fn memory_share(&self) -> Option<f64> {
        Some(self.memory_bytes? / self.memory_total.filter(|t| *t > 0.0)?)
    }
}

/// The fleet at one time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// When (ms).
    pub time_ms: i64,
    /// By cluster name.
    pub clusters: Vec<ClusterRow>,
}

/// Where the figures come from.
pub enum Backend {
    /// A querier's HTTP API (`/api/v1/query`, `/api/v1/fleet/capacity`).
    Querier {
        /// Its base URL.
        url: String,
        /// The HTTP client.
        client: reqwest::Client,
    },
    /// The engine over a source (the object store's blocks, shippers).
    Local {
        /// The source.
        source: Arc<dyn Source>,
        /// The engine.
        engine: Engine,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Querier { url, .. } => write!(f, "Querier({url})"),
            Backend::Local { .. } => write!(f, "Local"),
        }
    }
}

impl Backend {
    /// An instant query's result as `(cluster, other label's value, value)`.
    async fn instant(
        &self,
        query: &str,
        time: i64,
        other: &str,
    ) -> anyhow::Result<Vec<(String, String, f64)>> {
        match self {
            Backend::Local { source, engine } => {
                let QueryValue::Vector(v) = engine.instant(source, query, time).await? else {
                    anyhow::bail!("{query}: not an instant vector");
                };
                Ok(v.into_iter()
                    .map(|s| {
                        let get = |n: &str| s.labels.get(n).unwrap_or("").to_string();
                        (get("cluster"), get(other), s.v)
                    })
                    .collect())
            }
            Backend::Querier { .. } => {
                let body = self.get("/api/v1/query", &[("query", query)], time).await?;
                let result = body["data"]["result"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                Ok(result
                    .iter()
                    .filter_map(|r| {
                        let get = |n: &str| r["metric"][n].as_str().unwrap_or("").to_string();
                        let v = r["value"][1].as_str()?.parse().ok()?;
                        Some((get("cluster"), get(other), v))
                    })
                    .collect())
            }
        }
    }

    /// A querier's answer to `GET path?query&time=`, its error message when it refuses.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        time: i64,
    ) -> anyhow::Result<serde_json::Value> {
        let Backend::Querier { url, client } = self else {
            anyhow::bail!("not a querier");
        };
        let url = format!("{}{path}", url.trim_end_matches('/'));
        let time = format!("{:.3}", time as f64 / 1000.0);
        let resp = client
            .get(&url)
            .query(query)
            .query(&[("time", &time)])
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)
            .with_context(|| format!("{url}: {status}, not JSON"))?;
        if !status.is_success() {
            anyhow::bail!("{url}: {status}: {}", body["error"].as_str().unwrap_or(""));
        }
        Ok(body)
    }

    /// Free GPUs per cluster over schedulable nodes, and the most on one node.
    async fn gpus_free(&self, time: i64) -> anyhow::Result<Vec<(String, f64, f64)>> {
        let job = Job {
            pods: 1,
            gpus_per_pod: 1.0,
            cpu_per_pod: 0.0,
            memory_per_pod: 0.0,
        };
        match self {
            Backend::Local { source, .. } => Ok(capacity(source, job, &[], time)
                .await?
                .clusters
                .into_iter()
                .map(|c| (c.cluster, c.free_gpus, c.largest_free_gpus_on_a_node))
                .collect()),
            Backend::Querier { .. } => {
                let query = [("pods", "1"), ("gpus_per_pod", "1")];
                let body = self.get("/api/v1/fleet/capacity", &query, time).await?;
                let clusters = body["data"]["clusters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                Ok(clusters
                    .iter()
                    .filter_map(|c| {
                        Some((
                            c["cluster"].as_str()?.to_string(),
                            c["free_gpus"].as_f64()?,
                            c["largest_free_gpus_on_a_node"].as_f64()?,
                        ))
                    })
                    .collect())
            }
        }
    }
}

impl Snapshot {
    /// The fleet at `time` (ms).
    pub async fn fetch(backend: &Backend, time: i64) -> anyhow::Result<Snapshot> {
        let mut rows: BTreeMap<String, ClusterRow> = BTreeMap::new();
        type Field = fn(&mut ClusterRow) -> &mut Option<f64>;
        let columns: [(&str, Field); 7] = [
            (CPU_USED, |r| &mut r.cpu_cores),
            (CPU_TOTAL, |r| &mut r.cpu_total),
            (MEMORY_USED, |r| &mut r.memory_bytes),
            (MEMORY_TOTAL, |r| &mut r.memory_total),
            (GPU_UTIL, |r| &mut r.gpu_util),
            (GPU_MEMORY_USED, |r| &mut r.gpu_memory_used),
            (GPU_MEMORY_TOTAL, |r| &mut r.gpu_memory_total),
        ];
        for (query, field) in columns {
            for (cluster, _, v) in backend.instant(query, time, "").await? {
                let r = rows.entry(cluster.clone()).or_insert_with(|| ClusterRow {
                    cluster,
                    ..Default::default()
                });
                *field(r) = Some(v);
            }
        }
        for (cluster, namespace, v) in backend.instant(TOP_NS, time, "namespace").await? {
            if let Some(r) = rows.get_mut(&cluster) {
                r.top_namespaces.push((namespace, v));
            }
        }
        for (cluster, free, largest) in backend.gpus_free(time).await? {
            if let Some(r) = rows.get_mut(&cluster) {
                r.gpus_free = Some((free, largest));
            }
        }
        for r in rows.values_mut() {
            r.top_namespaces.sort_by(|a, b| b.1.total_cmp(&a.1));
            r.top_namespaces.truncate(TOP_NAMESPACES);
        }
        Ok(Snapshot {
            time_ms: time,
            clusters: rows.into_values().collect(),
        })
    }
}

/// The column rows are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Cluster name, A to Z.
    Cluster,
    /// CPU cores in use, most first.
    Cpu,
    /// Memory in use, most first.
    Memory,
    /// GPU utilisation, highest first.
    Gpu,
    /// Free GPUs, most first.
    GpusFree,
}

/// What the live view shows: the sort, the picked cluster, the last snapshot and error.
#[derive(Debug)]
pub struct View {
    /// The sort.
    pub sort: SortBy,
    /// The picked cluster, by name (kept when rows move).
    pub picked: Option<String>,
    /// The newest snapshot.
    pub snapshot: Snapshot,
    /// The last refresh's error, shown until a refresh succeeds.
    pub error: Option<String>,
    /// Where the figures come from, for the title.
    pub source: String,
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more.
    Continue,
    /// Leave.
    Quit,
}

impl View {
    /// A view of `source` before the first snapshot.
    pub fn new(source: impl Into<String>) -> View {
        View {
            sort: SortBy::Cluster,
            picked: None,
            snapshot: Snapshot::default(),
            error: None,
            source: source.into(),
        }
    }

    /// The rows in the current sort.
    pub fn rows(&self) -> Vec<&ClusterRow> {
        let mut rows: Vec<&ClusterRow> = self.snapshot.clusters.iter().collect();
        let key = |r: &ClusterRow| -> f64 {
            match self.sort {
                SortBy::Cluster => 0.0,
                SortBy::Cpu => r.cpu_cores.unwrap_or(f64::MIN),
                SortBy::Memory => r.memory_bytes.unwrap_or(f64::MIN),
                SortBy::Gpu => r.gpu_util.unwrap_or(f64::MIN),
                SortBy::GpusFree => r.gpus_free.map_or(f64::MIN, |g| g.0),
            }
        };
        rows.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cluster.cmp(&b.cluster)));
        rows
    }

    /// Handles a key: `q`/Esc/Ctrl-C quit; `c` `p` `m` `g` `f` sort by cluster, CPU, memory, GPU,
    /// free GPUs; arrows or `j`/`k` pick a cluster.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        let rows: Vec<String> = self.rows().iter().map(|r| r.cluster.clone()).collect();
        let at = self
            .picked
            .as_ref()
            .and_then(|p| rows.iter().position(|r| r == p));
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                return Action::Quit;
            }
            KeyCode::Char('c') => self.sort = SortBy::Cluster,
            KeyCode::Char('p') => self.sort = SortBy::Cpu,
            KeyCode::Char('m') => self.sort = SortBy::Memory,
            KeyCode::Char('g') => self.sort = SortBy::Gpu,
            KeyCode::Char('f') => self.sort = SortBy::GpusFree,
            KeyCode::Down | KeyCode::Char('j') if !rows.is_empty() => {
                let next = at.map_or(0, |i| (i + 1).min(rows.len() - 1));
                self.picked = Some(rows[next].clone());
            }
            KeyCode::Up | KeyCode::Char('k') if !rows.is_empty() => {
                let next = at.map_or(0, |i| i.saturating_sub(1));
                self.picked = Some(rows[next].clone());
            }
            _ => {}
        }
        Action::Continue
    }

    /// Draws the view: a title line, the cluster table, the picked cluster's namespaces, the keys.
    pub fn draw(&self, frame: &mut Frame<'_>) {
        let [title, table, detail, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(TOP_NAMESPACES as u16 + 2),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        let time = match chrono::DateTime::from_timestamp_millis(self.snapshot.time_ms) {
            Some(t) if self.snapshot.time_ms > 0 => t
                .with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string(),
            _ => "waiting for the first figures".to_string(),
        };
        let status = match &self.error {
            Some(e) => format!("  ERROR: {e}"),
            None => String::new(),
        };
        frame.render_widget(
            Paragraph::new(format!("fleetscope top - {} - {time}{status}", self.source)),
            title,
        );
        let rows = self.rows();
        self.draw_table(frame, table, &rows);
        let picked = self
            .picked
            .as_ref()
            .and_then(|p| rows.iter().find(|r| &r.cluster == p))
            .or(rows.first());
        if let Some(r) = picked {
            let lines: Vec<Line<'_>> = r
                .top_namespaces
                .iter()
                .map(|(ns, v)| Line::from(format!("{:>8} cores  {ns}", short(*v))))
                .collect();
            let block = Block::bordered().title(format!(" top namespaces by CPU: {} ", r.cluster));
            frame.render_widget(Paragraph::new(lines).block(block), detail);
        }
        frame.render_widget(
            Paragraph::new("q quit  ↑↓ pick  sort: c cluster  p CPU  m memory  g GPU  f free GPUs")
                .style(Style::default().fg(Color::DarkGray)),
            help,
        );
    }

    fn draw_table(&self, frame: &mut Frame<'_>, area: Rect, rows: &[&ClusterRow]) {
        let mark = |s: SortBy, name: &str| {
            if self.sort == s {
                format!("{name}▼")
            } else {
                name.to_string()
            }
        };
        let header = Row::new([
            mark(SortBy::Cluster, "CLUSTER"),
            mark(SortBy::Cpu, "CPU CORES"),
            "CPU %".into(),
            mark(SortBy::Memory, "MEMORY"),
            "MEM %".into(),
            mark(SortBy::Gpu, "GPU UTIL"),
            "GPU MEMORY".into(),
            mark(SortBy::GpusFree, "GPUS FREE"),
        ])
        .style(Style::default().add_modifier(Modifier::BOLD));
        let body = rows
            .iter()
            .map(|r| Row::new(cells(r).into_iter().map(Cell::from)));
        let widths = [
            Constraint::Min(14),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(19),
            Constraint::Length(16),
        ];
        let mut state = TableState::default().with_selected(
            self.picked
                .as_ref()
                .and_then(|p| rows.iter().position(|r| &r.cluster == p))
                .or((!rows.is_empty()).then_some(0)),
        );
        let table = TuiTable::new(body, widths)
            .header(header)
            .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
            .block(Block::bordered().title(" clusters "));
        frame.render_stateful_widget(table, area, &mut state);
    }
}

/// A row's cells as text; `-` where the fleet has no such metric.
fn cells(r: &ClusterRow) -> [String; 8] {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let pct = |v: Option<f64>| or_dash(v.map(|v| format!("{:.0}%", v * 100.0)));
    let mib = 1024.0 * 1024.0;
    [
        r.cluster.clone(),
        or_dash(r.cpu_cores.map(short)),
        pct(r.cpu_share()),
        or_dash(r.memory_bytes.map(|v| format_value(v, Unit::Bytes, false))),
        pct(r.memory_share()),
        or_dash(r.gpu_util.map(|v| format!("{v:.0}%"))),
        or_dash(r.gpu_memory_used.zip(r.gpu_memory_total).map(|(u, t)| {
            format!(
                "{} / {}",
                format_value(u * mib, Unit::Bytes, false),
                format_value(t * mib, Unit::Bytes, false)
            )
        })),
        or_dash(r.gpus_free.map(|(f, l)| format!("{f} (≤{l}/node)"))),
    ]
}

fn short(v: f64) -> String {
    format_value(v, Unit::Plain, false)
}

/// The snapshot as one plain table (for output that is not a terminal).
pub fn plain_table(snapshot: &Snapshot) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "cluster",
        "CPU cores",
        "CPU %",
        "memory",
        "memory %",
        "GPU util",
        "GPU memory",
        "GPUs free",
        "top namespaces (CPU cores)",
    ]);
    for r in &snapshot.clusters {
        let mut row = cells(r).to_vec();
        row.push(
            r.top_namespaces
                .iter()
                .map(|(ns, v)| format!("{ns} {}", short(*v)))
                .collect::<Vec<_>>()
                .join(", "),
        );
        t.add_row(row);
    }
    t.to_string()
}

#[cfg(test)]
mod tests;
