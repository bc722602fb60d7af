//! SQL over the fleet's metrics, on the same sources and DataFusion session as PromQL.
//!
//! Each metric is a table named as the metric (case kept: `"DCGM_FI_DEV_GPU_UTIL"`), with `ts`
//! (timestamp, ms), `value` (float64) and one nullable text column per label, external labels
//! (`cluster`) included. Label comparisons (`=`, `<>`, `~`, `!~`, `IS [NOT] NULL`) and time bounds
//! on `ts` go down into the block reader exactly; stale markers are not rows; the copies of a
//! series in several sources merge as in PromQL. `information_schema.tables` and `.columns` list
//! the metrics and their labels.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{MemoryCatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::col;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning, collect};
use fleetscope_store::labels::METRIC_NAME;
use fleetscope_store::{MatchOp, Matcher, SelectHints};

use crate::engine::Engine;
use crate::error::{Error, Result, bad};
use crate::exec::batch::{SERIES_KEY, SERIES_SCHEMA};
use crate::exec::{PromScanExec, QueryCtx, RowColumn, SampleRowsExec, from_df};
use fleetscope_store::source::Source;

/// Column of a sample's time.
pub const TS: &str = "ts";
/// Column of a sample's value.
pub const VALUE: &str = "value";

/// SQL queries over a source's metrics.
#[derive(Debug)]
pub struct Sql {
    engine: Engine,
    schema: Arc<Metrics>,
}

/// The result of a SQL query: its schema and rows.
#[derive(Debug)]
pub struct SqlResult {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl Sql {
    /// SQL over `source`, run by `engine`'s session (whose default schema becomes the metrics).
    pub fn new(engine: &Engine, source: Arc<dyn Source>) -> Self {
        let schema = Arc::new(Metrics {
            source,
            engine: engine.clone(),
            names: RwLock::default(),
        });
        let session = engine.session();
        let catalog = session.catalog("datafusion").unwrap_or_else(|| {
            let catalog = Arc::new(MemoryCatalogProvider::new());
            session.register_catalog("datafusion", Arc::clone(&catalog) as _);
            catalog
        });
        // A memory catalog takes any schema; the previous one (if any) is replaced.
        let _replaced = catalog.register_schema("public", Arc::clone(&schema) as _);
        Self {
            engine: engine.clone(),
            schema,
        }
    }

    /// Runs one SQL statement; a bad statement is [`Error::BadData`] with the parser's message.
    pub async fn query(&self, sql: &str) -> Result<SqlResult> {
        self.schema.refresh().await?;
        let session = self.engine.session();
        let frame = session.sql(sql).await.map_err(user_error)?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let plan = frame.create_physical_plan().await.map_err(user_error)?;
        let batches = collect(plan, session.task_ctx()).await.map_err(from_df)?;
        Ok(SqlResult { schema, batches })
    }

    /// The physical plan of a statement, as indented text.
    pub async fn explain(&self, sql: &str) -> Result<String> {
        self.schema.refresh().await?;
        let frame = self.engine.session().sql(sql).await.map_err(user_error)?;
        let plan = frame.create_physical_plan().await.map_err(user_error)?;
        Ok(datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string())
    }
}

/// Parse and planning errors are the user's; everything else as the engine classifies it.
fn user_error(e: DataFusionError) -> Error {
    match e {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_) => bad(e.to_string()),
        DataFusionError::Context(_, inner) => user_error(*inner),
        DataFusionError::Diagnostic(_, inner) => user_error(*inner),
        other => from_df(other),
    }
}

/// The schema of metrics: a table per metric name.
#[derive(Debug)]
struct Metrics {
    source: Arc<dyn Source>,
    engine: Engine,
    names: RwLock<BTreeSet<String>>,
}

impl Metrics {
    /// Lists the metric names again (before each statement is planned).
    async fn refresh(&self) -> Result<()> {
        let index = self.source.label_index(i64::MIN, i64::MAX).await?;
        let names: BTreeSet<String> = index.get(METRIC_NAME).cloned().unwrap_or_default();
        if let Ok(mut n) = self.names.write() {
            *n = names.into_iter().collect();
        }
        Ok(())
    }
}

