//! [`PromAggregateExec`]: `sum`, `avg`, `count`, `group`, `min` and `max` in two phases, partial
//! per partition and final over the partials, with Prometheus's arithmetic (Kahan sums, NaN rules).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray, Float64Builder, ListBuilder, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};
use fleetscope_store::Labels;
use futures::TryStreamExt;
use promql_parser::parser::LabelModifier;

use super::batch::{STEPS_SCHEMA, from_steps, read_steps};
use super::properties;
use crate::eval::{group_key, kahan_inc};
use crate::plan::AggOp;
use crate::value::StepSeries;

/// Which half of a two-phase aggregation a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggregateMode {
    /// Per input partition: one state row per group.
    Partial,
    /// Over all partial states (one input partition): one series per group.
    Final,
}

/// One half of a two-phase aggregation of step series.
pub(crate) struct PromAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    mode: AggregateMode,
    op: AggOp,
    modifier: Option<LabelModifier>,
    steps: usize,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

/// Partial states: group labels, then per step the Kahan sum and its compensation (or the
/// minimum/maximum), the count of values, and the partition's own mean (for `avg` past overflow).
static STATE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let list = || DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
    let mut fields: Vec<Field> = vec![STEPS_SCHEMA.field(0).clone()];
    for name in ["value", "compensation", "count", "mean"] {
        fields.push(Field::new(name, list(), false));
    }
    Arc::new(Schema::new(fields))
});

impl PromAggregateExec {
    /// An aggregation node; `steps` is the length of the query's grid.
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        mode: AggregateMode,
        op: AggOp,
        modifier: Option<LabelModifier>,
        steps: usize,
    ) -> Self {
        let (schema, partitions) = match mode {
            AggregateMode::Partial => (
                Arc::clone(&STATE_SCHEMA),
                input.output_partitioning().partition_count(),
            ),
            AggregateMode::Final => (Arc::clone(&STEPS_SCHEMA), 1),
        };
        Self {
            input,
            mode,
            op,
            modifier,
            steps,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: properties(schema, partitions),
        }
    }
}

impl fmt::Debug for PromAggregateExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAs::fmt_as(self, DisplayFormatType::Default, f)
    }
}

impl DisplayAs for PromAggregateExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grouping = match &self.modifier {
            None => String::new(),
            Some(LabelModifier::Include(l)) => format!(" by ({})", l.labels.join(", ")),
            Some(LabelModifier::Exclude(l)) => format!(" without ({})", l.labels.join(", ")),
        };
        write!(
            f,
            "PromAggregateExec: mode={:?}, op={}{grouping}",
            self.mode,
            self.op.name()
        )
    }
}

impl ExecutionPlan for PromAggregateExec {
    plan_node_common!("PromAggregateExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.mode,
            self.op,
            self.modifier.clone(),
            self.steps,
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let (mode, op, modifier, n) = (self.mode, self.op, self.modifier.clone(), self.steps);
        let schema = Arc::clone(self.properties.eq_properties.schema());
        let future = async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let mut groups = Groups::new(op, n);
            for b in &batches {
                match mode {
                    AggregateMode::Partial => {
                        for (labels, first, vals) in read_steps(b)? {
                            groups.add_series(&group_key(&labels, &modifier), first, &vals);
                        }
                    }
                    AggregateMode::Final => {
                        for (labels, state) in read_states(b)? {
                            groups.add_state(&labels, state);
                        }
                    }
                }
            }
            let out = match mode {
                AggregateMode::Partial => groups.states()?,
                AggregateMode::Final => from_steps(&groups.finish())?,
            };
            rows.add(out.num_rows());
            Ok(out)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(future),
        )))
    }
}

/// A group's state at every step.
#[derive(Debug, Clone)]
struct State {
    /// Kahan sum (`sum`, `avg`), or the minimum/maximum so far.
    value: Vec<f64>,
    /// Kahan compensation.
    compensation: Vec<f64>,
    /// Values seen (0: the group has no value at the step).
    count: Vec<f64>,
    /// `avg` by Prometheus's algorithm over this state's values (used past an overflow).
    mean: Vec<f64>,
}

impl State {
    fn new(n: usize) -> Self {
        Self {
            value: vec![0.0; n],
            compensation: vec![0.0; n],
            count: vec![0.0; n],
            mean: vec![0.0; n],
        }
    }
}

/// Groups in order of first appearance.
struct Groups {
    op: AggOp,
    n: usize,
    index: HashMap<Labels, usize>,
    groups: Vec<(Labels, State, Vec<Vec<f64>>)>,
}

impl Groups {
    fn new(op: AggOp, n: usize) -> Self {
        Self {
            op,
            n,
            index: HashMap::new(),
            groups: Vec::new(),
        }
    }

    fn slot(&mut self, labels: &Labels) -> usize {
        if let Some(&i) = self.index.get(labels) {
            return i;
        }
        self.index.insert(labels.clone(), self.groups.len());
        self.groups
            .push((labels.clone(), State::new(self.n), vec![Vec::new(); self.n]));
        self.groups.len() - 1
    }

