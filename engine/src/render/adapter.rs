//! dbt's adapter API as a template sees it, answered from what dp knows: relations (`this`,
//! `ref()`, `api.Relation.create`), `adapter.dispatch`, `adapter.get_columns_in_relation` (the
//! columns of a query over the relation, at execution time), `adapter.get_relation`,
//! `adapter.quote` and the calls that mean nothing for Delta tables.

use std::sync::Arc;

use super::macros::mapping;
use minijinja::value::{Kwargs, Object, ObjectRepr};
use minijinja::{Error, ErrorKind, State, Value};

use super::functions::{QueryTable, render_state, run_sql};
use super::macros::MacroIndex;
use crate::source::quote_identifier as quote;

/// A relation, as dbt's: `database`, `schema`, `identifier` (also `name`, `table`), a
/// mapping whose `metadata.type` ends in `Relation`; it renders as the SQL that reads it.
#[derive(Debug, Clone, Default)]
pub(super) struct Relation {
    pub database: Option<String>,
    pub schema: Option<String>,
    pub identifier: Option<String>,
    /// `table` or `view`.
    pub kind: &'static str,
    /// What it renders as: the quoted table name a session knows it by.
    pub sql: String,
}

impl Relation {
    /// A model's table (`ref('x')`, `this`).
    pub fn model(name: &str) -> Self {
        Relation {
            identifier: Some(name.to_string()),
            kind: "table",
            sql: quote(name),
            ..Default::default()
        }
    }

    /// The rows a test runs on: `sql` reads them (a relation, or a subquery with its alias).
    pub fn tested(name: &str, sql: &str) -> Self {
        Relation {
            identifier: Some(name.to_string()),
            kind: "table",
            sql: sql.to_string(),
            ..Default::default()
        }
    }

    /// A source table (`source('s', 't')`), read as `"s"."t"`.
    pub fn source(source: &str, table: &str) -> Self {
        Relation {
            schema: Some(source.to_string()),
            identifier: Some(table.to_string()),
            kind: "table",
            sql: format!("{}.{}", quote(source), quote(table)),
            ..Default::default()
        }
    }

    /// `api.Relation.create(database=, schema=, identifier=, type=)`.
    fn create(kwargs: &Kwargs) -> Result<Self, Error> {
        let text = |key: &str| -> Result<Option<String>, Error> {
            Ok(kwargs
                .get::<Option<Value>>(key)?
                .filter(|v| !v.is_none() && !v.is_undefined())
                .map(|v| v.to_string()))
        };
        let identifier = text("identifier")?;
        let relation = Relation {
            database: text("database")?,
            schema: text("schema")?,
            sql: identifier.as_deref().map(quote).unwrap_or_default(),
            identifier,
            kind: if text("type")?.as_deref() == Some("view") {
                "view"
            } else {
                "table"
            },
        };
        Ok(relation)
    }
}

impl Object for Relation {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let text = |value: &Option<String>| Value::from(value.clone());
        Some(match key.as_str()? {
            "database" => text(&self.database),
            "schema" => text(&self.schema),
            "identifier" | "name" | "table" => text(&self.identifier),
            "type" => Value::from(self.kind),
            "is_table" => Value::from(self.kind == "table"),
            "is_view" => Value::from(self.kind == "view"),
            "is_cte" => Value::from(false),
            "metadata" => mapping([("type", Value::from("DpRelation"))]),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["database", "schema", "identifier", "metadata"])
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "render" => Ok(Value::from(self.sql.clone())),
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                Ok(self
                    .get_value(&key)
                    .or_else(|| args.get(1).cloned())
                    .unwrap_or(Value::from(())))
            }
            // Quoting, schemas and databases mean nothing for a table of dp's warehouse.
            "include" | "quote" | "without_identifier" | "without_quote" => {
                Ok(Value::from_dyn_object(self.clone()))
            }
            "incorporate" => {
                let (_, kwargs): (&[Value], Kwargs) = minijinja::value::from_args(args)?;
                let mut relation = (**self).clone();
                if let Some(path) = kwargs.get::<Option<Value>>("path")?
                    && let Ok(identifier) = path.get_attr("identifier")
                    && !identifier.is_undefined()
                    && !identifier.is_none()
                {
                    relation.sql = quote(&identifier.to_string());
                    relation.identifier = Some(identifier.to_string());
                }
                if let Some(kind) = kwargs.get::<Option<String>>("type")? {
                    relation.kind = if kind == "view" { "view" } else { "table" };
                }
                Ok(Value::from_object(relation))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql)
    }
}

