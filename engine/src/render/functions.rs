//! The functions a model template can call. Each looks up the render it runs in (the
//! [`RenderState`] passed in the render's context) and records its call there, so renders on
//! any thread, in any order, never mix their records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use minijinja::value::{Kwargs, Object, Rest};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::adapter::Relation;
use crate::project::ModelConfigProperties;

/// The name under which a render's [`RenderState`] sits in its context.
pub(super) const STATE: &str = "__dp_render";

/// The names the functions check calls against: the same for every render of a project.
#[derive(Debug)]
pub(super) struct Known {
    pub models: BTreeSet<String>,
    pub sources: BTreeSet<String>,
    /// Source tables that are a model of the project, with that model: read as its `ref()`.
    pub source_models: BTreeMap<String, String>,
}

/// One render: what its functions see, and what they record.
#[derive(Debug)]
pub(super) struct RenderState {
    pub known: Arc<Known>,
    pub vars: BTreeMap<String, serde_yaml::Value>,
    pub env_vars: BTreeMap<String, String>,
    pub is_incremental: bool,
    /// Runs `run_query()`'s SQL, in a render at execution time.
    pub queries: Option<super::QueryRunner>,
    pub recorded: Mutex<Recorded>,
    /// How deep macro calls nest right now.
    pub depth: std::sync::atomic::AtomicUsize,
    /// In a generic test's render: the tested model and the SQL of its rows under test, which
    /// `ref()` of that model reads.
    pub tested: Mutex<Option<(String, String)>>,
}

impl Object for RenderState {}

/// What `run_query()` returns, as dbt's agate table: `rows` (each indexed by position or
/// column name), `columns` (each with `name` and `values()`), `column_names`.
#[derive(Debug)]
pub(super) struct QueryTable(pub super::QueryResult);

impl Object for QueryTable {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let result = &self.0;
        match key.as_str()? {
            "column_names" => Some(Value::from(minijinja::value::Serde(&result.columns))),
            "rows" => Some(Value::from(
                result
                    .rows
                    .iter()
                    .map(|row| {
                        Value::from_object(QueryRow {
                            columns: result.columns.clone(),
                            values: typed_row(result, row),
                        })
                    })
                    .collect::<Vec<_>>(),
            )),
            "columns" => Some(Value::from_object(QueryColumns(
                (0..result.columns.len())
                    .map(|i| QueryColumn {
                        name: result.columns[i].clone(),
                        values: result
                            .rows
                            .iter()
                            .map(|row| typed(row[i].as_deref(), result.types.get(i)))
                            .collect(),
                    })
                    .map(Arc::new)
                    .collect(),
            ))),
            _ => None,
        }
    }
}

/// A row of a [`QueryTable`]: `row[0]` or `row['name']`, or its values in order.
#[derive(Debug)]
struct QueryRow {
    columns: Vec<String>,
    values: Vec<Value>,
}

impl Object for QueryRow {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let index = match key.as_usize() {
            Some(index) => index,
            None => self
                .columns
                .iter()
                .position(|c| Some(c.as_str()) == key.as_str())?,
        };
        self.values.get(index).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(self.values.clone())
    }
}

/// The columns of a [`QueryTable`], as agate's: a sequence of columns, each found by position
/// or name too, with `items()`, `keys()` and `values()`.
#[derive(Debug)]
struct QueryColumns(Vec<Arc<QueryColumn>>);

impl Object for QueryColumns {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let found = match key.as_usize() {
            Some(index) => self.0.get(index),
            None => self
                .0
                .iter()
                .find(|c| Some(c.name.as_str()) == key.as_str()),
        };
        found.map(|column| Value::from_dyn_object(column.clone()))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(
            self.0
                .iter()
                .map(|c| Value::from_dyn_object(c.clone()))
                .collect(),
        )
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        let name = |c: &Arc<QueryColumn>| Value::from(c.name.clone());
        let column = |c: &Arc<QueryColumn>| Value::from_dyn_object(c.clone());
        Ok(match method {
            "keys" => Value::from_iter(self.0.iter().map(name)),
            "values" => Value::from_iter(self.0.iter().map(column)),
            "items" => {
                Value::from_iter(self.0.iter().map(|c| Value::from(vec![name(c), column(c)])))
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        })
    }
}

/// A column of a [`QueryTable`]: `column.name`, `column.values()`.
#[derive(Debug)]
struct QueryColumn {
    name: String,
    values: Vec<Value>,
}

