//! PromQL as DataFusion physical plans: the plan nodes, one file per node kind.
//!
//! ```text
//! PromEvalExec              one partition: the whole query, cross-series work (vector matching,
//!   |                       subqueries, topk, ...) by the evaluator, leaves taken from children
//!   +- PromAggregateExec    Final: merges per-group states (sum/avg Kahan state, min, max, count, group)
//!      +- CoalescePartitionsExec
//!         +- PromAggregateExec  Partial: per partition and group
//!            +- PromSeriesExec  per partition: the per-series part of the query (selector, range
//!               |               and per-series functions, arithmetic with scalars)
//!               +- RepartitionExec  hash of the series' labels without `__name__`
//!                  +- PromScanExec  one partition per group of sources (blocks, remote-read
//!                                   endpoints), matchers and time range pushed into the reader
//! ```
//!
//! Answers stay exact because every node runs the evaluator's own code on whole series: the
//! repartition puts every copy of a series (a block per window, a shipper's fresh samples) and every
//! series equal to it but for its name into one partition, where they are merged before any
//! function sees them.

/// The methods every plan node writes the same way: its name, cached properties, no physical
/// expressions, `with_new_children` through `replace_children`, and its metrics. Used inside each
/// `impl ExecutionPlan`; the node has `properties` and `metrics` fields.
macro_rules! plan_node_common {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn apply_expressions(
            &self,
            _: &mut dyn FnMut(
                &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
            ) -> datafusion::common::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::common::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn with_new_children(
            self: Arc<Self>,
            children: Vec<Arc<dyn ExecutionPlan>>,
        ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
            self.replace_children(
                children,
                datafusion::physical_plan::ReplaceChildrenOptions::new(
                    datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
                ),
            )
        }

        fn metrics(&self) -> Option<datafusion::physical_plan::metrics::MetricsSet> {
            Some(self.metrics.clone_inner())
        }
    };
}

mod aggregate;
pub(crate) mod batch;
mod eval;
mod rows;
mod scan;
mod series;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{Partitioning, PlanProperties};
use fleetscope_store::Series;
use tokio::sync::OnceCell;

pub(crate) use aggregate::{AggregateMode, PromAggregateExec};
pub(crate) use eval::{PromEvalExec, ResultKind};
pub(crate) use rows::{RowColumn, SampleRowsExec};
pub(crate) use scan::PromScanExec;
pub(crate) use series::PromSeriesExec;

use fleetscope_store::error::display_chain;

use crate::error::Error;
use crate::eval::Settings;

/// What the nodes of one query share: its settings, the samples it has loaded (against
/// `--query.max-samples`) and the warnings of partial answers.
#[derive(Debug)]
pub(crate) struct QueryCtx {
    pub(crate) settings: Settings,
    pub(crate) loaded: Arc<AtomicUsize>,
    pub(crate) warnings: Mutex<Vec<String>>,
    /// Selections of selectors the query writes more than once, by selector text, time range and
    /// source: read once, whichever scan gets there first.
    shared: Mutex<HashMap<SharedKey, SharedCell>>,
}

/// A selection's identity within one query: selector text, time range, summary read (over
/// downsampled data), source address.
type SharedKey = (
    String,
    i64,
    i64,
    fleetscope_store::downsample::Aggregate,
    usize,
);

/// Where the one selection of a [`SharedKey`] lands.
type SharedCell = Arc<OnceCell<Arc<Vec<Series>>>>;

impl QueryCtx {
    pub(crate) fn new(settings: Settings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            loaded: Arc::default(),
            warnings: Mutex::default(),
            shared: Mutex::default(),
        })
    }

    /// The cell holding the one selection of `key` (created empty on first use).
    fn shared(&self, key: SharedKey) -> SharedCell {
        match self.shared.lock() {
            Ok(mut cells) => Arc::clone(cells.entry(key).or_default()),
            Err(_) => Arc::default(),
        }
    }

    /// Records warnings reported while a node ran (outside the request's task).
    pub(crate) fn warn(&self, warnings: Vec<String>) {
        if let Ok(mut w) = self.warnings.lock() {
            for m in warnings {
                if !w.contains(&m) {
                    w.push(m);
                }
            }
        }
    }
}

/// Plan properties of a node with `partitions` output partitions that emits when done.
fn properties(schema: SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// A query error on its way through DataFusion.
pub(crate) fn to_df(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The query error inside a DataFusion error (ours, or DataFusion's own as an internal error).
/// Taken by reference: errors of spawned partitions arrive shared.
pub(crate) fn from_df(e: DataFusionError) -> Error {
    error_of(&e)
}

fn error_of(e: &DataFusionError) -> Error {
    match e {
        DataFusionError::External(b) => match b.downcast_ref::<Error>() {
            Some(Error::BadData(m)) => Error::BadData(m.clone()),
            Some(Error::Execution(m)) => Error::Execution(m.clone()),
            Some(Error::Timeout(m)) => Error::Timeout(m),
            Some(Error::TooManySamples(m)) => Error::TooManySamples(m),
            Some(Error::ResourcesExhausted(m)) => Error::ResourcesExhausted(m.clone()),
            Some(Error::Store(inner)) => Error::Unavailable(display_chain(inner)),
            Some(Error::Unavailable(m)) => Error::Unavailable(m.clone()),
            Some(Error::Internal(m)) => Error::Internal(m.clone()),
            None => Error::Internal(b.to_string()),
        },
        DataFusionError::Context(_, inner) => error_of(inner),
        DataFusionError::Shared(inner) => error_of(inner),
        DataFusionError::ResourcesExhausted(m) => Error::ResourcesExhausted(m.clone()),
        other => Error::Internal(other.to_string()),
    }
}
