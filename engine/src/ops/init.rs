//! `dp init`: a new project in a new folder, ready to build: a dev target, one source over a
//! small generated Parquet partition, a staging model and a partitioned model with tests and a
//! unit test, the YAML schemas for editor completion, a `.gitignore` and a README.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use datafusion::arrow::record_batch::RecordBatch;

/// The date of the generated partition, and the default of the `date` var.
const FIRST_DATE: &str = "2024-01-01";

/// Why a project could not be created.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum InitError {
    #[error("{} already exists and is not empty", path.display())]
    #[diagnostic(
        code(dp::init_exists),
        help("dp init creates a new project in a new (or empty) folder: pick another name")
    )]
    NotEmpty { path: PathBuf },

    #[error("`{name}` cannot name a project")]
    #[diagnostic(
        code(dp::init_name),
        help("use letters, digits and underscores, starting with a letter: my_pipeline")
    )]
    BadName { name: String },

    #[error("cannot write {}: {message}", path.display())]
    #[diagnostic(code(dp::write))]
    Write { path: PathBuf, message: String },
}

/// Create the project `name` in `folder` (which must not exist, or be empty); returns the
/// files written, relative to it.
pub fn init(folder: &Path, name: &str) -> Result<Vec<PathBuf>, InitError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(InitError::BadName {
            name: name.to_string(),
        });
    }
    if std::fs::read_dir(folder).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(InitError::NotEmpty {
            path: folder.to_path_buf(),
        });
    }
    let mut written = Vec::new();
    for (path, text) in files(name) {
        write(folder, path, text.as_bytes())?;
        written.push(PathBuf::from(path));
    }
    let partition = format!("data/raw/events/date={FIRST_DATE}/part-0.parquet");
    write(folder, &partition, &events_parquet())?;
    written.push(PathBuf::from(partition));
    Ok(written)
}

fn write(folder: &Path, relative: &str, bytes: &[u8]) -> Result<(), InitError> {
    let path = folder.join(relative);
    let fail = |error: std::io::Error| InitError::Write {
        path: path.clone(),
        message: error.to_string(),
    };
    std::fs::create_dir_all(path.parent().unwrap_or(folder)).map_err(fail)?;
    std::fs::write(&path, bytes).map_err(fail)
}

/// A day of shop events, as Parquet.
fn events_parquet() -> Vec<u8> {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "event_id",
            Arc::new(StringArray::from(vec!["e1", "e2", "e3", "e4", "e5", "e6"])),
        ),
        (
            "user_id",
            Arc::new(Int64Array::from(vec![1, 1, 2, 3, 3, 4])),
        ),
        (
            "event",
            Arc::new(StringArray::from(vec![
                "page_view",
                "purchase",
                "page_view",
                "purchase",
                "purchase",
                "page_view",
            ])),
        ),
        (
            "revenue",
            Arc::new(Float64Array::from(vec![0.0, 19.5, 0.0, 5.0, 12.25, 0.0])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).expect("columns of equal length");
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None)
        .expect("a schema Parquet can store");
    writer.write(&batch).expect("writing to memory");
    writer.close().expect("writing to memory");
    bytes
}

