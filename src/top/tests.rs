use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;

fn row(cluster: &str, cpu: f64, util: f64, free: f64) -> ClusterRow {
    ClusterRow {
        cluster: cluster.into(),
        cpu_cores: Some(cpu),
        cpu_total: Some(64.0),
        memory_bytes: Some(48.0 * 1024.0 * 1024.0 * 1024.0),
        memory_total: Some(256.0 * 1024.0 * 1024.0 * 1024.0),
        gpu_util: Some(util),
        gpu_memory_used: Some(40_960.0),
        gpu_memory_total: Some(81_920.0),
        gpus_free: Some((free, free.min(3.0))),
        top_namespaces: vec![
            (format!("{cluster}-ml"), cpu * 0.75),
            ("kube-system".into(), 0.25),
        ],
    }
}

fn view() -> View {
    let mut view = View::new("file:///fleet/bucket");
    view.snapshot = Snapshot {
        time_ms: 1_767_261_600_000,
        clusters: vec![
            row("control", 4.0, 0.0, 0.0),
            row("gpu-training", 48.0, 91.0, 7.0),
            ClusterRow {
                gpu_util: None,
                gpu_memory_used: None,
                gpus_free: None,
                ..row("serving", 16.0, 0.0, 0.0)
            },
        ],
    };
    view
}

fn draw(view: &View) -> String {
    let mut terminal = Terminal::new(TestBackend::new(110, 18)).unwrap();
    terminal.draw(|f| view.draw(f)).unwrap();
    let buf = terminal.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn table_order(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.trim_start_matches(['│', ' ']).split_whitespace().next())
        .filter(|w| ["control", "gpu-training", "serving"].contains(w))
        .collect()
}

#[test]
fn renders_into_a_test_backend() {
    let view = view();
    let text = draw(&view);
    // The time is shown in local time, which differs between machines: leave it out.
    let stable: Vec<&str> = text.lines().skip(1).collect();
    insta::assert_snapshot!(stable.join("\n"));
    assert!(
        text.starts_with("fleetscope top - file:///fleet/bucket"),
        "{text}"
    );
    // CPU share of what the nodes offer, GPU memory, free GPUs with the most on one node.
    assert!(text.contains("75%"), "{text}");
    assert!(text.contains("40GiB / 80GiB"), "{text}");
    assert!(text.contains("7 (≤3/node)"), "{text}");
    // A cluster without GPUs shows dashes, not zeros.
    let serving = text.lines().find(|l| l.contains("serving")).unwrap();
    assert!(serving.contains(" - "), "{serving}");
    // The first row's namespaces until another is picked.
    assert!(text.contains("top namespaces by CPU: control"), "{text}");
}

#[test]
fn keys_sort_pick_and_quit() {
    let mut view = view();
    assert_eq!(
        table_order(&draw(&view)),
        ["control", "gpu-training", "serving"]
    );
    assert_eq!(view.key(key(KeyCode::Char('p'))), Action::Continue);
    let text = draw(&view);
    assert_eq!(table_order(&text), ["gpu-training", "serving", "control"]);
    assert!(text.contains("CPU CORES▼"), "{text}");
    view.key(key(KeyCode::Char('f')));
    assert_eq!(
        table_order(&draw(&view)),
        ["gpu-training", "control", "serving"]
    );
    // Picking follows the rows as shown; the pick stays on its cluster when the sort changes.
    view.key(key(KeyCode::Down));
    view.key(key(KeyCode::Down));
    assert_eq!(view.picked.as_deref(), Some("control"));
    assert!(draw(&view).contains("top namespaces by CPU: control"));
    view.key(key(KeyCode::Char('c')));
    view.key(key(KeyCode::Down));
    assert_eq!(view.picked.as_deref(), Some("gpu-training"));
    assert!(draw(&view).contains("gpu-training-ml"));
    view.key(key(KeyCode::Up));
    view.key(key(KeyCode::Up));
    assert_eq!(view.picked.as_deref(), Some("control"));
    assert_eq!(view.key(key(KeyCode::Char('q'))), Action::Quit);
    assert_eq!(view.key(key(KeyCode::Esc)), Action::Quit);
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(view.key(ctrl_c), Action::Quit);
}

#[test]
fn before_the_first_snapshot_it_says_so() {
    let text = draw(&View::new("http://querier:9090"));
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("waiting for the first figures"),
        "{text}"
    );
}

#[test]
fn an_error_is_shown_and_the_last_snapshot_kept() {
    let mut view = view();
    view.error = Some("connection refused".into());
    let text = draw(&view);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("ERROR: connection refused"),
        "{text}"
    );
    assert!(text.contains("gpu-training"), "{text}");
}

#[test]
fn the_plain_table_has_a_row_per_cluster() {
    let text = plain_table(&view().snapshot);
    for c in ["control", "gpu-training", "serving"] {
        assert_eq!(
            text.lines()
                .filter(|l| l.contains(&format!(" {c} ")))
                .count(),
            1,
            "{text}"
        );
    }
    assert!(text.contains("gpu-training-ml 36"), "{text}");
    assert!(!text.contains('\x1b'), "{text}");
}
