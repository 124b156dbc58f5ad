//! The functions a model template can call. Each records its call for the model being rendered
//! (a per-thread recorder, since one template renders on one thread from start to end).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::value::{Kwargs, Rest};
use minijinja::{Environment, Error, ErrorKind, Value};

/// The names the functions check calls against.
pub(super) struct Known {
    pub models: BTreeSet<String>,
    pub sources: BTreeSet<String>,
    pub vars: BTreeMap<String, serde_yaml::Value>,
    pub env_vars: BTreeMap<String, String>,
}

/// What one model's render recorded.
#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub calls: Vec<RecordedCall>,
    pub config: ConfigCall,
    /// Why the render failed, when a function made it fail.
    pub problem: Option<Problem>,
}

/// A `ref()` or `source()` call and the text it produced.
#[derive(Debug)]
pub(super) struct RecordedCall {
    pub target: String,
    pub output: String,
    pub is_source: bool,
}

/// The keys given to `config()`.
#[derive(Debug, Default)]
pub(super) struct ConfigCall {
    pub materialized: Option<String>,
    pub partition_by: Option<Vec<String>>,
    pub tags: Vec<String>,
}

#[derive(Debug)]
pub(super) enum Problem {
    UnknownRef(String),
    UnknownSource(String),
    MissingVar(String),
    MissingEnvVar(String),
    InvalidConfig(String),
}

thread_local! {
    static RECORDER: RefCell<Recorded> = RefCell::default();
}

pub(super) fn start_recording() {
    RECORDER.with(|r| *r.borrow_mut() = Recorded::default());
}

pub(super) fn finish_recording() -> Recorded {
    RECORDER.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

fn record<T>(f: impl FnOnce(&mut Recorded) -> T) -> T {
    RECORDER.with(|r| f(&mut r.borrow_mut()))
}

fn fail(problem: Problem, message: String) -> Error {
    record(|r| r.problem = Some(problem));
    Error::new(ErrorKind::InvalidOperation, message)
}

/// A SQL identifier, quoted so that DataFusion keeps its case.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) fn register(env: &mut Environment<'static>, known: Arc<Known>) {
    let k = known.clone();
    env.add_function("ref", move |name: &str| -> Result<String, Error> {
        if !k.models.contains(name) {
            return Err(fail(
                Problem::UnknownRef(name.into()),
                format!("unknown model `{name}`"),
            ));
        }
        let output = quote(name);
        record(|r| {
            r.calls.push(RecordedCall {
                target: name.into(),
                output: output.clone(),
                is_source: false,
            })
        });
        Ok(output)
    });

    let k = known.clone();
    env.add_function(
        "source",
        move |source: &str, table: &str| -> Result<String, Error> {
            let id = format!("{source}.{table}");
            if !k.sources.contains(&id) {
                return Err(fail(
                    Problem::UnknownSource(id.clone()),
                    format!("unknown source `{id}`"),
                ));
            }
            let output = format!("{}.{}", quote(source), quote(table));
            record(|r| {
                r.calls.push(RecordedCall {
                    target: id,
                    output: output.clone(),
                    is_source: true,
                })
            });
            Ok(output)
        },
    );

    let k = known.clone();
    env.add_function(
        "var",
        move |name: &str, default: Rest<Value>| -> Result<Value, Error> {
            match (k.vars.get(name), default.first()) {
                (Some(value), _) => Ok(Value::from(minijinja::value::Serde(value))),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(fail(
                    Problem::MissingVar(name.into()),
                    format!("var `{name}` has no value"),
                )),
            }
        },
    );

    let k = known;
    env.add_function(
        "env_var",
        move |name: &str, default: Rest<Value>| -> Result<Value, Error> {
            let value = k
                .env_vars
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok());
            match (value, default.first()) {
                (Some(value), _) => Ok(Value::from(value)),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(fail(
                    Problem::MissingEnvVar(name.into()),
                    format!("environment variable `{name}` is not set"),
                )),
            }
        },
    );

    env.add_function("config", |kwargs: Kwargs| -> Result<String, Error> {
        let invalid = |message: String| fail(Problem::InvalidConfig(message.clone()), message);
        let materialized: Option<String> = kwargs
            .get("materialized")
            .map_err(|_| invalid("materialized must be a string".into()))?;
        let partition_by = optional_list(&kwargs, "partition_by").map_err(invalid)?;
        let tags = optional_list(&kwargs, "tags").map_err(invalid)?;
        if let Some(unknown) = kwargs
            .args()
            .find(|key| !["materialized", "partition_by", "tags"].contains(key))
        {
            return Err(invalid(format!("unknown config key `{unknown}`")));
        }
        record(|r| {
            if materialized.is_some() {
                r.config.materialized = materialized;
            }
            if partition_by.is_some() {
                r.config.partition_by = partition_by;
            }
            r.config.tags.extend(tags.unwrap_or_default());
        });
        Ok(String::new())
    });
}

/// A keyword argument given as one string or a list of strings.
fn optional_list(kwargs: &Kwargs, key: &str) -> Result<Option<Vec<String>>, String> {
    let Some(value) = kwargs
        .get::<Option<Value>>(key)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    if let Some(one) = value.as_str() {
        return Ok(Some(vec![one.to_string()]));
    }
    let items = value
        .try_iter()
        .map_err(|_| format!("{key} must be a string or a list of strings"))?;
    items
        .map(|item| {
            item.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{key} must be a string or a list of strings"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