/// Every text file of the new project, by path.
fn files(name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "dp_project.yml",
            format!(
                "# yaml-language-server: $schema=.dp/schemas/dp_project.schema.json\n\
                 name: {name}\n\n\
                 # Defaults for var(); `--vars date=2024-01-02` overrides them.\n\
                 vars:\n  date: \"{FIRST_DATE}\"\n\n\
                 target: dev\n\
                 targets:\n  dev:\n    warehouse: warehouse   # one Delta table per model\n"
            ),
        ),
        (
            ".gitignore",
            "# Built by dp: the tables, run results and docs.\nwarehouse/\ntarget/\n# Secrets and machine settings (DP_SECRET_*, DP_TARGET...).\n.env\n".into(),
        ),
        (
            ".dp/schemas/dp_project.schema.json",
            include_str!("../../../schemas/dp_project.schema.json").into(),
        ),
        (
            ".dp/schemas/properties.schema.json",
            include_str!("../../../schemas/properties.schema.json").into(),
        ),
        (
            "models/staging/sources.yml",
            "# yaml-language-server: $schema=../../.dp/schemas/properties.schema.json\n\
             version: 2\n\n\
             sources:\n  - name: raw\n    location: data/raw\n    tables:\n      - name: events\n        \
             partitioned_by: [date]      # data/raw/events/date=YYYY-MM-DD/*.parquet\n        \
             columns:                    # the source's contract: a change stops the run\n          \
             - {name: event_id, data_type: varchar}\n          \
             - {name: user_id, data_type: bigint}\n          \
             - {name: event, data_type: varchar}\n          \
             - {name: revenue, data_type: double}\n"
                .into(),
        ),
        (
            "models/staging/stg_events.sql",
            "-- One row per event of the day given by `--vars date=...`.\n\
             {{ config(materialized='partitioned', partition_by='date') }}\n\
             select event_id, user_id, event, revenue, date\n\
             from {{ source('raw', 'events') }}\n\
             where date = '{{ var(\"date\") }}'\n"
                .into(),
        ),
        (
            "models/staging/schema.yml",
            "# yaml-language-server: $schema=../../.dp/schemas/properties.schema.json\n\
             version: 2\n\n\
             models:\n  - name: stg_events\n    columns:\n      \
             - name: event_id\n        data_tests: [not_null, unique]\n      \
             - name: event\n        data_tests:\n          \
             - accepted_values: {arguments: {values: [page_view, purchase]}}\n"
                .into(),
        ),
        (
            "models/marts/daily_revenue.sql",
            "-- Purchases and revenue per day; each date is its own partition.\n\
             {{ config(materialized='partitioned', partition_by='date') }}\n\
             select date, count(*) as purchases, sum(revenue) as revenue\n\
             from {{ ref('stg_events') }}\n\
             where event = 'purchase'\n\
             group by date\n"
                .into(),
        ),
        (
            "models/marts/schema.yml",
            "# yaml-language-server: $schema=../../.dp/schemas/properties.schema.json\n\
             version: 2\n\n\
             models:\n  - name: daily_revenue\n    data_tests:\n      \
             - expression_is_true: {arguments: {expression: \"revenue >= 0\"}}\n    \
             columns:\n      - name: date\n        data_tests: [not_null, unique]\n\n\
             unit_tests:\n  - name: daily_revenue_counts_purchases_only\n    model: daily_revenue\n    \
             given:\n      - input: ref('stg_events')\n        rows:\n          \
             - {event_id: a, user_id: 1, event: purchase, revenue: 10.0, date: \"2024-01-01\"}\n          \
             - {event_id: b, user_id: 1, event: page_view, revenue: 0.0, date: \"2024-01-01\"}\n    \
             expect:\n      rows:\n        \
             - {date: \"2024-01-01\", purchases: 1, revenue: 10.0}\n"
                .into(),
        ),
        (
            "README.md",
            format!(
                "# {name}\n\nA dp project. Next commands:\n\n\
                 ```sh\n\
                 dp build                          # build every model for the default date ({FIRST_DATE})\n\
                 dp test                           # run the tests against the published tables\n\
                 dp build --vars date=2024-01-02   # another day (add its data under data/raw/events/)\n\
                 dp backfill --select daily_revenue+ --start 2024-01-01 --end 2024-01-31\n\
                 dp history daily_revenue          # the table's versions\n\
                 dp docs generate && dp docs serve # lineage and docs\n\
                 ```\n\n\
                 Models are under `models/`, their tests in the `schema.yml` beside them; the raw\n\
                 data under `data/raw/`; the tables dp builds under `warehouse/`.\n"
            ),
        ),
    ]
}
