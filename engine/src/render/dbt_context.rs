//! The rest of dbt's template context that packages rely on: `statement` and `load_result`,
//! `exceptions`, `modules` (`datetime`, `re`, `itertools`), JSON and YAML, `zip`, `set`,
//! `local_md5`, `print`, dbt's filters (`as_text`, `as_bool`, `as_number`, `as_native`) and
//! the run's identity (`invocation_id`, `run_started_at`, `flags`, `dbt_version`).

use std::sync::{Arc, OnceLock};

use super::macros::mapping;
use minijinja::value::{Kwargs, Object, Rest};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::adapter::statement_result;
use super::functions::{render_state, run_sql};

/// The dbt version dp answers `dbt_version` with: the dbt it follows.
pub(super) const DBT_VERSION: &str = "1.10.0";

/// The values of the root context this module gives, by name.
pub(super) fn values() -> Vec<(&'static str, Value)> {
    let run = run_identity();
    vec![
        ("exceptions", Value::from_object(Exceptions)),
        ("modules", Value::from_object(Modules)),
        ("invocation_id", Value::from(run.invocation_id.clone())),
        (
            "run_started_at",
            Value::from_object(DateTime(run.started_at)),
        ),
        ("dbt_version", Value::from(DBT_VERSION)),
        (
            "flags",
            mapping([
                ("FULL_REFRESH", Value::from(false)),
                ("WHICH", Value::from("build")),
                ("EMPTY", Value::from(false)),
                ("STORE_FAILURES", Value::from(false)),
            ]),
        ),
    ]
}

struct RunIdentity {
    invocation_id: String,
    started_at: chrono::DateTime<chrono::Utc>,
}

/// This process's run: one id and start time for every render.
fn run_identity() -> &'static RunIdentity {
    static RUN: OnceLock<RunIdentity> = OnceLock::new();
    RUN.get_or_init(|| RunIdentity {
        invocation_id: uuid::Uuid::new_v4().to_string(),
        started_at: chrono::Utc::now(),
    })
}

pub(super) fn register(env: &mut Environment<'static>) {
    env.add_global("statement", Value::from_object(Statement));
    env.add_function(
        "load_result",
        |state: &State, name: &str| -> Result<Value, Error> {
            let render = render_state(state)?;
            Ok(render
                .record(|r| r.statements.get(name).cloned())
                .unwrap_or(Value::from(())))
        },
    );
    env.add_function("tojson", |value: Value| -> Result<String, Error> {
        serde_json::to_string(&value).map_err(invalid)
    });
    env.add_function("fromjson", |text: &str| -> Result<Value, Error> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
        Ok(Value::from(minijinja::value::Serde(value)))
    });
    env.add_function("toyaml", |value: Value| -> Result<String, Error> {
        serde_yaml::to_string(&value).map_err(invalid)
    });
    env.add_function("fromyaml", |text: &str| -> Result<Value, Error> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(invalid)?;
        Ok(Value::from(minijinja::value::Serde(value)))
    });
    env.add_function("zip", |lists: Rest<Value>| -> Result<Value, Error> {
        let columns: Vec<Vec<Value>> = lists
            .iter()
            .map(|list| list.try_iter().map(Iterator::collect))
            .collect::<Result<_, _>>()?;
        let rows = columns.iter().map(Vec::len).min().unwrap_or(0);
        Ok(Value::from(
            (0..rows)
                .map(|i| Value::from(columns.iter().map(|c| c[i].clone()).collect::<Vec<_>>()))
                .collect::<Vec<_>>(),
        ))
    });
    // Python's set(): the distinct items, sorted, so that two sets of the same items are
    // equal (a Python set has no order to rely on).
    env.add_function("set", |items: Option<Value>| -> Result<Value, Error> {
        let mut distinct: Vec<Value> = match items {
            Some(items) => items.try_iter()?.collect(),
            None => Vec::new(),
        };
        distinct.sort();
        distinct.dedup();
        super::macros::mutable_list(Value::from(distinct))
    });
    env.add_function("local_md5", |text: &str| -> String {
        use md5::Digest;
        md5::Md5::digest(text.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    });
    env.add_function(
        "print",
        |state: &State, value: Value| -> Result<String, Error> {
            tracing::info!(message = %value, "template print");
            render_state(state)?.record(|r| r.messages.push(value.to_string()));
            Ok(String::new())
        },
    );
    env.add_filter("as_text", |value: Value| value.to_string());
    env.add_filter("as_bool", |value: Value| -> Value {
        match value.as_str().map(str::trim) {
            Some(text) if text.eq_ignore_ascii_case("true") => Value::from(true),
            Some(text) if text.eq_ignore_ascii_case("false") => Value::from(false),
            _ => value,
        }
    });
    env.add_filter("as_number", |value: Value| -> Value {
        let parsed = value.as_str().map(str::trim).and_then(|text| {
            text.parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| text.parse::<f64>().ok().map(Value::from))
        });
        parsed.unwrap_or(value)
    });
    env.add_filter("as_native", |value: Value| -> Value {
        let Some(text) = value.as_str() else {
            return value;
        };
        serde_yaml::from_str::<serde_yaml::Value>(text)
            .map(|v| Value::from(minijinja::value::Serde(v)))
            .unwrap_or(value)
    });
}

