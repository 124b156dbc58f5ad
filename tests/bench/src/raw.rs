//! The yardstick: daily_summary in plain DataFusion, a few lines against the same files, written
//! as date-partitioned Parquet. dp's benchmark model runs the same SQL.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::SessionContext;

/// What `dp-bench daily-summary` runs.
#[derive(Debug, Clone, clap::Args)]
pub struct RawOptions {
    /// The events folder (`date=.../*.parquet`).
    #[arg(long)]
    pub events: std::path::PathBuf,
    /// The folder to write `date=.../*.parquet` into.
    #[arg(long)]
    pub out: std::path::PathBuf,
    /// Summarise only this date (default: every date).
    #[arg(long)]
    pub date: Option<String>,
}

/// daily_summary's SQL over `table`, its rows restricted by `filter` (a WHERE clause or nothing).
pub fn daily_summary_sql(table: &str, filter: &str) -> String {
    format!(
        "select date, cohort, sum(revenue) as revenue, count(distinct user_id) as user_count, \
         count(*) as total_events\nfrom {table}\n{filter}\ngroup by date, cohort\n"
    )
}

/// Run daily_summary over `options.events` and write its result.
pub async fn daily_summary(options: &RawOptions) -> datafusion::error::Result<()> {
    let ctx = SessionContext::new();
    let listing = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("date".to_string(), DataType::Utf8)]);
    let events = format!("{}/", Path::new(&options.events).display());
    ctx.register_listing_table("events", events, listing, None, None)
        .await?;
    let filter = options
        .date
        .as_ref()
        .map_or_else(String::new, |date| format!("where date = '{date}'"));
    let out = options.out.display().to_string();
    ctx.sql(&daily_summary_sql("events", &filter))
        .await?
        .write_parquet(
            &out,
            DataFrameWriteOptions::new().with_partition_by(vec!["date".to_string()]),
            None,
        )
        .await?;
    Ok(())
}