#[async_trait]
impl SchemaProvider for Metrics {
    fn table_names(&self) -> Vec<String> {
        self.names
            .read()
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if !self.table_exist(name) {
            return Ok(None);
        }
        let by_name = [Matcher::equal(METRIC_NAME, name)];
        let series = self
            .source
            .series(&by_name, i64::MIN, i64::MAX)
            .await
            .map_err(|e| crate::exec::to_df(e.into()))?;
        let labels: BTreeSet<String> = series
            .iter()
            .flat_map(|l| l.iter().map(|l| l.name.clone()))
            .filter(|n| n != METRIC_NAME && n != TS && n != VALUE)
            .collect();
        let mut fields = vec![
            Field::new(TS, DataType::Timestamp(TimeUnit::Millisecond, None), false),
            Field::new(VALUE, DataType::Float64, false),
        ];
        fields.extend(labels.iter().map(|l| Field::new(l, DataType::Utf8, true)));
        Ok(Some(Arc::new(MetricTable {
            metric: name.to_string(),
            schema: Arc::new(Schema::new(fields)),
            source: Arc::clone(&self.source),
            engine: self.engine.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.names.read().is_ok_and(|n| n.contains(name))
    }
}

/// One metric as a table.
#[derive(Debug)]
struct MetricTable {
    metric: String,
    schema: SchemaRef,
    source: Arc<dyn Source>,
    engine: Engine,
}

/// What a filter pushes down: label matchers and time bounds (inclusive).
#[derive(Debug, Default)]
struct Pushed {
    matchers: Vec<Matcher>,
    min_t: Option<i64>,
    max_t: Option<i64>,
}

impl MetricTable {
    fn is_label(&self, name: &str) -> bool {
        name != TS && name != VALUE && self.schema.field_with_name(name).is_ok()
    }

    /// Adds what `filter` says to `pushed`; false (and nothing added) when it cannot be pushed
    /// down exactly.
    fn push(&self, filter: &Expr, pushed: &mut Pushed) -> bool {
        match filter {
            Expr::IsNull(e) | Expr::IsNotNull(e) => {
                let Expr::Column(c) = e.as_ref() else {
                    return false;
                };
                if !self.is_label(&c.name) {
                    return false;
                }
                let present = matches!(filter, Expr::IsNotNull(_));
                pushed.matchers.push(presence(&c.name, present));
                true
            }
            Expr::BinaryExpr(b) => {
                let (column, op, literal) = match (b.left.as_ref(), b.right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _)) => (c, b.op, v),
                    (Expr::Literal(v, _), Expr::Column(c)) => match b.op.swap() {
                        Some(op) => (c, op, v),
                        None => return false,
                    },
                    _ => {
                        if b.op == Operator::And {
                            let mut inner = Pushed::default();
                            if self.push(&b.left, &mut inner) && self.push(&b.right, &mut inner) {
                                pushed.matchers.extend(inner.matchers);
                                pushed.min_t = max_opt(pushed.min_t, inner.min_t);
                                pushed.max_t = min_opt(pushed.max_t, inner.max_t);
                                return true;
                            }
                        }
                        return false;
                    }
                };
                if column.name == TS {
                    return push_time(op, literal, pushed);
                }
                if !self.is_label(&column.name) {
                    return false;
                }
                let (ScalarValue::Utf8(Some(v)) | ScalarValue::LargeUtf8(Some(v))) = literal else {
                    return false;
                };
                let name = column.name.clone();
                // SQL regexes match anywhere; PromQL's (the reader's) are anchored. A missing label
                // is NULL in SQL (never a match), the empty value in PromQL: ask for presence too.
                let m = match op {
                    Operator::Eq if !v.is_empty() => Matcher::new(MatchOp::Equal, name.clone(), v),
                    Operator::NotEq => Matcher::new(MatchOp::NotEqual, name.clone(), v),
                    Operator::RegexMatch => {
                        Matcher::new(MatchOp::Regex, name.clone(), format!(".*(?:{v}).*"))
                    }
                    Operator::RegexNotMatch => {
                        Matcher::new(MatchOp::NotRegex, name.clone(), format!(".*(?:{v}).*"))
                    }
                    _ => return false,
                };
                let Ok(m) = m else { return false };
                pushed.matchers.push(m);
                pushed.matchers.push(presence(&name, true));
                true
            }
            Expr::Between(b) if !b.negated => {
                let Expr::Column(c) = b.expr.as_ref() else {
                    return false;
                };
                if c.name != TS {
                    return false;
                }
                let (Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                    (b.low.as_ref(), b.high.as_ref())
                else {
                    return false;
                };
                let mut inner = Pushed::default();
                if push_time(Operator::GtEq, lo, &mut inner)
                    && push_time(Operator::LtEq, hi, &mut inner)
                {
                    pushed.min_t = max_opt(pushed.min_t, inner.min_t);
                    pushed.max_t = min_opt(pushed.max_t, inner.max_t);
                    return true;
                }
                false
            }
            _ => false,
        }
    }
}

/// `name` present (`=~".+"`) or absent (`=""`).
fn presence(name: &str, present: bool) -> Matcher {
    if present {
        Matcher::new(MatchOp::Regex, name, ".+").unwrap_or_else(|_| Matcher::equal(name, ""))
    } else {
        Matcher::equal(name, "")
    }
}

/// Milliseconds of a timestamp literal, if it is one in milliseconds exactly.
fn millis(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampMillisecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1000),
        ScalarValue::TimestampMicrosecond(Some(t), _) if t % 1000 == 0 => Some(t / 1000),
        ScalarValue::TimestampNanosecond(Some(t), _) if t % 1_000_000 == 0 => Some(t / 1_000_000),
        _ => None,
    }
}

fn push_time(op: Operator, literal: &ScalarValue, pushed: &mut Pushed) -> bool {
    let Some(t) = millis(literal) else {
        return false;
    };
    let (lo, hi) = match op {
        Operator::Gt => (t.checked_add(1), None),
        Operator::GtEq => (Some(t), None),
        Operator::Lt => (None, t.checked_sub(1)),
        Operator::LtEq => (None, Some(t)),
        Operator::Eq => (Some(t), Some(t)),
        _ => return false,
    };
    pushed.min_t = max_opt(pushed.min_t, lo);
    pushed.max_t = min_opt(pushed.max_t, hi);
    true
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[async_trait]
impl TableProvider for MetricTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.push(f, &mut Pushed::default()) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut pushed = Pushed::default();
        for f in filters {
            self.push(f, &mut pushed);
        }
        pushed
            .matchers
            .push(Matcher::equal(METRIC_NAME, self.metric.clone()));
        let (min_t, max_t) = (
            pushed.min_t.unwrap_or(i64::MIN),
            pushed.max_t.unwrap_or(i64::MAX),
        );
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let columns = schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                TS => RowColumn::Ts,
                VALUE => RowColumn::Value,
                l => RowColumn::Label(l.to_string()),
            })
            .collect();
        let ctx = QueryCtx::new(self.engine.settings(0, 0, 0));
        let parallelism = state.config().target_partitions().max(1);
        let parts = self
            .source
            .parts(&SelectHints::range(min_t, max_t))
            .unwrap_or_else(|| vec![Arc::clone(&self.source)]);
        let shown: Vec<String> = pushed.matchers.iter().map(ToString::to_string).collect();
        let display = format!("{{{}}}", shown.join(", "));
        let scan: Arc<dyn ExecutionPlan> = Arc::new(PromScanExec::new(
            display,
            vec![pushed.matchers],
            SelectHints::range(min_t, max_t),
            crate::plan::balance(parts, parallelism),
            false,
            Arc::clone(&ctx),
        ));
        let key = col(SERIES_KEY, &SERIES_SCHEMA)?;
        let input = Arc::new(RepartitionExec::try_new(
            scan,
            Partitioning::Hash(vec![key], parallelism),
        )?);
        Ok(Arc::new(SampleRowsExec::new(
            input,
            columns,
            schema,
            (min_t, max_t),
            ctx,
        )))
    }
}
