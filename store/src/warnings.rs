//! Warnings of one request (Prometheus's `"warnings"` field): a source that can answer partially —
//! a remote-read endpoint that is down, a block that cannot be read — reports here instead of
//! failing the whole query; the evaluator reports PromQL's own warnings (a `limit_ratio` ratio
//! capped) the same way.
//!
//! The collector lives in a task-local scope set by the API handler around the evaluation, so
//! sources deep below the engine report without every call passing it along.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static WARNINGS: RefCell<Vec<String>>;
}

/// Runs `fut`, returning its output and the warnings reported during it (unique, in order).
pub async fn collect<F: Future>(fut: F) -> (F::Output, Vec<String>) {
    WARNINGS
        .scope(RefCell::new(Vec::new()), async move {
            let out = fut.await;
            let warnings = WARNINGS.with(|w| w.take());
            (out, warnings)
        })
        .await
}

/// Reports a warning to the enclosing [`collect`] (logged in any case).
pub fn warn(message: String) {
    tracing::warn!(%message, "query warning");
    let _ = WARNINGS.try_with(|w| {
        let mut w = w.borrow_mut();
        if !w.contains(&message) {
            w.push(message);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collects_unique_warnings_of_its_scope_only() {
        warn("outside any scope".into());
        let (out, warnings) = collect(async {
            warn("a".into());
            tokio::task::yield_now().await;
            warn("b".into());
            warn("a".into());
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(warnings, vec!["a".to_string(), "b".to_string()]);
        let (_, none) = collect(async {}).await;
        assert!(none.is_empty());
    }
}