impl Object for QueryColumn {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        (key.as_str()? == "name").then(|| Value::from(self.name.clone()))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "values" => Ok(Value::from(self.values.clone())),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("a column has no {method}()"),
            )),
        }
    }
}

/// A row of query results as template values, each typed by its column.
pub(super) fn typed_row(result: &super::QueryResult, row: &[Option<String>]) -> Vec<Value> {
    row.iter()
        .enumerate()
        .map(|(i, cell)| typed(cell.as_deref(), result.types.get(i)))
        .collect()
}

/// A cell's text as the value dbt's agate would give: a number for a numeric column, a
/// boolean for a boolean one, text otherwise; NULL as none.
fn typed(cell: Option<&str>, sql_type: Option<&String>) -> Value {
    let Some(text) = cell else {
        return Value::from(());
    };
    let sql_type = sql_type.map(String::as_str).unwrap_or_default();
    let integer = ["tinyint", "smallint", "int", "bigint"]
        .iter()
        .any(|t| sql_type.starts_with(t));
    let float = ["real", "double", "decimal", "float"]
        .iter()
        .any(|t| sql_type.starts_with(t));
    if integer && let Ok(number) = text.parse::<i64>() {
        return Value::from(number);
    }
    if (float || integer)
        && let Ok(number) = text.parse::<f64>()
    {
        return Value::from(number);
    }
    match (sql_type, text) {
        ("boolean", "true") => Value::from(true),
        ("boolean", "false") => Value::from(false),
        _ => Value::from(text),
    }
}

/// dbt's `execute`: true in a render at execution time. Asking it marks the render, so that a
/// build renders the model again to run it (a `run_query()` behind `{% if execute %}` is never
/// called while dp plans).
#[derive(Debug)]
pub(super) struct Execute(pub Arc<RenderState>);

impl Object for Execute {
    fn is_true(self: &Arc<Self>) -> bool {
        self.0.record(|r| r.ran_query = true);
        self.0.queries.is_some()
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.is_true())
    }
}

/// Marks, around its index, a value `return()` kept in the render.
const RETURNED: char = '\u{1}';

/// An error's detail as a person reads it: without the index of a kept `return()` value.
pub(super) fn readable(detail: &str) -> &str {
    detail.rsplit(RETURNED).next().unwrap_or(detail)
}

/// The function that wraps each macro in a [`Returning`].
pub(super) const RETURNING: &str = "__dp_returning";

/// A macro called as dbt calls it: when its body calls `return(value)`, the call's value is
/// that value, not the macro's text.
#[derive(Debug)]
pub(super) struct Returning(pub Value);

impl Object for Returning {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let args = super::macros::with_extra_kwargs(&self.0, args);
        let error = match self.0.call(state, &args) {
            Ok(output) => return Ok(output),
            Err(error) => error,
        };
        let index = error
            .detail()
            .and_then(|text| text.split(RETURNED).nth(1))
            .and_then(|index| index.parse::<usize>().ok());
        let returned = match index {
            Some(index) => render_state(state)?.record(|r| r.returned.get(index).cloned()),
            None => None,
        };
        returned.ok_or(error)
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get_attr(key.as_str()?).ok()
    }
}

/// What one model's render recorded.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub calls: Vec<RecordedCall>,
    /// What `config()` was given (a later call wins, key by key).
    pub config: ModelConfigProperties,
    /// Why the render failed, when a function made it fail.
    pub problem: Option<Problem>,
    /// The template asked `execute` or called `run_query()`: a build renders it again.
    pub ran_query: bool,
    /// The lists and mappings macros gave `return()`, by index.
    pub returned: Vec<Value>,
    /// Every key `config()` was given, as given (what `config.get` reads).
    pub config_given: serde_yaml::Mapping,
    /// What each `{% call statement(name, fetch_result=True) %}` gave, for `load_result`.
    pub statements: BTreeMap<String, Value>,
    /// What `log(..., info=True)` and `print()` said, in order (`dp run-operation` shows it).
    pub messages: Vec<String>,
}

/// A `ref()` or `source()` call and the text it produced.
#[derive(Debug)]
pub(super) struct RecordedCall {
    pub target: String,
    pub output: String,
    pub is_source: bool,
}

#[derive(Debug)]
pub(super) enum Problem {
    UnknownRef(String),
    UnknownSource(String),
    MissingVar(String),
    MissingEnvVar(String),
    InvalidConfig(String),
}

