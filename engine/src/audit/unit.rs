//! Unit tests: a model's SQL, rendered with the test's overrides, run on in-memory tables holding
//! the rows the test gives, and its output compared with the rows it expects. No object store and
//! no published data are touched. A mock input needs only the columns the test cares about: the
//! others declared for that input (`columns:` with `data_type`) are added as nulls, with their
//! declared types.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde_yaml::Value;

use crate::compile::ModelPlan;
use crate::graph::ModelGraph;
use crate::project::{
    ColumnProperties, NodeId, Project, RowsFormat, UnitTest, UnitTestRows, split_source_id,
};
use crate::render::{RenderContext, RenderError, RenderedModel, Renderer};
use crate::report::{TestKind, TestResult, TestStatus};
use crate::session::contract::sql_type;
use crate::session::source_reference;

/// Rows of a test: column names in order of appearance, and each row's values as text.
struct Rows {
    columns: Vec<String>,
    values: Vec<BTreeMap<String, Option<String>>>,
    /// Columns with a value written as a YAML string: they are text, even if `'007'`.
    quoted: BTreeSet<String>,
}

/// What a unit test renders its model with: the project's templates, the run's graph (which of
/// the model's parents are ephemeral) and the run's vars and target.
#[derive(Clone, Copy)]
pub struct UnitTestInputs<'a> {
    pub project: &'a Project,
    pub renderer: &'a std::sync::Arc<Renderer>,
    pub graph: &'a ModelGraph,
    pub context: &'a RenderContext,
}

/// Run `test` with the run's vars (the test's own overrides win).
pub async fn run_unit_test(inputs: UnitTestInputs<'_>, test: &UnitTest) -> TestResult {
    let defined_at = test.file.location(test.at.offset());
    let mut result = TestResult::passed(
        &test.properties.name,
        TestKind::Unit,
        &test.properties.model,
    )
    .defined_at(defined_at);
    match run(inputs, test).await {
        Ok(None) => {}
        Ok(Some((failures, diff))) => {
            result.status = TestStatus::Fail;
            result.failures = failures;
            result.detail = Some(diff);
        }
        Err(error) => {
            result.status = TestStatus::Error;
            result.detail = Some(error);
        }
    }
    result
}

/// Why a model could not be rendered and planned in a context.
#[derive(Debug)]
pub(crate) enum InContext {
    /// It, or an ephemeral model it reads, did not render.
    Render(RenderError),
    /// It did not plan, or names no model.
    Plan(String),
}

impl std::fmt::Display for InContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InContext::Render(error) => error.fmt(f),
            InContext::Plan(message) => f.write_str(message),
        }
    }
}

/// The model under test, rendered in the test's context with the ephemeral models it reads
/// (and no other model), and planned.
pub(crate) fn plan_in_context(
    inputs: UnitTestInputs<'_>,
    context: &RenderContext,
    name: &str,
) -> Result<ModelPlan, InContext> {
    let project = inputs.project;
    let render = |name: &str| -> Result<RenderedModel, InContext> {
        let file = project
            .models
            .get(name)
            .ok_or_else(|| InContext::Plan(format!("no model `{name}`")))?;
        inputs
            .renderer
            .render_model(project, file, context)
            .map_err(InContext::Render)
    };
    let model = render(name)?;
    let mut ephemerals: BTreeMap<String, RenderedModel> = BTreeMap::new();
    let mut waiting: Vec<String> = model.refs.iter().map(|c| c.target.clone()).collect();
    while let Some(parent) = waiting.pop() {
        let ephemeral = inputs
            .graph
            .models
            .get(&parent)
            .is_some_and(|m| m.config.is_ephemeral());
        if ephemeral && !ephemerals.contains_key(&parent) {
            let rendered = render(&parent)?;
            waiting.extend(rendered.refs.iter().map(|c| c.target.clone()));
            ephemerals.insert(parent, rendered);
        }
    }
    crate::compile::plan_model(&|parent| ephemerals.get(parent), &model)
        .map_err(|e| InContext::Plan(e.to_string()))
}

