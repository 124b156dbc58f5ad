//! The DataFusion session a model runs in: its sources and upstream models registered as tables.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::{BuildContext, ModelError};
use crate::plan::{ModelPlan, sql_error_location};
use crate::project::{SourceFormat, SourceTable};
use crate::storage::{StorageError, model_table_url, open_published};

/// A session holding exactly the tables `model` reads.
pub(super) async fn for_model(
    context: &BuildContext,
    model: &ModelPlan,
) -> Result<SessionContext, ModelError> {
    let config = SessionConfig::new().set_bool("datafusion.sql_parser.collect_spans", true);
    let session = SessionContext::new_with_config_rt(config, context.runtime.clone());
    for id in &model.sources {
        let source = &context.sources[id];
        register_source(&session, source).await?;
    }
    for upstream in &model.upstream {
        let url = model_table_url(&context.options.warehouse, upstream);
        let table = open_published(&url, upstream).await?;
        let provider =
            delta_provider(&session, &table)
                .await
                .map_err(|source| StorageError::Delta {
                    location: url.to_string(),
                    source,
                })?;
        session
            .register_table(TableReference::bare(upstream.as_str()), provider)
            .map_err(|error| sql_error(model, &error))?;
    }
    Ok(session)
}

async fn delta_provider(
    session: &SessionContext,
    table: &deltalake::DeltaTable,
) -> Result<Arc<dyn TableProvider>, deltalake::DeltaTableError> {
    table.update_datafusion_session(&session.state())?;
    Ok(table.table_provider().await?)
}

/// Register a source table as `"source"."table"`: a listing table over its Parquet files, with
/// its hive partition columns (so a filter on them skips whole folders), or a Delta table.
pub(super) async fn register_source(
    session: &SessionContext,
    source: &SourceTable,
) -> Result<(), ModelError> {
    let unreadable = |message: String| ModelError::Source {
        source_id: source.id(),
        location: source.location.to_string(),
        message,
        at: source.file.find(&source.table, 0),
        src: source.file.named(),
    };
    let provider: Arc<dyn TableProvider> = match source.format {
        SourceFormat::Parquet => {
            let url = ListingTableUrl::parse(source.location.as_str())
                .map_err(|e| unreadable(e.to_string()))?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(
                    source
                        .partitioned_by
                        .iter()
                        .map(|column| (column.clone(), DataType::Utf8))
                        .collect(),
                );
            let schema = options
                .infer_schema(&session.state(), &url)
                .await
                .map_err(|e| unreadable(e.strip_backtrace()))?;
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(schema);
            Arc::new(ListingTable::try_new(config).map_err(|e| unreadable(e.strip_backtrace()))?)
        }
        SourceFormat::Delta => {
            let table = deltalake::open_table(source.location.clone())
                .await
                .map_err(|e| unreadable(e.to_string()))?;
            delta_provider(session, &table)
                .await
                .map_err(|e| unreadable(e.to_string()))?
        }
    };
    let catalog = session
        .catalog("datafusion")
        .expect("the default catalog exists");
    if catalog.schema(&source.source).is_none() {
        catalog
            .register_schema(&source.source, Arc::new(MemorySchemaProvider::new()))
            .map_err(|e| unreadable(e.strip_backtrace()))?;
    }
    session
        .register_table(
            TableReference::partial(source.source.as_str(), source.table.as_str()),
            provider,
        )
        .map_err(|e| unreadable(e.strip_backtrace()))?;
    Ok(())
}

/// A DataFusion error in a model's SQL, pointing at the model's file.
pub(super) fn sql_error(model: &ModelPlan, error: &DataFusionError) -> ModelError {
    let message = error.strip_backtrace();
    let (file, at, message) = if let Some(diagnostic) = error.diagnostic()
        && let Some(span) = diagnostic.span
    {
        let len = if span.end.line == span.start.line {
            span.end.column.saturating_sub(span.start.column) as usize
        } else {
            1
        };
        let (file, at) = model.locate_line(span.start.line, span.start.column, len.max(1));
        (file, at, diagnostic.message.clone())
    } else if let Some((line, column, clean)) = sql_error_location(&message) {
        let (file, at) = model.locate_line(line, column, 1);
        (file, at, clean)
    } else {
        (model.file.clone(), (0, 0).into(), message)
    };
    ModelError::Sql {
        model: model.name.clone(),
        message,
        src: file.named(),
        at,
        help: error
            .diagnostic()
            .and_then(|d| d.helps.first())
            .map(|h| h.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn explain(session: &SessionContext, sql: &str) -> String {
        let batches = session
            .sql(&format!("explain {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_filter_on_a_hive_partition_column_reads_only_that_partitions_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../example_project");
        let project = crate::project::load(&root).unwrap();
        let session = SessionContext::new();
        register_source(&session, &project.sources["raw.events"])
            .await
            .unwrap();

        let plan = explain(
            &session,
            "select event_id from raw.events where date = '2024-01-15'",
        )
        .await;
        assert!(plan.contains("date=2024-01-15/part-0.parquet"), "{plan}");
        assert_eq!(plan.matches("part-0.parquet").count(), 1, "{plan}");

        let all = explain(&session, "select event_id from raw.events").await;
        assert!(
            all.contains("date=2024-01-12") && all.contains("date=2024-01-18"),
            "{all}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_filter_on_a_delta_partition_column_reads_only_that_partitions_files() {
        let dir = tempfile::tempdir().unwrap();
        let session = SessionContext::new();
        session
            .sql(&format!(
                "create external table events stored as parquet location '{}' \
                 partitioned by (date)",
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../example_project/data/raw/events/")
                    .display()
            ))
            .await
            .unwrap();
        let frame = session
            .sql("select event_id, date from events")
            .await
            .unwrap();
        let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
        let url = url::Url::from_directory_path(dir.path().join("stg")).unwrap();
        let table =
            crate::storage::ModelTable::open_for_build("stg", &url, &schema, &["date".into()])
                .await
                .unwrap();
        let staged = table
            .stage(frame.execute_stream().await.unwrap())
            .await
            .unwrap();
        table.commit(staged).await.unwrap();

        let published = open_published(&url, "stg").await.unwrap();
        session
            .register_table("stg", delta_provider(&session, &published).await.unwrap())
            .unwrap();
        let plan = explain(
            &session,
            "select event_id from stg where date = '2024-01-15'",
        )
        .await;
        assert!(plan.contains("date=2024-01-15/"), "{plan}");
        assert_eq!(plan.matches(".parquet").count(), 1, "{plan}");
    }
}