impl RenderState {
    pub(super) fn record<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        f(&mut self.recorded.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn fail(&self, problem: Problem, message: String) -> Error {
        self.record(|r| r.problem = Some(problem));
        Error::new(ErrorKind::InvalidOperation, message)
    }
}

/// The render state of the render `state` belongs to.
pub(super) fn render_state(state: &State) -> Result<Arc<RenderState>, Error> {
    state
        .lookup(STATE)
        .and_then(|value| value.downcast_object::<RenderState>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not inside a dp render"))
}

/// `ref(name)` (or `ref(package, name)`): the model's relation, recorded.
fn reference(render: &RenderState, name: &str) -> Result<Value, Error> {
    if !render.known.models.contains(name) {
        return Err(render.fail(
            Problem::UnknownRef(name.into()),
            format!("unknown model `{name}`"),
        ));
    }
    let tested = render
        .tested
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let relation = match tested {
        Some((model, sql)) if model == name => Relation::tested(name, &sql),
        _ => Relation::model(name),
    };
    render.record(|r| {
        r.calls.push(RecordedCall {
            target: name.into(),
            output: relation.sql.clone(),
            is_source: false,
        })
    });
    Ok(Value::from_object(relation))
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_function(
        "ref",
        |state: &State, first: &str, second: Option<&str>| -> Result<Value, Error> {
            reference(&*render_state(state)?, second.unwrap_or(first))
        },
    );

    env.add_function(
        "source",
        |state: &State, source: &str, table: &str| -> Result<Value, Error> {
            let render = render_state(state)?;
            let id = format!("{source}.{table}");
            if let Some(model) = render.known.source_models.get(&id) {
                return reference(&render, model);
            }
            if !render.known.sources.contains(&id) {
                return Err(render.fail(
                    Problem::UnknownSource(id.clone()),
                    format!("unknown source `{id}`"),
                ));
            }
            let relation = Relation::source(source, table);
            render.record(|r| {
                r.calls.push(RecordedCall {
                    target: id,
                    output: relation.sql.clone(),
                    is_source: true,
                })
            });
            Ok(Value::from_object(relation))
        },
    );

    env.add_function(
        "var",
        |state: &State, name: &str, default: Rest<Value>| -> Result<Value, Error> {
            let render = render_state(state)?;
            match (render.vars.get(name), default.first()) {
                (Some(value), _) => Ok(Value::from(minijinja::value::Serde(value))),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(render.fail(
                    Problem::MissingVar(name.into()),
                    format!("var `{name}` has no value"),
                )),
            }
        },
    );

    env.add_function(
        "env_var",
        |state: &State, name: &str, default: Rest<Value>| -> Result<Value, Error> {
            let render = render_state(state)?;
            let value = render
                .env_vars
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok());
            match (value, default.first()) {
                (Some(value), _) => Ok(Value::from(value)),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(render.fail(
                    Problem::MissingEnvVar(name.into()),
                    format!("environment variable `{name}` is not set"),
                )),
            }
        },
    );

    // dbt's `{{ return(value) }}` in a macro: the macro stops, and its call gives `value`
    // (kept in the render; the error that stops the macro carries its index, and the
    // macro's [`Returning`] turns it back into the value).
    env.add_function(
        "return",
        |state: &State, value: Option<Value>| -> Result<Value, Error> {
            let index = render_state(state)?.record(|r| {
                r.returned.push(value.unwrap_or(Value::from(())));
                r.returned.len() - 1
            });
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{RETURNED}{index}{RETURNED}return() is called outside a macro"),
            ))
        },
    );
    env.add_function(RETURNING, |value: Value| {
        Value::from_object(Returning(value))
    });
    env.add_function("__dp_list", super::macros::mutable_list);
    env.add_function("__dp_dict", super::macros::mutable_map);

    // dbt's `run_query(sql)`: while dp plans (`execute` false) an empty table; in a build, the
    // query's rows, read from the tables the model reads.
    env.add_function(
        "run_query",
        |state: &State, sql: String| -> Result<Value, Error> {
            let result = run_sql(&*render_state(state)?, &sql)?;
            Ok(Value::from_object(QueryTable(result)))
        },
    );

    env.add_function("is_incremental", |state: &State| -> Result<bool, Error> {
        Ok(render_state(state)?.is_incremental)
    });

    // dbt's `log(msg, info=False)`: to dp's log (info, or debug), writing nothing; an info
    // message is also kept for the command to show.
    env.add_function(
        "log",
        |state: &State,
         message: Value,
         info: Option<bool>,
         kwargs: Kwargs|
         -> Result<String, Error> {
            let info = info.or(kwargs.get::<Option<bool>>("info")?);
            kwargs.assert_all_used()?;
            match info.unwrap_or(false) {
                true => {
                    tracing::info!(message = %message, "template log");
                    render_state(state)?.record(|r| r.messages.push(message.to_string()));
                }
                false => tracing::debug!(message = %message, "template log"),
            }
            Ok(String::new())
        },
    );

    env.add_global("config", Value::from_object(Config));
}

