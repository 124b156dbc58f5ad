//! LOAD: the `data_tests:` entries of models, columns and source tables, read into
//! [`DataTest`]s. Each entry is a test's name, or a one-key mapping from the name to its
//! arguments and `config:`; arguments may sit under `arguments:` (dbt 1.10+) or beside `config:`.

use std::collections::BTreeMap;

use miette::SourceSpan;
use serde_yaml::Value;

use super::LoadError;
use crate::source::SourceFile;

/// The one identity of a node of the project: a model, or a declared source table
/// (`source.table`). Sources order before models.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeId {
    Source(String),
    Model(String),
}

/// The source and table of a source table's id `source.table`.
pub fn split_source_id(id: &str) -> (&str, &str) {
    id.split_once('.').unwrap_or(("", id))
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeId::Source(id) => write!(f, "source:{id}"),
            NodeId::Model(name) => f.write_str(name),
        }
    }
}

/// One assertion on the rows of a model or source table.
#[derive(Debug, Clone)]
pub struct DataTest {
    /// Unique in the project, such as `not_null_stg_events_event_id`.
    pub name: String,
    pub subject: NodeId,
    pub column: Option<String>,
    pub kind: DataTestKind,
    pub config: TestConfig,
    /// The YAML file that declares it, and where.
    pub file: SourceFile,
    pub at: SourceSpan,
}

impl DataTest {
    /// The relations the test reads besides its subject: a relationships test's parent, the
    /// `ref()`s and `source()`s a generic test macro is given.
    pub fn reads(&self) -> Vec<&NodeId> {
        match &self.kind {
            DataTestKind::Relationships { to, .. } => vec![to],
            DataTestKind::Macro { relations, .. } => relations.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// The built-in tests.
#[derive(Debug, Clone, PartialEq)]
pub enum DataTestKind {
    /// The column holds no null.
    NotNull,
    /// No value of the column appears twice.
    Unique,
    /// Every non-null value of the column is one of `values`.
    AcceptedValues { values: Vec<Value>, quote: bool },
    /// Every non-null value of the column is a value of `field` in `to`.
    Relationships { to: NodeId, field: String },
    /// Every row satisfies the SQL `expression` (after the column name, on a column).
    ExpressionIsTrue { expression: String },
    /// No combination of values of `columns` appears twice.
    UniqueCombinationOfColumns { columns: Vec<String> },
    /// The row count is within `min..=max`.
    RowCount { min: Option<u64>, max: Option<u64> },
    /// A generic test macro of the project or a package (`{% test name(model, ...) %}`),
    /// rendered with the test's arguments into the query of the failing rows.
    Macro {
        test: super::TestMacro,
        arguments: BTreeMap<String, Value>,
        /// The relations its arguments name (`compare_model: ref('x')`).
        relations: Vec<NodeId>,
    },
}

const BUILT_INS: [&str; 7] = [
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "expression_is_true",
    "unique_combination_of_columns",
    "row_count",
];

/// How a test's failures are judged and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestConfig {
    pub severity: Severity,
    /// When failures make a warning (default `!=0`).
    pub warn_if: Threshold,
    /// When failures make an error, for an error-severity test (default `!=0`).
    pub error_if: Threshold,
    /// A SQL condition: only rows that meet it are tested.
    pub filter: Option<String>,
    /// How many failing rows are kept under target/test_failures/ (default: all).
    pub limit: Option<u64>,
    /// `enabled: false`: the test is left out.
    pub enabled: bool,
    /// The SQL aggregate over the failing rows that counts the failures (dbt's `fail_calc`,
    /// default `count(*)`).
    pub fail_calc: Option<String>,
}

impl Default for TestConfig {
    fn default() -> Self {
        Self {
            severity: Severity::Error,
            warn_if: Threshold::ANY,
            error_if: Threshold::ANY,
            filter: None,
            limit: None,
            enabled: true,
            fail_calc: None,
        }
    }
}

/// Whether a failing test stops the model (`error`) or only warns (`warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warn,
}

/// A condition on a failure count, such as `>10` or `!=0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    op: Comparison,
    value: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Threshold {
    /// Any failure at all: `!=0`.
    pub const ANY: Threshold = Threshold {
        op: Comparison::Ne,
        value: 0,
    };

    /// Read `>0`, `>= 10`, `!=0`, `=0`, `<5`...
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (op, rest) = [
            (">=", Comparison::Ge),
            ("<=", Comparison::Le),
            ("!=", Comparison::Ne),
            ("<>", Comparison::Ne),
            ("==", Comparison::Eq),
            (">", Comparison::Gt),
            ("<", Comparison::Lt),
            ("=", Comparison::Eq),
        ]
        .into_iter()
        .find_map(|(symbol, op)| text.strip_prefix(symbol).map(|rest| (op, rest)))?;
        Some(Self {
            op,
            value: rest.trim().parse().ok()?,
        })
    }

