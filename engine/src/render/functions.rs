//! The functions a model template can call. Each looks up the render it runs in (the
//! [`RenderState`] passed in the render's context) and records its call there, so renders on
//! any thread, in any order, never mix their records.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use minijinja::value::{Kwargs, Object, Rest};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use crate::project::ModelConfigProperties;
use crate::source::quote_identifier as quote;

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
}

impl Object for RenderState {}

/// `{{ this }}`: the model's own published table, as dbt's relation (`this.identifier`,
/// `this.name`); it renders as the quoted table name the model's session knows it by.
#[derive(Debug)]
pub(super) struct Relation(pub String);

impl Object for Relation {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "name" | "identifier" | "table" => Some(Value::from(self.0.clone())),
            _ => None,
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&quote(&self.0))
    }
}

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
                            values: row.clone(),
                        })
                    })
                    .collect::<Vec<_>>(),
            )),
            "columns" => Some(Value::from(
                (0..result.columns.len())
                    .map(|i| {
                        Value::from_object(QueryColumn {
                            name: result.columns[i].clone(),
                            values: result.rows.iter().map(|row| row[i].clone()).collect(),
                        })
                    })
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        }
    }
}

/// A row of a [`QueryTable`]: `row[0]` or `row['name']`.
#[derive(Debug)]
struct QueryRow {
    columns: Vec<String>,
    values: Vec<Option<String>>,
}

impl Object for QueryRow {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let index = match key.as_usize() {
            Some(index) => index,
            None => self
                .columns
                .iter()
                .position(|c| Some(c.as_str()) == key.as_str())?,
        };
        self.values
            .get(index)
            .map(|value| Value::from(value.clone()))
    }
}

/// A column of a [`QueryTable`]: `column.name`, `column.values()`.
#[derive(Debug)]
struct QueryColumn {
    name: String,
    values: Vec<Option<String>>,
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
            "values" => Ok(Value::from(minijinja::value::Serde(&self.values))),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("a column has no {method}()"),
            )),
        }
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

/// `adapter`: `adapter.quote(name)` quotes an identifier as DataFusion reads it.
#[derive(Debug)]
pub(super) struct Adapter;

impl Object for Adapter {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (method, args) {
            ("quote", [name]) => Ok(Value::from(quote(&name.to_string()))),
            _ => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("dp's adapter has quote(name) only, not {method}()"),
            )),
        }
    }
}

/// Marks, around its index, a value `return()` kept in the render.
const RETURNED: char = '\u{1}';

/// The function that wraps each project macro in a [`Returning`].
pub(super) const RETURNING: &str = "__dp_returning";

/// A project macro called as dbt calls it: when its body gave `return()` a list or a mapping,
/// the call's value is that value, not the macro's text.
#[derive(Debug)]
pub(super) struct Returning(pub Value);

impl Object for Returning {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let output = self.0.call(state, args)?;
        let index = output
            .as_str()
            .and_then(|text| text.split(RETURNED).nth(1))
            .and_then(|index| index.parse::<usize>().ok());
        let returned = match index {
            Some(index) => render_state(state)?.record(|r| r.returned.get(index).cloned()),
            None => None,
        };
        Ok(returned.unwrap_or(output))
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
    fn record<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        f(&mut self.recorded.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn fail(&self, problem: Problem, message: String) -> Error {
        self.record(|r| r.problem = Some(problem));
        Error::new(ErrorKind::InvalidOperation, message)
    }
}

/// The render state of the render `state` belongs to.
fn render_state(state: &State) -> Result<Arc<RenderState>, Error> {
    state
        .lookup(STATE)
        .and_then(|value| value.downcast_object::<RenderState>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not inside a dp render"))
}

/// `ref(name)`: the model's relation, recorded.
fn reference(render: &RenderState, name: &str) -> Result<String, Error> {
    if !render.known.models.contains(name) {
        return Err(render.fail(
            Problem::UnknownRef(name.into()),
            format!("unknown model `{name}`"),
        ));
    }
    let output = quote(name);
    render.record(|r| {
        r.calls.push(RecordedCall {
            target: name.into(),
            output: output.clone(),
            is_source: false,
        })
    });
    Ok(output)
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_function(
        "ref",
        |state: &State, name: &str| -> Result<String, Error> {
            reference(&*render_state(state)?, name)
        },
    );

    env.add_function(
        "source",
        |state: &State, source: &str, table: &str| -> Result<String, Error> {
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
            let output = format!("{}.{}", quote(source), quote(table));
            render.record(|r| {
                r.calls.push(RecordedCall {
                    target: id,
                    output: output.clone(),
                    is_source: true,
                })
            });
            Ok(output)
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

    // dbt's `{{ return(value) }}` in a macro. A string is what the macro writes; any other
    // value (a list, a mapping) is kept in the render, and the macro's call gives it back
    // (see [`Returning`]).
    env.add_function(
        "return",
        |state: &State, value: Value| -> Result<Value, Error> {
            if value.as_str().is_some() {
                return Ok(value);
            }
            let index = render_state(state)?.record(|r| {
                r.returned.push(value);
                r.returned.len() - 1
            });
            Ok(Value::from_safe_string(format!(
                "{RETURNED}{index}{RETURNED}"
            )))
        },
    );
    env.add_function(RETURNING, |value: Value| {
        Value::from_object(Returning(value))
    });

    // dbt's `run_query(sql)`: while dp plans (`execute` false) an empty table; in a build, the
    // query's rows, read from the tables the model reads.
    env.add_function(
        "run_query",
        |state: &State, sql: String| -> Result<Value, Error> {
            let render = render_state(state)?;
            render.record(|r| r.ran_query = true);
            if let Err(message) = one_query(&sql) {
                return Err(Error::new(ErrorKind::InvalidOperation, message));
            }
            let result = match &render.queries {
                Some(runner) => (runner.0)(&sql)
                    .map_err(|message| Error::new(ErrorKind::InvalidOperation, message))?,
                None => super::QueryResult::default(),
            };
            Ok(Value::from_object(QueryTable(result)))
        },
    );

    env.add_function("is_incremental", |state: &State| -> Result<bool, Error> {
        Ok(render_state(state)?.is_incremental)
    });

    // dbt's `log(msg, info=False)`: to dp's log (info, or debug), writing nothing.
    env.add_function(
        "log",
        |message: Value, info: Option<bool>, kwargs: Kwargs| -> Result<String, Error> {
            let info = info.or(kwargs.get::<Option<bool>>("info")?);
            kwargs.assert_all_used()?;
            match info.unwrap_or(false) {
                true => tracing::info!(message = %message, "template log"),
                false => tracing::debug!(message = %message, "template log"),
            }
            Ok(String::new())
        },
    );

    env.add_function(
        "config",
        |state: &State, kwargs: Kwargs| -> Result<String, Error> {
            let render = render_state(state)?;
            let invalid =
                |message: String| render.fail(Problem::InvalidConfig(message.clone()), message);
            // The keys and their types are those of `config:` in YAML: one list, one reader.
            let mut given = serde_yaml::Mapping::new();
            for key in kwargs.args() {
                let value: Value = kwargs.get(key).map_err(|e| invalid(e.to_string()))?;
                let value = serde_yaml::to_value(&value).map_err(|e| invalid(e.to_string()))?;
                given.insert(serde_yaml::Value::from(key), value);
            }
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
            render.record(|r| r.config = std::mem::take(&mut r.config).overridden_by(given));
            Ok(String::new())
        },
    );
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