    /// Adds a series' values (partial phase).
    /// Adds a series whose values start at step `first` (partial phase).
    fn add_series(&mut self, key: &Labels, first: usize, vals: &arrow::array::Float64Array) {
        let (op, i) = (self.op, self.slot(key));
        let (_, state, avg_inputs) = &mut self.groups[i];
        let steps = state.count.len();
        for (step, v) in (first..steps).zip(vals.iter()) {
            let Some(f) = v else { continue };
            if op == AggOp::Avg {
                avg_inputs[step].push(f);
            }
            fold(op, state, step, f, 0.0, 1.0);
        }
    }

    /// Adds a partial state (final phase).
    fn add_state(&mut self, key: &Labels, other: State) {
        let (op, i) = (self.op, self.slot(key));
        let (_, state, means) = &mut self.groups[i];
        for (step, &count) in other.count.iter().enumerate().take(state.count.len()) {
            if count == 0.0 {
                continue;
            }
            if op == AggOp::Avg {
                means[step].push(other.mean[step]);
                means[step].push(count);
            }
            fold(
                op,
                state,
                step,
                other.value[step],
                other.compensation[step],
                count,
            );
        }
    }

    /// The partial states as a batch.
    fn states(mut self) -> DfResult<RecordBatch> {
        let mut labels = Vec::with_capacity(self.groups.len());
        let mut lists: [ListBuilder<Float64Builder>; 4] =
            std::array::from_fn(|_| ListBuilder::new(Float64Builder::new()));
        for (key, state, avg_inputs) in &mut self.groups {
            if self.op == AggOp::Avg {
                for (step, values) in avg_inputs.iter().enumerate() {
                    if !values.is_empty() {
                        state.mean[step] = crate::eval::avg(values.iter().copied());
                    }
                }
            }
            labels.push(StepSeries {
                labels: key.clone(),
                vals: Vec::new(),
            });
            for (b, column) in
                lists
                    .iter_mut()
                    .zip([&state.value, &state.compensation, &state.count, &state.mean])
            {
                b.values().append_slice(column);
                b.append(true);
            }
        }
        let mut columns = vec![Arc::clone(from_steps(&labels)?.column(0))];
        columns.extend(lists.iter_mut().map(|b| Arc::new(b.finish()) as _));
        Ok(RecordBatch::try_new(Arc::clone(&STATE_SCHEMA), columns)?)
    }

    /// Each group's value per step (steps without values absent; groups without any dropped).
    fn finish(self) -> Vec<StepSeries> {
        let op = self.op;
        self.groups
            .into_iter()
            .map(|(labels, s, means)| {
                let vals = (0..s.count.len())
                    .map(|i| {
                        (s.count[i] > 0.0).then(|| match op {
                            AggOp::Sum => s.value[i] + s.compensation[i],
                            AggOp::Avg => avg_of(&s, i, &means[i]),
                            AggOp::Count => s.count[i],
                            AggOp::Group => 1.0,
                            _ => s.value[i],
                        })
                    })
                    .collect();
                StepSeries { labels, vals }
            })
            .filter(|s| s.vals.iter().any(Option::is_some))
            .collect()
    }
}

/// Adds `count` values summing to `value + compensation` (or with that minimum/maximum).
fn fold(op: AggOp, s: &mut State, i: usize, value: f64, compensation: f64, count: f64) {
    let first = s.count[i] == 0.0;
    s.count[i] += count;
    match op {
        AggOp::Sum | AggOp::Avg => {
            let (v, c) = kahan_inc(value, s.value[i], s.compensation[i]);
            s.value[i] = v;
            s.compensation[i] = c + compensation;
        }
        AggOp::Min if first || s.value[i] > value || s.value[i].is_nan() => s.value[i] = value,
        AggOp::Max if first || s.value[i] < value || s.value[i].is_nan() => s.value[i] = value,
        _ => {}
    }
}

/// `avg` from merged states: the Kahan mean while the sum stays finite (Prometheus's own path);
/// past an overflow or an infinity, the partitions' means weighted by their counts (`means` holds
/// `mean, count` pairs).
fn avg_of(s: &State, i: usize, means: &[f64]) -> f64 {
    let sum = s.value[i] + s.compensation[i];
    if sum.is_finite() {
        return sum / s.count[i];
    }
    match means {
        [mean, _] => *mean,
        _ => means.chunks(2).map(|p| p[0] * (p[1] / s.count[i])).sum(),
    }
}

/// The states of a [`STATE_SCHEMA`] batch.
fn read_states(b: &RecordBatch) -> DfResult<Vec<(Labels, State)>> {
    let labels = fleetscope_store::batch::read_labels(b, 0)?;
    let column = |i: usize| -> DfResult<Vec<Vec<f64>>> {
        let list = b
            .column(i)
            .as_list_opt::<i32>()
            .ok_or_else(|| DataFusionError::Internal("aggregate state shape".into()))?;
        (0..list.len())
            .map(|r| {
                let v = list.value(r);
                let v = v
                    .as_primitive_opt::<Float64Type>()
                    .ok_or_else(|| DataFusionError::Internal("aggregate state item".into()))?;
                Ok(v.values().to_vec())
            })
            .collect()
    };
    let (value, compensation, count, mean) = (column(1)?, column(2)?, column(3)?, column(4)?);
    Ok(labels
        .into_iter()
        .zip(value)
        .zip(compensation)
        .zip(count)
        .zip(mean)
        .map(|((((labels, value), compensation), count), mean)| {
            (
                labels,
                State {
                    value,
                    compensation,
                    count,
                    mean,
                },
            )
        })
        .collect())
}