    /// Whether `count` meets the condition.
    pub fn holds(&self, count: u64) -> bool {
        match self.op {
            Comparison::Eq => count == self.value,
            Comparison::Ne => count != self.value,
            Comparison::Gt => count > self.value,
            Comparison::Ge => count >= self.value,
            Comparison::Lt => count < self.value,
            Comparison::Le => count <= self.value,
        }
    }
}

/// Where a test entry was declared.
pub(super) struct Declared<'a> {
    pub subject: NodeId,
    pub column: Option<&'a str>,
    pub file: &'a SourceFile,
    /// Where the subject's entry starts in the file.
    pub from: usize,
    /// The config `data_tests:` of the project file gives the tests of this file's folder; the
    /// test's own config wins.
    pub defaults: &'a BTreeMap<String, Value>,
    /// The generic tests the project's and its packages' macros define.
    pub generic_tests: &'a super::GenericTests,
}

/// Read one `data_tests:` entry; and whether it gives arguments beside the test's name, the
/// layout dbt 1.10 deprecates.
pub(super) fn parse(entry: &Value, declared: &Declared<'_>) -> Result<(DataTest, bool), LoadError> {
    let (test_name, body) = match entry {
        Value::String(name) => (name.clone(), Value::Null),
        Value::Mapping(map) if map.len() == 1 => {
            let (key, body) = map.iter().next().expect("one entry");
            let Some(name) = key.as_str() else {
                return Err(invalid(declared, "", "a test is named by a string"));
            };
            (name.to_string(), body.clone())
        }
        _ => {
            return Err(invalid(
                declared,
                "",
                "a test is a name (`- not_null`) or a mapping from its name to its arguments",
            ));
        }
    };
    let at = declared.file.find(&test_name, line_of(declared));
    let fail = |message: String| LoadError::InvalidTest {
        message,
        src: declared.file.named(),
        at,
        help: None,
    };
    let built_in = BUILT_INS.contains(&test_name.as_str());
    let test_macro = declared.generic_tests.resolve(&test_name, built_in);
    if !built_in && test_macro.is_none() {
        let mut known: Vec<String> = BUILT_INS.iter().map(|s| s.to_string()).collect();
        known.extend(declared.generic_tests.names());
        return Err(LoadError::InvalidTest {
            message: format!("unknown test `{test_name}`"),
            help: crate::source::did_you_mean(&test_name, known.iter().map(String::as_str))
                .or_else(|| {
                    Some(format!(
                        "tests: {}; a package's tests need `dp deps`",
                        known.join(", ")
                    ))
                }),
            src: declared.file.named(),
            at,
        });
    }

    // Split the body into arguments and config, in either of dbt's two layouts.
    let mut arguments = BTreeMap::new();
    let mut config = declared.defaults.clone();
    let mut custom_name = None;
    let mut arguments_beside = false;
    if let Value::Mapping(map) = &body {
        for (key, value) in map {
            let key = key.as_str().unwrap_or_default();
            match key {
                "arguments" => arguments.extend(mapping(value, "arguments").map_err(&fail)?),
                "config" => config.extend(mapping(value, "config").map_err(&fail)?),
                "name" => custom_name = value.as_str().map(str::to_string),
                "severity" | "warn_if" | "error_if" | "where" | "limit" | "fail_calc"
                | "store_failures" | "tags" | "meta" | "enabled" => {
                    config.insert(key.to_string(), value.clone());
                }
                _ => {
                    arguments_beside = true;
                    arguments.insert(key.to_string(), value.clone());
                }
            }
        }
    } else if !body.is_null() {
        return Err(fail(format!(
            "the arguments of `{test_name}` must be a mapping"
        )));
    }

    // A model's test may name its column as an argument, as dbt allows.
    let column_argument = arguments
        .remove("column_name")
        .and_then(|value| value.as_str().map(str::to_string));
    let column = declared.column.map(str::to_string).or(column_argument);
    let needs_column = |column: &Option<String>| {
        column.is_none().then(|| {
            fail(format!(
                "`{test_name}` tests a column: declare it under `columns:`"
            ))
        })
    };
    let mut take = |key: &str| arguments.remove(key);
    let kind = match (test_macro, test_name.as_str()) {
        (Some(test), _) => DataTestKind::Macro {
            test,
            relations: arguments
                .values()
                .filter_map(|value| value.as_str().and_then(parse_relation))
                .collect(),
            arguments: std::mem::take(&mut arguments),
        },
        (None, name) => match name {
            "not_null" | "unique" => {
                if let Some(error) = needs_column(&column) {
                    return Err(error);
                }
                if test_name == "unique" {
                    DataTestKind::Unique
                } else {
                    DataTestKind::NotNull
                }
            }
            "accepted_values" => {
                if let Some(error) = needs_column(&column) {
                    return Err(error);
                }
                let values = match take("values") {
                    Some(Value::Sequence(values)) if !values.is_empty() => values,
                    _ => return Err(fail("accepted_values needs `values: [...]`".into())),
                };
                let quote = match take("quote") {
                    None => true,
                    Some(Value::Bool(quote)) => quote,
                    Some(_) => return Err(fail("`quote` must be true or false".into())),
                };
                DataTestKind::AcceptedValues { values, quote }
            }
            "relationships" => {
                if let Some(error) = needs_column(&column) {
                    return Err(error);
                }
                let to = take("to")
                    .and_then(|v| v.as_str().and_then(parse_relation))
                    .ok_or_else(|| {
                        fail(
                        "relationships needs `to: ref('model')` or `to: source('source', 'table')`"
                            .into(),
                    )
                    })?;
                let field = string(take("field"))
                    .ok_or_else(|| fail("relationships needs `field: <column>`".into()))?;
                DataTestKind::Relationships { to, field }
            }
            "expression_is_true" => {
                let expression = string(take("expression"))
                    .ok_or_else(|| fail("expression_is_true needs `expression: \"...\"`".into()))?;
                DataTestKind::ExpressionIsTrue { expression }
            }
            "unique_combination_of_columns" => {
                let columns: Vec<String> = match take("combination_of_columns") {
                    Some(Value::Sequence(columns)) => columns
                        .iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                if columns.is_empty() {
                    return Err(fail(
                        "unique_combination_of_columns needs `combination_of_columns: [...]`"
                            .into(),
                    ));
                }
                DataTestKind::UniqueCombinationOfColumns { columns }
            }
            "row_count" => {
                let bound = |value: Option<Value>, key: &str| match value {
                    None => Ok(None),
                    Some(value) => value
                        .as_u64()
                        .map(Some)
                        .ok_or_else(|| fail(format!("row_count `{key}` must be a whole number"))),
                };
                let min = bound(take("min"), "min")?;
                let max = bound(take("max"), "max")?;
                if min.is_none() && max.is_none() {
                    return Err(fail("row_count needs `min:`, `max:` or both".into()));
                }
                DataTestKind::RowCount { min, max }
            }
            _ => unreachable!("checked against BUILT_INS"),
        },
    };
    if let Some(extra) = arguments.keys().next() {
        return Err(fail(format!("`{test_name}` has no argument `{extra}`")));
    }
    let config = parse_config(&config).map_err(&fail)?;
    let name = custom_name
        .unwrap_or_else(|| default_name(&test_name, &declared.subject, column.as_deref(), &kind));
    let test = DataTest {
        name,
        subject: declared.subject.clone(),
        column,
        kind,
        config,
        file: declared.file.clone(),
        at,
    };
    Ok((test, arguments_beside))
}

fn invalid(declared: &Declared<'_>, needle: &str, message: &str) -> LoadError {
    LoadError::InvalidTest {
        message: message.to_string(),
        src: declared.file.named(),
        at: declared.file.find(needle, line_of(declared)),
        help: None,
    }
}

/// Where to start looking for a test in its file: at its column's or subject's name.
fn line_of(declared: &Declared<'_>) -> usize {
    let name = match (&declared.subject, declared.column) {
        (_, Some(column)) => column.to_string(),
        (NodeId::Model(name), None) => name.clone(),
        (NodeId::Source(id), None) => id.rsplit('.').next().unwrap_or(id).to_string(),
    };
    // `name: revenue`, not the `revenue` in `customer_revenue` before it.
    declared.file.find_name(&name, declared.from).offset()
}

fn mapping(value: &Value, what: &str) -> Result<BTreeMap<String, Value>, String> {
    match value {
        Value::Mapping(map) => Ok(map
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
            .collect()),
        Value::Null => Ok(BTreeMap::new()),
        _ => Err(format!("`{what}` must be a mapping")),
    }
}

fn string(value: Option<Value>) -> Option<String> {
    value.and_then(|v| v.as_str().map(str::to_string))
}

pub(super) fn parse_config(config: &BTreeMap<String, Value>) -> Result<TestConfig, String> {
    let mut parsed = TestConfig::default();
    for (key, value) in config {
        match key.as_str() {
            "enabled" => {
                parsed.enabled = value.as_bool().ok_or("`enabled` is true or false")?;
                continue;
            }
            // dbt's, with no meaning for dp's tests (failing rows are always kept).
            "tags" | "meta" | "store_failures" | "store_failures_as" | "alias" | "schema"
            | "database" => continue,
            _ => {}
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(format!("config `{key}` must be a string or a number")),
        };
        match key.as_str() {
            "severity" => {
                parsed.severity = match text.to_ascii_lowercase().as_str() {
                    "error" => Severity::Error,
                    "warn" => Severity::Warn,
                    _ => return Err(format!("severity must be `error` or `warn`, not `{text}`")),
                }
            }
            "warn_if" | "error_if" => {
                let threshold = Threshold::parse(&text).ok_or_else(|| {
                    format!("{key} must be a comparison such as \">0\" or \">=10\", not `{text}`")
                })?;
                if key == "warn_if" {
                    parsed.warn_if = threshold;
                } else {
                    parsed.error_if = threshold;
                }
            }
            "where" => parsed.filter = Some(text),
            "fail_calc" => parsed.fail_calc = Some(text),
            "limit" => {
                parsed.limit = Some(
                    text.parse()
                        .map_err(|_| format!("limit must be a whole number, not `{text}`"))?,
                )
            }
            _ => {
                return Err(format!(
                    "unknown config key `{key}` (severity, warn_if, error_if, where, limit, fail_calc, enabled)"
                ));
            }
        }
    }
    Ok(parsed)
}

/// `ref('x')` or `source('a', 'b')`, with either kind of quotes.
pub fn parse_relation(text: &str) -> Option<NodeId> {
    let text = text.trim();
    let (function, rest) = text.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let args: Vec<&str> = inner
        .split(',')
        .map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"'))
        .collect();
    match (function.trim(), args.as_slice()) {
        ("ref", [model]) if !model.is_empty() => Some(NodeId::Model(model.to_string())),
        ("source", [source, table]) if !source.is_empty() && !table.is_empty() => {
            Some(NodeId::Source(format!("{source}.{table}")))
        }
        _ => None,
    }
}

/// dbt's way of naming a test: `<test>_<subject>_<column>`, plus what sets it apart.
fn default_name(test: &str, subject: &NodeId, column: Option<&str>, kind: &DataTestKind) -> String {
    let subject = match subject {
        NodeId::Model(name) => name.clone(),
        NodeId::Source(id) => format!("source_{}", id.replace('.', "_")),
    };
    let mut parts = vec![test.to_string(), subject];
    parts.extend(column.map(str::to_string));
    match kind {
        DataTestKind::UniqueCombinationOfColumns { columns } => parts.push(columns.join("__")),
        DataTestKind::ExpressionIsTrue { expression } => parts.push(expression.clone()),
        DataTestKind::Relationships { to, field } => {
            parts.push(format!("{}__{field}", to.to_string().replace(':', "_")))
        }
        DataTestKind::Macro { arguments, .. } => {
            parts.extend(arguments.values().map(|value| match value {
                Value::String(text) => text.clone(),
                other => serde_yaml::to_string(other).unwrap_or_default(),
            }))
        }
        _ => {}
    }
    let name: String = parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut collapsed = String::with_capacity(name.len());
    for c in name.chars() {
        if !(c == '_' && collapsed.ends_with("__")) {
            collapsed.push(c);
        }
    }
    collapsed.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(yaml: &str, column: Option<&str>) -> Result<DataTest, LoadError> {
        let file = SourceFile::new("models/schema.yml", yaml);
        let value: Value = serde_yaml::from_str(yaml).unwrap();
        parse(
            &value,
            &Declared {
                subject: NodeId::Model("orders".into()),
                column,
                file: &file,
                from: 0,
                defaults: &BTreeMap::new(),
                generic_tests: &Default::default(),
            },
        )
        .map(|(test, _)| test)
    }

    #[test]
    fn both_layouts_of_arguments_read_the_same() {
        let new = parse_one(
            "accepted_values: {arguments: {values: [a, b]}, config: {severity: warn}}",
            Some("status"),
        )
        .unwrap();
        let old = parse_one(
            "accepted_values: {values: [a, b], severity: warn}",
            Some("status"),
        )
        .unwrap();
        assert_eq!(new.kind, old.kind);
        assert_eq!(new.config, old.config);
        assert_eq!(new.config.severity, Severity::Warn);
        assert_eq!(new.name, "accepted_values_orders_status");
        let beside = |yaml: &str| {
            let file = SourceFile::new("models/schema.yml", yaml);
            let declared = Declared {
                subject: NodeId::Model("orders".into()),
                column: Some("status"),
                file: &file,
                from: 0,
                defaults: &BTreeMap::new(),
                generic_tests: &Default::default(),
            };
            parse(&serde_yaml::from_str(yaml).unwrap(), &declared)
                .unwrap()
                .1
        };
        assert!(!beside(
            "accepted_values: {arguments: {values: [a]}, config: {severity: warn}}"
        ));
        assert!(beside("accepted_values: {values: [a], severity: warn}"));
        assert!(!beside("not_null"));
    }

    #[test]
    fn thresholds_read_dbt_comparisons() {
        assert!(Threshold::parse(">10").unwrap().holds(11));
        assert!(!Threshold::parse("> 10").unwrap().holds(10));
        assert!(Threshold::parse("!=0").unwrap().holds(1));
        assert!(Threshold::parse(">=5").unwrap().holds(5));
        assert!(Threshold::parse("ten").is_none());
    }

    #[test]
    fn mistakes_in_a_test_are_load_errors() {
        assert!(parse_one("not_nul", Some("id")).is_err());
        assert!(parse_one("not_null", None).is_err());
        assert!(parse_one("row_count: {}", None).is_err());
        assert!(parse_one("accepted_values: {values: [a], colour: red}", Some("id")).is_err());
        assert!(parse_one("unique: {config: {severity: fatal}}", Some("id")).is_err());
    }

    #[test]
    fn relations_are_refs_or_sources() {
        assert_eq!(
            parse_relation("ref('users')"),
            Some(NodeId::Model("users".into()))
        );
        assert_eq!(
            parse_relation("source(\"raw\", 'users')"),
            Some(NodeId::Source("raw.users".into()))
        );
        assert_eq!(parse_relation("users"), None);
    }
}
