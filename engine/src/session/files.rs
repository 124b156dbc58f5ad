//! A table read as a fixed list of Parquet files: a Delta table's live files at one version, or
//! the files a build staged. Its scan is DataFusion's own Parquet scan over those files (no
//! listing, no log to read), so the plan travels to a cluster's executors as plain Parquet
//! scans; its file list travels with it (see `engine`'s codec).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchemaBuilder;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::prelude::Expr;
use object_store::path::Path;
use url::Url;

/// The files of a table: where its folder is, its partition columns, and each file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableFiles {
    /// The table's folder (`file:///…/` or `s3://bucket/…/`).
    pub root: Url,
    /// The partition columns, in the order of each file's values.
    pub partition_by: Vec<String>,
    pub files: Vec<TableFile>,
}

impl TableFiles {
    /// The files of the table whose folder is `root`.
    pub fn new(root: &Url, partition_by: Vec<String>, files: Vec<TableFile>) -> Self {
        let mut root = root.clone();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        TableFiles {
            root,
            partition_by,
            files,
        }
    }
}

/// One Parquet file of a table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableFile {
    /// Its path under the table's folder, decoded (as a Delta log writes it).
    pub path: String,
    /// Its size in bytes (the scan reads its footer from there).
    pub size: u64,
    /// Its value of each partition column (`None`: NULL).
    pub partition_values: Vec<Option<String>>,
}

impl TableFile {
    /// Where the file is in the store, under the table's folder `base`: its path as written,
    /// with the partition folder the writer percent-encoded (`city=S%C3%A3o%20Paulo`), which
    /// is the object's name (never encoded again).
    pub fn location(&self, base: &Path) -> Result<Path, object_store::path::Error> {
        match base.as_ref() {
            "" => Path::parse(&self.path),
            base => Path::parse(format!("{base}/{}", self.path)),
        }
    }

    /// A file with its partition values taken from a Delta `partitionValues` map.
    pub fn new(
        path: String,
        size: i64,
        values: &HashMap<String, Option<String>>,
        partition_by: &[String],
    ) -> Self {
        TableFile {
            path,
            size: size.max(0) as u64,
            // Delta writes NULL as an empty value.
            partition_values: partition_by
                .iter()
                .map(|column| values.get(column).cloned().flatten())
                .map(|value| value.filter(|v| !v.is_empty()))
                .collect(),
        }
    }
}

/// A table over [`TableFiles`], with `schema` as its columns (partition columns among them,
/// where the table declares them). A filter on partition columns skips the files of other
/// partitions when the scan is planned.
#[derive(Debug)]
pub struct FileTable {
    schema: SchemaRef,
    files: TableFiles,
}

impl FileTable {
    pub fn new(schema: SchemaRef, files: TableFiles) -> Self {
        FileTable { schema, files }
    }

    /// The file list, as it is sent to a cluster.
    pub fn files(&self) -> &TableFiles {
        &self.files
    }

    /// The fields of the partition columns, in the files' order of values.
    fn partition_fields(&self) -> Result<Vec<Arc<Field>>> {
        self.files
            .partition_by
            .iter()
            .map(|column| Ok(Arc::new(self.schema.field_with_name(column)?.clone())))
            .collect()
    }

    /// The files whose partition values pass every filter on partition columns alone.
    fn prune(&self, state: &dyn Session, filters: &[Expr]) -> Result<Vec<&TableFile>> {
        let files = &self.files.files;
        let partition_by = &self.files.partition_by;
        let on_partitions: Vec<&Expr> = filters
            .iter()
            .filter(|filter| {
                let columns = filter.column_refs();
                !columns.is_empty() && columns.iter().all(|c| partition_by.contains(&c.name))
            })
            .collect();
        if on_partitions.is_empty() || files.is_empty() {
            return Ok(files.iter().collect());
        }
        // One row per file: its partition values, typed as the table types them.
        let fields = self.partition_fields()?;
        let columns = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let text: StringArray = files
                    .iter()
                    .map(|file| file.partition_values[i].as_deref())
                    .collect();
                // As the scan casts them: a value of another type is an error, not NULL.
                let options = CastOptions {
                    safe: false,
                    ..Default::default()
                };
                Ok(cast_with_options(&text, field.data_type(), &options)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let schema = Arc::new(Schema::new(fields));
        let values = RecordBatch::try_new(schema.clone(), columns)?;
        let df_schema = DFSchema::try_from(schema)?;
        let mut keep = vec![true; files.len()];
        for filter in on_partitions {
            let predicate = state.create_physical_expr((*filter).clone(), &df_schema)?;
            let passed = predicate.evaluate(&values)?.into_array(files.len())?;
            let passed = passed
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| DataFusionError::Internal("a filter is not boolean".into()))?;
            for (row, kept) in keep.iter_mut().enumerate() {
                *kept &= passed.is_valid(row) && passed.value(row);
            }
        }
        Ok(files
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(f, _)| f)
            .collect())
    }
}