fn invalid(error: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, error.to_string())
}

/// `{% call statement(name, fetch_result=True) %} SQL {% endcall %}`: runs the SQL (at
/// execution time) and keeps its result for `load_result(name)`.
#[derive(Debug)]
struct Statement;

impl Object for Statement {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (positional, kwargs): (&[Value], Kwargs) = minijinja::value::from_args(args)?;
        let name = match positional.first() {
            Some(name) => Some(name.clone()),
            None => kwargs.get::<Option<Value>>("name")?,
        };
        let fetch = kwargs.get::<Option<bool>>("fetch_result")?.unwrap_or(false);
        for unused in ["auto_begin", "language"] {
            let _: Option<Value> = kwargs.get(unused)?;
        }
        let caller: Value = kwargs.get("caller")?;
        let sql = caller.call(state, &[])?.to_string();
        let render = render_state(state)?;
        let result = run_sql(&render, sql.trim().trim_end_matches(';'))?;
        if let Some(name) = name.filter(|n| !n.is_none()) {
            let kept = if fetch {
                statement_result(result)
            } else {
                statement_result(super::QueryResult::default())
            };
            render.record(|r| r.statements.insert(name.to_string(), kept));
        }
        Ok(Value::from(""))
    }
}

/// `exceptions.raise_compiler_error(message)` and `exceptions.warn(message)`.
#[derive(Debug)]
struct Exceptions;

