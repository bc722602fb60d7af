//! End-to-end tests of the `fleetscope` binary: one test binary, one module per subcommand.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod answers;
mod capacity;
mod compact;
mod crash;
mod demo;
mod deploy;
mod fleet;
mod hostile;
mod import;
mod outage;
mod query;
mod remote_read;
mod sql;
mod support;
mod tls;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the built `fleetscope` binary with `args`.
pub(crate) fn fleetscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetscope"))
        .args(args)
        .output()
        .expect("run fleetscope")
}

/// `file://` URL of a directory.
pub(crate) fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}