/// dbt's `config`: `config(materialized='table', ...)` sets the model's configuration (the keys
/// and types of `config:` in YAML: one list, one reader); `config.get(key, default)` and
/// `config.require(key)` read what the model's render set so far.
#[derive(Debug)]
struct Config;

impl Object for Config {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let render = render_state(state)?;
        let invalid =
            |message: String| render.fail(Problem::InvalidConfig(message.clone()), message);
        let (_, kwargs): (&[Value], Kwargs) = minijinja::value::from_args(args)?;
        let mut given = serde_yaml::Mapping::new();
        for key in kwargs.args() {
            let value: Value = kwargs.get(key).map_err(|e| invalid(e.to_string()))?;
            let value = serde_yaml::to_value(&value).map_err(|e| invalid(e.to_string()))?;
            given.insert(serde_yaml::Value::from(key), value);
        }
        let given_keys = given.clone();
        let given: ModelConfigProperties =
            serde_yaml::from_value(serde_yaml::Value::Mapping(given)).map_err(|e| {
                let message = e.to_string();
                invalid(
                    message
                        .split(" at line ")
                        .next()
                        .unwrap_or(&message)
                        .to_string(),
                )
            })?;
        render.record(|r| {
            r.config = std::mem::take(&mut r.config).overridden_by(given);
            r.config_given.extend(given_keys);
        });
        Ok(Value::from(""))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let render = render_state(state)?;
        let key = args.first().map(|k| k.to_string()).unwrap_or_default();
        let found = render
            .record(|r| r.config_given.get(key.as_str()).cloned())
            .filter(|value| !value.is_null())
            .map(|value| Value::from(minijinja::value::Serde(value)));
        match (method, found) {
            ("get", Some(value)) | ("require", Some(value)) => Ok(value),
            ("get", None) => Ok(args.get(1).cloned().unwrap_or(Value::from(()))),
            ("require", None) => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("config `{key}` is required"),
            )),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// Run `sql` (one query that reads) for a render at execution time; while dp plans, no rows.
/// Either way the render is marked to render again when it runs.
pub(super) fn run_sql(render: &RenderState, sql: &str) -> Result<super::QueryResult, Error> {
    render.record(|r| r.ran_query = true);
    if let Err(message) = one_query(sql) {
        return Err(Error::new(ErrorKind::InvalidOperation, message));
    }
    match &render.queries {
        Some(runner) => {
            (runner.0)(sql).map_err(|message| Error::new(ErrorKind::InvalidOperation, message))
        }
        None => Ok(super::QueryResult::default()),
    }
}

/// Whether `sql` is one query that only reads (what `run_query()` accepts): a statement of any
/// other kind (`copy … to` writes a file, `create external table` reads one) is refused at the
/// call. SQL this parser cannot read goes on to DataFusion, which refuses the same kinds.
fn one_query(sql: &str) -> Result<(), String> {
    use datafusion::sql::parser::{DFParser, Statement};
    let Ok(mut statements) = DFParser::parse_sql(sql) else {
        return Ok(());
    };
    match statements.make_contiguous() {
        [Statement::Statement(statement)]
            if matches!(**statement, sqlparser::ast::Statement::Query(_)) =>
        {
            Ok(())
        }
        [_] => Err(format!(
            "run_query() runs one query that reads the model's relations (SELECT, WITH or VALUES), not `{}`",
            sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        )),
        statements => Err(format!(
            "run_query() runs one query, not {} statements",
            statements.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reads_without_the_index_of_a_kept_return_value() {
        let detail = format!("{RETURNED}0{RETURNED}return() is called outside a macro");
        assert_eq!(readable(&detail), "return() is called outside a macro");
        assert_eq!(readable("unknown function"), "unknown function");
    }
}