/// What is wrong with `test` that shows without running it, each as a message, the text to point
/// at in its YAML, and a hint: rows that cannot be read or typed, and columns its inputs and
/// its expected rows name that the planned `schemas` of the inputs and of the model lack.
pub(crate) async fn unit_test_problems(
    session: &SessionContext,
    inputs: UnitTestInputs<'_>,
    test: &UnitTest,
    schemas: &BTreeMap<NodeId, datafusion::arrow::datatypes::SchemaRef>,
) -> Vec<(String, String, Option<String>)> {
    let properties = &test.properties;
    let mut problems = Vec::new();
    let missing = |columns: &[String], schema: &Schema, whose: &str| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        columns
            .iter()
            .filter(|c| schema.field_with_name(c).is_err())
            .map(|c| {
                let help = crate::source::did_you_mean(c, names.iter().copied())
                    .unwrap_or_else(|| format!("its columns: {}", names.join(", ")));
                (
                    format!("{whose} has no column `{c}`"),
                    c.clone(),
                    Some(help),
                )
            })
            .collect::<Vec<_>>()
    };
    for (given, relation) in properties.given.iter().zip(&test.inputs) {
        let rows = match read_rows(&given.rows) {
            Ok(rows) => rows,
            Err(error) => {
                problems.push((
                    format!("{}: {error}", given.input),
                    given.input.clone(),
                    None,
                ));
                continue;
            }
        };
        if let Some(schema) = schemas.get(relation) {
            problems.extend(missing(&rows.columns, schema, &given.input));
        }
        if let Err(error) =
            mock_batch(session, &rows, &declared_columns(inputs.project, relation)).await
        {
            problems.push((
                format!("{}: {error}", given.input),
                given.input.clone(),
                None,
            ));
        }
    }
    match read_rows(&properties.expect) {
        Err(error) => problems.push((format!("expect: {error}"), "expect".into(), None)),
        Ok(expected) => {
            let output = NodeId::Model(properties.model.clone());
            if let Some(schema) = schemas.get(&output) {
                let whose = format!("the output of `{}`", properties.model);
                problems.extend(missing(&expected.columns, schema, &whose));
            }
        }
    }
    problems
}

/// `None` when the output matches; else the count of differing rows and a diff.
async fn run(inputs: UnitTestInputs<'_>, test: &UnitTest) -> Result<Option<(u64, String)>, String> {
    let properties = &test.properties;
    let project = inputs.project;
    let mut context = inputs.context.clone();
    context
        .options
        .vars
        .extend(properties.overrides.vars.clone());
    context
        .options
        .env_vars
        .extend(properties.overrides.env_vars.clone());
    let model = &plan_in_context(inputs, &context, &properties.model).map_err(|e| e.to_string())?;

    let session = SessionContext::new();
    crate::session::dialect::apply(&session, project);
    let mut given = BTreeSet::new();
    for (input, relation) in properties.given.iter().zip(&test.inputs) {
        let rows = read_rows(&input.rows)?;
        let batch = mock_batch(&session, &rows, &declared_columns(project, relation)).await?;
        register(&session, relation, batch)?;
        given.insert(relation.clone());
    }
    let needed = model
        .upstream
        .iter()
        .map(|m| NodeId::Model(m.clone()))
        .chain(model.sources.iter().map(|s| NodeId::Source(s.clone())));
    for relation in needed {
        if !given.contains(&relation) {
            return Err(format!(
                "`{}` reads {relation}: give its rows under `given:`",
                model.name
            ));
        }
    }

    let frame = crate::session::read_query(&session, &model.sql)
        .await
        .map_err(|e| e.strip_backtrace())?;
    let schema = frame.schema().as_arrow().clone();
    let output = frame.collect().await.map_err(|e| e.strip_backtrace())?;
    let expected = read_rows(&properties.expect)?;
    compare(&schema, &output, &expected)
}