impl Object for Exceptions {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let message = args.first().map(|v| v.to_string()).unwrap_or_default();
        match method {
            "warn" => {
                tracing::warn!(message = %message, "template warning");
                Ok(Value::from(""))
            }
            "raise_compiler_error" | "raise_not_implemented" | "raise_fail_fast_error" => {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `modules`: Python's `datetime`, `re` and `itertools` as far as dbt packages use them.
#[derive(Debug)]
struct Modules;

impl Object for Modules {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "datetime" => Some(Value::from_object(DateTimeModule)),
            "re" => Some(Value::from_object(Regex)),
            "itertools" => Some(Value::from_object(Itertools)),
            "pytz" => Some(mapping([("utc", Value::from("UTC"))])),
            _ => None,
        }
    }
}

/// `modules.datetime`: `datetime.now()`, `datetime.utcnow()`, `datetime.strptime()`,
/// `date.today()`, `timedelta(...)`.
#[derive(Debug)]
struct DateTimeModule;

impl Object for DateTimeModule {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "datetime" | "date" => Some(Value::from_object(DateTimeModule)),
            "timedelta" => Some(Value::from_function(
                |kwargs: Kwargs| -> Result<Value, Error> {
                    let mut seconds = 0f64;
                    for (key, scale) in [
                        ("weeks", 604_800.0),
                        ("days", 86_400.0),
                        ("hours", 3_600.0),
                        ("minutes", 60.0),
                        ("seconds", 1.0),
                    ] {
                        seconds += kwargs.get::<Option<f64>>(key)?.unwrap_or(0.0) * scale;
                    }
                    Ok(Value::from_object(TimeDelta(seconds)))
                },
            )),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "now" | "utcnow" | "today" => Ok(Value::from_object(DateTime(chrono::Utc::now()))),
            "strptime" => {
                let (text, format) = match args {
                    [text, format] => (text.to_string(), format.to_string()),
                    _ => return Err(invalid("strptime(text, format)")),
                };
                let parsed = chrono::NaiveDateTime::parse_from_str(&text, &format)
                    .or_else(|_| {
                        chrono::NaiveDate::parse_from_str(&text, &format)
                            .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                    })
                    .map_err(invalid)?;
                Ok(Value::from_object(DateTime(parsed.and_utc())))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// A point in time, as Python's datetime: `strftime`, `isoformat`, `year`..., `+`/`-` a
/// [`TimeDelta`] through `add`.
#[derive(Debug)]
struct DateTime(chrono::DateTime<chrono::Utc>);

impl Object for DateTime {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        use chrono::{Datelike, Timelike};
        let t = &self.0;
        Some(Value::from(match key.as_str()? {
            "year" => t.year() as i64,
            "month" => t.month() as i64,
            "day" => t.day() as i64,
            "hour" => t.hour() as i64,
            "minute" => t.minute() as i64,
            "second" => t.second() as i64,
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                use std::fmt::Write as _;
                let format = args.first().map(|f| f.to_string()).unwrap_or_default();
                let mut out = String::new();
                write!(out, "{}", self.0.format(&format))
                    .map_err(|_| invalid(format!("strftime: invalid format `{format}`")))?;
                Ok(Value::from(out))
            }
            "isoformat" => Ok(Value::from(
                self.0.naive_utc().to_string().replace(' ', "T"),
            )),
            "date" | "replace" | "astimezone" => Ok(Value::from_dyn_object(self.clone())),
            "timestamp" => Ok(Value::from(self.0.timestamp())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S%.6f"))
    }
}

/// A duration in seconds, as Python's timedelta.
#[derive(Debug)]
struct TimeDelta(f64);

impl Object for TimeDelta {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "days" => Some(Value::from((self.0 / 86_400.0).floor() as i64)),
            "seconds" => Some(Value::from((self.0 % 86_400.0) as i64)),
            _ => None,
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "total_seconds" => Ok(Value::from(self.0)),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `modules.re`: `match`, `search`, `fullmatch`, `findall`, `sub`, `split`, `escape`,
/// `compile` (with the `regex` crate's syntax, Python's for what packages write).
#[derive(Debug)]
struct Regex;

impl Object for Regex {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let flag = match key.as_str()? {
            "IGNORECASE" | "I" => 2,
            "MULTILINE" | "M" => 8,
            "DOTALL" | "S" => 16,
            "VERBOSE" | "X" => 64,
            _ => return None,
        };
        Some(Value::from(flag))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let text = |i: usize| args.get(i).map(|v| v.to_string()).unwrap_or_default();
        if method == "escape" {
            return Ok(Value::from(regex::escape(&text(0))));
        }
        let flags_at = match method {
            "sub" => 4,
            "compile" => 1,
            _ => 2,
        };
        let flags = args.get(flags_at).and_then(|f| f.as_i64()).unwrap_or(0);
        let compile = |pattern: &str| {
            regex::RegexBuilder::new(pattern)
                .case_insensitive(flags & 2 != 0)
                .multi_line(flags & 8 != 0)
                .dot_matches_new_line(flags & 16 != 0)
                .ignore_whitespace(flags & 64 != 0)
                .build()
                .map_err(invalid)
        };
        let compiled = compile(&text(0))?;
        let subject = text(1);
        let groups = |captures: regex::Captures<'_>| -> Value {
            let all: Vec<Value> = captures
                .iter()
                .map(|m| m.map_or(Value::from(()), |m| Value::from(m.as_str())))
                .collect();
            Value::from_object(Match(all))
        };
        Ok(match method {
            "compile" => Value::from(text(0)),
            "match" => compiled
                .captures(&subject)
                .filter(|c| c.get(0).is_some_and(|m| m.start() == 0))
                .map_or(Value::from(()), groups),
            "fullmatch" => compile(&format!("^(?:{})$", text(0)))?
                .captures(&subject)
                .map_or(Value::from(()), groups),
            "search" => compiled.captures(&subject).map_or(Value::from(()), groups),
            "findall" => Value::from(
                compiled
                    .captures_iter(&subject)
                    .map(|c| {
                        let m = c.get(1).or(c.get(0));
                        Value::from(m.map_or("", |m| m.as_str()))
                    })
                    .collect::<Vec<_>>(),
            ),
            "sub" => {
                let replacement = python_groups(&text(1));
                Value::from(
                    compiled
                        .replace_all(&text(2), replacement.as_str())
                        .into_owned(),
                )
            }
            "split" => Value::from(
                compiled
                    .split(&subject)
                    .map(Value::from)
                    .collect::<Vec<_>>(),
            ),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        })
    }
}

/// A Python replacement string (`\1`, `\g<1>`, `\g<name>`) as the `regex` crate's (`${1}`,
/// `${name}`; a literal `$` as `$$`).
fn python_groups(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len());
    let mut rest = replacement;
    while let Some(c) = rest.chars().next() {
        let group = rest
            .strip_prefix("\\g<")
            .and_then(|after| after.split_once('>'))
            .or_else(|| {
                let after = rest.strip_prefix('\\')?;
                after
                    .chars()
                    .next()
                    .filter(char::is_ascii_digit)
                    .map(|_| after.split_at(1))
            });
        match group {
            Some((name, after)) => {
                out.push_str(&format!("${{{name}}}"));
                rest = after;
            }
            None => {
                match c {
                    '$' => out.push_str("$$"),
                    _ => out.push(c),
                }
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// A regular expression's match: `group(n)`, `groups()`, truthy.
#[derive(Debug)]
struct Match(Vec<Value>);

impl Object for Match {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "group" => {
                let index = args.first().and_then(|i| i.as_usize()).unwrap_or(0);
                Ok(self.0.get(index).cloned().unwrap_or(Value::from(())))
            }
            "groups" => Ok(Value::from(self.0[1..].to_vec())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `modules.itertools`: `product`, `chain`, `combinations`.
#[derive(Debug)]
struct Itertools;

impl Object for Itertools {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if method == "combinations" {
            let (items, size) = match args {
                [items, size] => (items.try_iter()?.collect::<Vec<_>>(), size.as_usize()),
                _ => (Vec::new(), None),
            };
            let size = size.ok_or_else(|| invalid("combinations(items, size)"))?;
            return Ok(Value::from(
                combinations(&items, size)
                    .into_iter()
                    .map(Value::from)
                    .collect::<Vec<_>>(),
            ));
        }
        let lists: Vec<Vec<Value>> = args
            .iter()
            .map(|list| list.try_iter().map(Iterator::collect))
            .collect::<Result<_, _>>()?;
        Ok(Value::from(match method {
            "chain" => lists.into_iter().flatten().collect::<Vec<_>>(),
            "product" => lists
                .iter()
                .fold(vec![Vec::new()], |acc: Vec<Vec<Value>>, list| {
                    acc.iter()
                        .flat_map(|prefix| {
                            list.iter().map(move |item| {
                                let mut next = prefix.clone();
                                next.push(item.clone());
                                next
                            })
                        })
                        .collect()
                })
                .into_iter()
                .map(Value::from)
                .collect(),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }))
    }
}

/// Every way to pick `size` of `items`, in order.
fn combinations(items: &[Value], size: usize) -> Vec<Vec<Value>> {
    if size == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        for mut rest in combinations(&items[i + 1..], size - 1) {
            rest.insert(0, item.clone());
            out.push(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_replacements_read_as_the_regex_crate_reads_them() {
        assert_eq!(python_groups(r"_\1"), "_${1}");
        assert_eq!(python_groups(r"<\g<1>>"), "<${1}>");
        assert_eq!(python_groups(r"\g<name> a>b $5"), "${name} a>b $$5");
    }
}
