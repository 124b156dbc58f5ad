//! SESSION: contracts, a relation's columns against the declared ones (`columns:` with `data_type`). A
//! missing, extra or retyped column is the seed's "schema change": the model stops before it
//! writes anything.

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion::prelude::SessionContext;

use crate::project::ColumnProperties;

/// The declared columns of a model or source table.
#[derive(Debug, Clone, Copy)]
pub struct Contract<'a> {
    pub columns: &'a [ColumnProperties],
    /// Columns the relation may have without declaring them (a source's hive partition columns).
    pub undeclared_allowed: &'a [String],
    /// An enforced model contract: every declared column needs a `data_type`. (A source's
    /// columns are a contract only when they declare types.)
    pub enforced: bool,
}

/// How a relation's columns differ from its contract, one line per difference.
#[derive(Debug, Clone)]
pub struct ContractError {
    pub differences: Vec<String>,
}

impl std::fmt::Display for ContractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.differences.join("\n"))
    }
}

/// Compare `actual` with the contract; a contract with no `data_type` declares nothing.
pub async fn check_contract(
    session: &SessionContext,
    contract: Contract<'_>,
    actual: &Schema,
) -> Result<(), ContractError> {
    if !contract.enforced && contract.columns.iter().all(|c| c.data_type.is_none()) {
        return Ok(());
    }
    let mut differences = Vec::new();
    for column in contract.columns {
        let Some(declared) = &column.data_type else {
            if contract.enforced {
                differences.push(format!("`{}`: declared without a data_type", column.name));
            }
            continue;
        };
        let expected = match sql_type(session, declared).await {
            Ok(expected) => expected,
            Err(error) => {
                differences.push(format!(
                    "`{}`: `{declared}` is not a type DataFusion knows ({error})",
                    column.name
                ));
                continue;
            }
        };
        match actual.field_with_name(&column.name) {
            Err(_) => differences.push(format!(
                "`{}`: expected {declared} ({expected}), found no such column",
                column.name
            )),
            Ok(field) if !same_type(&expected, field.data_type()) => differences.push(format!(
                "`{}`: expected {declared} ({expected}), found {}",
                column.name,
                field.data_type()
            )),
            Ok(_) => {}
        }
    }
    for field in actual.fields() {
        let declared = contract.columns.iter().any(|c| &c.name == field.name());
        if !declared && !contract.undeclared_allowed.contains(field.name()) {
            differences.push(format!(
                "`{}`: not declared, found {}",
                field.name(),
                field.data_type()
            ));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(ContractError { differences })
    }
}

/// The arrow type DataFusion gives a SQL type name, as its own CAST would.
pub async fn sql_type(session: &SessionContext, sql_type: &str) -> Result<DataType, String> {
    let plan = session
        .state()
        .create_logical_plan(&format!("select cast(null as {sql_type}) as t"))
        .await
        .map_err(|e| e.strip_backtrace())?;
    Ok(plan.schema().field(0).data_type().clone())
}

/// Whether two types are the same as far as a contract goes: one string type is as good as
/// another, a timestamp is a timestamp whatever its unit and zone; numbers keep their width and
/// decimals their precision and scale.
fn same_type(expected: &DataType, found: &DataType) -> bool {
    use DataType::*;
    let strip = |t: &DataType| match t {
        Dictionary(_, value) => value.as_ref().clone(),
        other => other.clone(),
    };
    match (strip(expected), strip(found)) {
        (Utf8 | Utf8View | LargeUtf8, Utf8 | Utf8View | LargeUtf8) => true,
        (Binary | BinaryView | LargeBinary, Binary | BinaryView | LargeBinary) => true,
        (Timestamp(..), Timestamp(..)) => true,
        (Date32 | Date64, Date32 | Date64) => true,
        (a, b) => a == b,
    }
}

/// The SQL name of an Arrow type, as a model's YAML would declare it.
pub fn sql_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "varchar".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 => "tinyint unsigned".into(),
        DataType::UInt16 => "smallint unsigned".into(),
        DataType::UInt32 => "int unsigned".into(),
        DataType::UInt64 => "bigint unsigned".into(),
        DataType::Float32 => "real".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(unit, zone) => {
            let precision = match unit {
                TimeUnit::Second => "(0)",
                TimeUnit::Millisecond => "(3)",
                TimeUnit::Microsecond => "",
                TimeUnit::Nanosecond => "(9)",
            };
            let zone = if zone.is_some() {
                " with time zone"
            } else {
                ""
            };
            format!("timestamp{precision}{zone}")
        }
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary => "bytea".into(),
        DataType::Dictionary(_, values) => sql_name(values),
        DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
            format!("{}[]", sql_name(item.data_type()))
        }
        other => other.to_string().to_lowercase(),
    }
}