fn read_rows(rows: &UnitTestRows) -> Result<Rows, String> {
    let text = |value: &Value| match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(
            serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    };
    let mut columns: Vec<String> = Vec::new();
    let mut values = Vec::new();
    let mut quoted = BTreeSet::new();
    match rows.format {
        RowsFormat::Dict => {
            let list = match &rows.rows {
                Value::Sequence(list) => list.as_slice(),
                Value::Null => &[],
                _ => {
                    return Err(
                        "`rows` must be a list of mappings (or CSV text with format: csv)".into(),
                    );
                }
            };
            for row in list {
                let Value::Mapping(map) = row else {
                    return Err("each row must be a mapping such as {id: 1, name: a}".into());
                };
                let mut parsed = BTreeMap::new();
                for (key, value) in map {
                    let key = key
                        .as_str()
                        .ok_or("column names must be strings")?
                        .to_string();
                    if !columns.contains(&key) {
                        columns.push(key.clone());
                    }
                    if value.is_string() {
                        quoted.insert(key.clone());
                    }
                    parsed.insert(key, text(value));
                }
                values.push(parsed);
            }
        }
        RowsFormat::Csv => {
            let csv = rows
                .rows
                .as_str()
                .ok_or("with format: csv, `rows` is CSV text with a header line")?;
            // The reader seeds use: quoted fields (a comma or a quote inside a value), CRLF.
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(csv.trim().as_bytes());
            columns = reader
                .headers()
                .map_err(|e| format!("the CSV header: {e}"))?
                .iter()
                .map(str::to_string)
                .collect();
            if columns.iter().all(String::is_empty) {
                return Err("the CSV has no header line".into());
            }
            for record in reader.records() {
                let record = record.map_err(|e| format!("CSV {e}"))?;
                values.push(
                    columns
                        .iter()
                        .zip(record.iter())
                        .map(|(c, v)| (c.clone(), (!v.is_empty()).then(|| v.to_string())))
                        .collect(),
                );
            }
        }
    }
    Ok(Rows {
        columns,
        values,
        quoted,
    })
}

/// The columns declared for a model or source table, with their SQL types where declared; a
/// source's hive partition columns are text.
fn declared_columns(project: &Project, relation: &NodeId) -> Vec<(String, Option<String>)> {
    let typed = |columns: &[ColumnProperties]| -> Vec<(String, Option<String>)> {
        columns
            .iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect()
    };
    match relation {
        NodeId::Model(name) => project
            .models
            .get(name)
            .and_then(|m| m.properties.as_ref())
            .map_or_else(Vec::new, |p| typed(&p.columns)),
        NodeId::Source(id) => project.sources.get(id).map_or_else(Vec::new, |source| {
            let mut columns = typed(&source.columns);
            for partition in &source.partitioned_by {
                if !columns.iter().any(|(name, _)| name == partition) {
                    columns.push((partition.clone(), Some("varchar".into())));
                }
            }
            columns
        }),
    }
}