/// `adapter.get_relation(database, schema, identifier)`: the model named `identifier`, or the
/// source table `schema.identifier`; none when there is no such node, or when, in a build, its
/// table cannot be read (not built yet).
fn existing(state: &State, schema: Option<&str>, identifier: &str) -> Result<Value, Error> {
    let render = render_state(state)?;
    let relation = if render.known.models.contains(identifier) {
        Relation::model(identifier)
    } else {
        match schema {
            Some(schema)
                if render
                    .known
                    .sources
                    .contains(&format!("{schema}.{identifier}")) =>
            {
                Relation::source(schema, identifier)
            }
            _ => return Ok(Value::from(())),
        }
    };
    // While dp plans (no queries run) the node is taken to exist; a build renders again.
    match run_sql(&render, &format!("select * from {} limit 0", relation.sql)) {
        Ok(_) => Ok(Value::from_object(relation)),
        Err(_) => Ok(Value::from(())),
    }
}

/// `adapter`: dispatch, quoting, and the relations' columns.
#[derive(Debug)]
pub(super) struct Adapter {
    pub index: Arc<MacroIndex>,
}

impl Object for Adapter {
    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let (positional, kwargs): (&[Value], Kwargs) = minijinja::value::from_args(args)?;
        let arg = |index: usize, key: &str| -> Result<Option<Value>, Error> {
            match positional.get(index) {
                Some(value) => Ok(Some(value.clone())),
                None => kwargs.get::<Option<Value>>(key),
            }
        };
        let result = match method {
            "dispatch" => {
                let name = arg(0, "macro_name")?
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let namespace = arg(1, "macro_namespace")?
                    .filter(|v| !v.is_none())
                    .map(|v| v.to_string());
                let found = self
                    .index
                    .dispatch(&name, namespace.as_deref())
                    .map_err(|message| Error::new(ErrorKind::InvalidOperation, message))?;
                Value::from_object(found)
            }
            "quote" => Value::from(quote(
                &arg(0, "identifier")?.unwrap_or_default().to_string(),
            )),
            "get_columns_in_relation" => {
                let relation = arg(0, "relation")?.unwrap_or_default();
                columns_of(state, &relation.to_string())?
            }
            "get_missing_columns" => {
                let from = columns_of(
                    state,
                    &arg(0, "from_relation")?.unwrap_or_default().to_string(),
                )?;
                let to = columns_of(
                    state,
                    &arg(1, "to_relation")?.unwrap_or_default().to_string(),
                )?;
                let present: Vec<String> = to
                    .try_iter()?
                    .map(|c| c.get_attr("name").map(|n| n.to_string().to_lowercase()))
                    .collect::<Result<_, _>>()?;
                let missing: Vec<Value> = from
                    .try_iter()?
                    .filter(|c| {
                        c.get_attr("name")
                            .is_ok_and(|n| !present.contains(&n.to_string().to_lowercase()))
                    })
                    .collect();
                Value::from(missing)
            }
            // Every relation a template can name is a table of the warehouse or a source.
            "get_relation" => {
                let text =
                    |value: Option<Value>| value.filter(|v| !v.is_none()).map(|v| v.to_string());
                let schema = text(arg(1, "schema")?);
                let identifier = text(arg(2, "identifier")?).unwrap_or_default();
                existing(state, schema.as_deref(), &identifier)?
            }
            "load_relation" => {
                let relation = arg(0, "relation")?.unwrap_or_default();
                match relation.downcast_object_ref::<Relation>() {
                    Some(relation) => Value::from_object(relation.clone()),
                    None => Value::from_object(Relation::model(&relation.to_string())),
                }
            }
            "drop_relation" | "truncate_relation" | "rename_relation" | "commit"
            | "create_schema" | "drop_schema" => {
                tracing::warn!(
                    call = method,
                    "adapter.{method}() does nothing in dp: a model's table changes only by a build's commit"
                );
                Value::from(())
            }
            "type" => Value::from("dp"),
            "already_exists" | "check_schema_exists" => Value::from(true),
            _ => {
                return Err(Error::new(
                    ErrorKind::UnknownMethod,
                    format!("dp's adapter has no {method}()"),
                ));
            }
        };
        Ok(result)
    }
}