/// The files split into `groups` groups of about the same bytes (each group is one partition of
/// the scan: one task on a cluster).
fn balanced(mut files: Vec<PartitionedFile>, groups: usize) -> Vec<FileGroup> {
    files.sort_by_key(|file| std::cmp::Reverse(file.object_meta.size));
    let mut grouped: Vec<(u64, Vec<PartitionedFile>)> = vec![(0, Vec::new()); groups.max(1)];
    for file in files {
        let lightest = grouped
            .iter_mut()
            .min_by_key(|(bytes, _)| *bytes)
            .expect("at least one group");
        lightest.0 += file.object_meta.size;
        lightest.1.push(file);
    }
    grouped
        .into_iter()
        .filter(|(_, files)| !files.is_empty())
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}

#[async_trait]
impl TableProvider for FileTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to skip files and row groups; every filter still runs on the rows read.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.prune(state, filters)?;
        if files.is_empty() {
            let schema = match projection {
                Some(columns) => Arc::new(self.schema.project(columns)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // The scan yields the files' columns, then the partition columns: map the table's
        // column order onto it.
        let partition_by = &self.files.partition_by;
        let file_fields: Vec<Arc<Field>> = self
            .schema
            .fields()
            .iter()
            .filter(|f| !partition_by.contains(f.name()))
            .cloned()
            .collect();
        let scanned: Vec<&str> = file_fields
            .iter()
            .map(|f| f.name().as_str())
            .chain(partition_by.iter().map(String::as_str))
            .collect();
        let position = |index: usize| {
            let name = self.schema.field(index).name();
            scanned
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| DataFusionError::Internal(format!("column {name} is not scanned")))
        };
        let columns: Vec<usize> = match projection {
            Some(columns) => columns.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let columns = columns
            .into_iter()
            .map(position)
            .collect::<Result<Vec<_>>>()?;

        let base = Path::from_url_path(self.files.root.path())?;
        let fields = self.partition_fields()?;
        let partitioned = files
            .into_iter()
            .map(|file| {
                let location = file
                    .location(&base)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                // Not `PartitionedFile::new`, which would encode the name's `%` once more.
                let mut scanned = PartitionedFile::new_from_meta(object_store::ObjectMeta {
                    location,
                    last_modified: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                    size: file.size,
                    e_tag: None,
                    version: None,
                });
                scanned.partition_values = file
                    .partition_values
                    .iter()
                    .zip(&fields)
                    .map(|(value, field)| {
                        ScalarValue::Utf8(value.clone()).cast_to(field.data_type())
                    })
                    .collect::<Result<_>>()?;
                Ok(scanned)
            })
            .collect::<Result<Vec<_>>>()?;

        let store = ObjectStoreUrl::parse(&self.files.root[..url::Position::BeforePath])?;
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let table_schema = TableSchemaBuilder::new(Arc::new(Schema::new(file_fields)))
            .with_table_partition_cols(fields)
            .build();
        let config = FileScanConfigBuilder::new(store, format.file_source(table_schema))
            .with_file_groups(balanced(partitioned, state.config().target_partitions()))
            .with_projection_indices(Some(columns))?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_filter_on_a_typed_partition_column_plans_only_that_partitions_files() {
        use datafusion::arrow::datatypes::DataType;
        let schema = Arc::new(Schema::new(vec![
            Field::new("day", DataType::Date32, true),
            Field::new("id", DataType::Int64, true),
        ]));
        let file = |day: &str| TableFile {
            path: format!("day={day}/part-0.parquet"),
            size: 100,
            partition_values: vec![Some(day.to_string())],
        };
        let files = TableFiles::new(
            &Url::parse("file:///nowhere/t").unwrap(),
            vec!["day".into()],
            vec![file("2024-01-14"), file("2024-01-15"), file("2024-01-16")],
        );
        let session = datafusion::prelude::SessionContext::new();
        session
            .register_table("t", Arc::new(FileTable::new(schema, files)))
            .unwrap();
        let explain = |sql| crate::session::tests::explain(&session, sql);
        let one = explain("select id, day from t where day = date '2024-01-15'").await;
        assert!(one.contains("day=2024-01-15/part-0.parquet"), "{one}");
        assert_eq!(one.matches("part-0.parquet").count(), 1, "{one}");
        let after = explain("select id from t where day > date '2024-01-14'").await;
        assert_eq!(after.matches("part-0.parquet").count(), 2, "{after}");
        let none = explain("select id from t where day = date '2023-01-01'").await;
        assert!(!none.contains("part-0.parquet"), "{none}");
    }

    #[test]
    fn files_are_grouped_by_bytes_into_at_most_the_groups_asked() {
        let file = |name: &str, size| PartitionedFile::new(name.to_string(), size);
        let groups = balanced(
            vec![file("a", 10), file("b", 7), file("c", 4), file("d", 3)],
            2,
        );
        let bytes: Vec<u64> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.object_meta.size).sum())
            .collect();
        assert_eq!(bytes, [13, 11]);
        assert_eq!(balanced(vec![file("a", 1)], 4).len(), 1);
    }
}