/// A batch of the given rows: declared columns with their declared types (nulls where the
/// test gives no value), other columns typed by their values.
async fn mock_batch(
    session: &SessionContext,
    rows: &Rows,
    declared: &[(String, Option<String>)],
) -> Result<RecordBatch, String> {
    let mut names: Vec<String> = declared.iter().map(|(name, _)| name.clone()).collect();
    names.extend(
        rows.columns
            .iter()
            .filter(|c| !names.contains(c))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for name in &names {
        let texts: Vec<Option<String>> = rows
            .values
            .iter()
            .map(|row| row.get(name).cloned().flatten())
            .collect();
        let declared_type = declared
            .iter()
            .find(|(declared, _)| declared == name)
            .and_then(|(_, data_type)| data_type.as_deref());
        let data_type = match declared_type {
            Some(sql) => sql_type(session, sql).await?,
            None if rows.quoted.contains(name) => DataType::Utf8,
            None => infer_type(&texts),
        };
        let array = typed(&texts, &data_type).map_err(|e| format!("column `{name}`: {e}"))?;
        fields.push(Field::new(name, data_type, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
}

/// The narrowest of integer, float, boolean and text that holds every value (written unquoted).
fn infer_type(texts: &[Option<String>]) -> DataType {
    let present: Vec<&str> = texts.iter().flatten().map(String::as_str).collect();
    if present.is_empty() {
        DataType::Utf8
    } else if present.iter().all(|t| t.parse::<i64>().is_ok()) {
        DataType::Int64
    } else if present.iter().all(|t| t.parse::<f64>().is_ok()) {
        DataType::Float64
    } else if present.iter().all(|t| *t == "true" || *t == "false") {
        DataType::Boolean
    } else {
        DataType::Utf8
    }
}

/// Text values cast to `data_type`; a value that does not cast is an error, not a null.
fn typed(texts: &[Option<String>], data_type: &DataType) -> Result<ArrayRef, String> {
    let strings: ArrayRef = Arc::new(StringArray::from(texts.to_vec()));
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&strings, data_type, &options).map_err(|e| e.to_string())
}

fn register(session: &SessionContext, relation: &NodeId, batch: RecordBatch) -> Result<(), String> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| e.to_string())?;
    let reference = match relation {
        NodeId::Model(name) => TableReference::bare(name.as_str()),
        NodeId::Source(id) => {
            let (source, _) = split_source_id(id);
            let catalog = session
                .catalog("datafusion")
                .expect("the default catalog exists");
            if catalog.schema(source).is_none() {
                catalog
                    .register_schema(source, Arc::new(MemorySchemaProvider::new()))
                    .map_err(|e| e.to_string())?;
            }
            source_reference(id)
        }
    };
    session
        .register_table(reference, Arc::new(table))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A value as text, `None` for null: an empty string and a null are different values.
fn cell(array: &ArrayRef, row: usize) -> Option<String> {
    use datafusion::arrow::array::Array;
    (!array.is_null(row)).then(|| array_value_to_string(array, row).unwrap_or_default())
}

/// Compare the output with the expected rows on the expected columns, ignoring order.
fn compare(
    schema: &Schema,
    output: &[RecordBatch],
    expected: &Rows,
) -> Result<Option<(u64, String)>, String> {
    let mut actual_rows: Vec<Vec<Option<String>>> = Vec::new();
    let mut types = Vec::new();
    let mut indices = Vec::new();
    for column in &expected.columns {
        let index = schema
            .index_of(column)
            .map_err(|_| format!("expected column `{column}` is not in the model's output"))?;
        indices.push(index);
        types.push(schema.field(index).data_type().clone());
    }
    for batch in output {
        for row in 0..batch.num_rows() {
            actual_rows.push(
                indices
                    .iter()
                    .map(|&i| cell(batch.column(i), row))
                    .collect(),
            );
        }
    }
    // Expected values go through the output's types, so that `12.5` meets `12.50`.
    let mut expected_rows: Vec<Vec<Option<String>>> = vec![Vec::new(); expected.values.len()];
    for (column, data_type) in expected.columns.iter().zip(&types) {
        let texts: Vec<Option<String>> = expected
            .values
            .iter()
            .map(|row| row.get(column).cloned().flatten())
            .collect();
        let array =
            typed(&texts, data_type).map_err(|e| format!("expected column `{column}`: {e}"))?;
        for (row, values) in expected_rows.iter_mut().enumerate() {
            values.push(cell(&array, row));
        }
    }
    let mut unexpected = actual_rows.clone();
    let mut missing = Vec::new();
    for row in expected_rows {
        match unexpected.iter().position(|r| *r == row) {
            Some(at) => {
                unexpected.remove(at);
            }
            None => missing.push(row),
        }
    }
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(None);
    }
    let show = |rows: &[Vec<Option<String>>]| -> String {
        rows.iter()
            .map(|row| {
                let cells: Vec<String> = expected
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| match v {
                        Some(v) => format!("{c}: {v:?}").replace('"', ""),
                        None => format!("{c}: null"),
                    })
                    .collect();
                format!("    {{{}}}\n", cells.join(", "))
            })
            .collect()
    };
    let mut diff = String::from("the output differs from the expected rows\n");
    if !missing.is_empty() {
        diff.push_str(&format!(
            "  missing (expected, not produced): {}\n{}",
            missing.len(),
            show(&missing)
        ));
    }
    if !unexpected.is_empty() {
        diff.push_str(&format!(
            "  unexpected (produced, not expected): {}\n{}",
            unexpected.len(),
            show(&unexpected)
        ));
    }
    Ok(Some((
        (missing.len() + unexpected.len()) as u64,
        diff.trim_end().to_string(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_read_by_a_csv_reader_not_split_on_commas() {
        let rows = UnitTestRows {
            format: RowsFormat::Csv,
            rows: Value::String(
                "id, name , note\r\n1,\"Doe, Jane\",\"say \"\"hi\"\"\"\r\n2,Lee,\r\n".into(),
            ),
        };
        let read = read_rows(&rows).unwrap();
        assert_eq!(read.columns, ["id", "name", "note"]);
        let value = |row: usize, column: &str| read.values[row][column].clone();
        assert_eq!(value(0, "name").as_deref(), Some("Doe, Jane"));
        assert_eq!(value(0, "note").as_deref(), Some("say \"hi\""));
        assert_eq!(value(1, "note"), None);
        let ragged = UnitTestRows {
            format: RowsFormat::Csv,
            rows: Value::String("a,b\n1,2,3\n".into()),
        };
        assert!(read_rows(&ragged).is_err_and(|e| e.contains("CSV")));
    }
}
