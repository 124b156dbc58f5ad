//! Table schemas: the arrow types a model's output is stored as, and how a published table's
//! columns are compared with a new build's.

use std::sync::Arc;

use datafusion::arrow::array::new_null_array;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use deltalake::DeltaTableError;
use deltalake::kernel::StructField;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};

/// The schema a table stores `output` as: types Delta supports, every column nullable.
pub(super) fn table_schema(output: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = output
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), storage_type(f.data_type()), true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The Delta type for an arrow type DataFusion may produce.
fn storage_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, value) => storage_type(value),
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Date64 => DataType::Date32,
        // Delta's timestamp is an instant, stored as UTC: any zone's instants are the same
        // values labelled "UTC" (Delta knows no other label, not even "+00:00").
        DataType::Timestamp(_, Some(_)) => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Null => DataType::Utf8,
        other => other.clone(),
    }
}

/// `schema` as a Delta table stores it and reads it back: the types and field names a published
/// table's schema has (a list's items are `element`, not DataFusion's `item`). A type Delta
/// cannot store is an error here, before anything is written.
pub(super) fn as_stored(schema: &SchemaRef) -> Result<SchemaRef, DeltaTableError> {
    let structure: deltalake::kernel::StructType = schema.as_ref().try_into_kernel()?;
    let stored: Schema = (&structure).try_into_arrow()?;
    Ok(Arc::new(stored))
}

/// The Delta columns of `schema`.
pub(super) fn delta_columns(schema: &SchemaRef) -> Result<Vec<StructField>, DeltaTableError> {
    let structure: deltalake::kernel::StructType = schema.as_ref().try_into_kernel()?;
    Ok(structure.fields().cloned().collect())
}

/// Whether a Delta type holds a timestamp without time zone anywhere, also in a list, a struct
/// or a map: the table then needs the timestampNtz feature.
pub(super) fn has_timestamp_ntz(data_type: &deltalake::kernel::DataType) -> bool {
    use deltalake::kernel::DataType as Delta;
    match data_type {
        Delta::Array(array) => has_timestamp_ntz(array.element_type()),
        Delta::Struct(structure) => structure.fields().any(|f| has_timestamp_ntz(f.data_type())),
        Delta::Map(map) => has_timestamp_ntz(map.key_type()) || has_timestamp_ntz(map.value_type()),
        other => *other == Delta::TIMESTAMP_NTZ,
    }
}

/// `batch` with its columns cast to `schema`'s types and order; a column of `schema` the batch
/// lacks is NULL (an incremental run that keeps a column its model no longer writes).
pub(super) fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, DataFusionError> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => Ok(cast_with_options(column, field.data_type(), &options)?),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, DataFusionError>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// How a new build's columns differ from the published table's, if they do.
pub(super) fn difference(
    published: &SchemaRef,
    wanted: &SchemaRef,
    published_partitions: &[String],
    wanted_partitions: &[String],
) -> Option<String> {
    let mut lines = Vec::new();
    for field in published.fields() {
        match wanted.field_with_name(field.name()) {
            Err(_) => lines.push(format!(
                "- column `{}` ({}) is gone",
                field.name(),
                field.data_type()
            )),
            Ok(new) if new.data_type() != field.data_type() => lines.push(format!(
                "- column `{}` changed type: published {}, now {}",
                field.name(),
                field.data_type(),
                new.data_type()
            )),
            Ok(_) => {}
        }
    }
    for field in wanted.fields() {
        if published.field_with_name(field.name()).is_err() {
            lines.push(format!(
                "- column `{}` ({}) is new",
                field.name(),
                field.data_type()
            ));
        }
    }
    if published_partitions != wanted_partitions {
        lines.push(format!(
            "- partition columns changed: published [{}], now [{}]",
            published_partitions.join(", "),
            wanted_partitions.join(", ")
        ));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The column names of `schema`, for messages.
pub(super) fn column_list(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zoned_timestamp_is_stored_as_utc_and_a_plain_one_stays_plain() {
        let zoned = |tz: &str| DataType::Timestamp(TimeUnit::Nanosecond, Some(tz.into()));
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        for tz in ["+00:00", "UTC", "Europe/Paris"] {
            assert_eq!(storage_type(&zoned(tz)), utc);
        }
        let output: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("ts", zoned("+00:00"), true)]));
        assert!(delta_columns(&table_schema(&output)).is_ok());
        assert_eq!(
            storage_type(&DataType::Timestamp(TimeUnit::Second, None)),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
    }

    #[test]
    fn a_timestamp_without_zone_is_found_inside_maps_too() {
        let plain = DataType::Timestamp(TimeUnit::Microsecond, None);
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", plain, true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("m", map, true)]));
        let columns = delta_columns(&schema).unwrap();
        assert!(has_timestamp_ntz(columns[0].data_type()));
        let utc: SchemaRef = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]));
        assert!(!has_timestamp_ntz(
            delta_columns(&utc).unwrap()[0].data_type()
        ));
    }
}