/// The columns of `relation` (SQL that reads it) as dbt's Column objects: at execution time,
/// from a query over it; while dp plans, none (the model renders again when it runs).
fn columns_of(state: &State, relation: &str) -> Result<Value, Error> {
    let result = run_sql(
        &*render_state(state)?,
        &format!("select * from {relation} limit 0"),
    )?;
    Ok(Value::from(
        result
            .columns
            .iter()
            .zip(&result.types)
            .map(|(name, data_type)| {
                Value::from_object(Column {
                    name: name.clone(),
                    data_type: data_type.clone(),
                })
            })
            .collect::<Vec<_>>(),
    ))
}

/// A column as dbt's `Column`: `name`, `column`, `quoted`, `data_type`, `dtype`, and the
/// type tests (`is_string()`, `is_number()`...).
#[derive(Debug)]
pub(super) struct Column {
    pub name: String,
    pub data_type: String,
}

impl Object for Column {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "name" | "column" => Value::from(self.name.clone()),
            "quoted" => Value::from(quote(&self.name)),
            "data_type" | "dtype" => Value::from(self.data_type.clone()),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["name", "data_type"])
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        _args: &[Value],
    ) -> Result<Value, Error> {
        let t = self.data_type.to_lowercase();
        let integer = ["int", "bigint", "smallint", "tinyint"]
            .iter()
            .any(|p| t.starts_with(p));
        let float = ["double", "real", "float"].iter().any(|p| t.starts_with(p));
        let numeric = t.starts_with("decimal") || t.starts_with("numeric");
        Ok(Value::from(match method {
            "is_string" => t.contains("char") || t == "text" || t == "string",
            "is_integer" => integer,
            "is_float" => float,
            "is_numeric" => numeric,
            "is_number" => integer || float || numeric,
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }))
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// `api`: `api.Relation.create(...)` and `api.Column(...)`.
#[derive(Debug)]
pub(super) struct Api;

impl Object for Api {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "Relation" => Some(Value::from_object(RelationFactory)),
            "Column" => Some(Value::from_object(ColumnFactory)),
            _ => None,
        }
    }
}

/// `api.Column`: `translate_type(name)` gives the SQL type dp writes for dbt's type name.
#[derive(Debug)]
struct ColumnFactory;

impl Object for ColumnFactory {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let name = args.first().map(|v| v.to_string()).unwrap_or_default();
        match method {
            "translate_type" => Ok(Value::from(match name.to_lowercase().as_str() {
                "string" | "text" => "varchar".to_string(),
                "float" => "double".to_string(),
                _ => name,
            })),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// `api.Relation`.
#[derive(Debug)]
struct RelationFactory;

impl Object for RelationFactory {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let (_, kwargs): (&[Value], Kwargs) = minijinja::value::from_args(args)?;
        match method {
            "create" => Ok(Value::from_object(Relation::create(&kwargs)?)),
            "add_ephemeral_prefix" => Ok(Value::from(format!(
                "__dbt__cte__{}",
                args.first().map(|v| v.to_string()).unwrap_or_default()
            ))),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

/// dbt's `load_result` value of a statement's rows: `table`, `data` and `response`.
pub(super) fn statement_result(result: super::QueryResult) -> Value {
    let data: Vec<Value> = result
        .rows
        .iter()
        .map(|row| Value::from(super::functions::typed_row(&result, row)))
        .collect();
    let rows = result.rows.len();
    mapping([
        ("table", Value::from_object(QueryTable(result))),
        ("data", Value::from(data)),
        (
            "response",
            mapping([
                ("rows_affected", Value::from(rows)),
                ("code", Value::from("SELECT")),
            ]),
        ),
    ])
}
