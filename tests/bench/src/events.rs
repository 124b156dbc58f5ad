//! Raw events: hive-partitioned Parquet files (`<out>/date=YYYY-MM-DD/part-0.parquet`),
//! deterministic from a seed. About 3% of the events are delivered twice, as at-least-once
//! pipelines do, so that deduplication matters. The defaults make example_project's data.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

const EVENTS: [&str; 4] = ["page_view", "click", "add_to_cart", "purchase"];
const COHORTS: [&str; 4] = ["organic", "paid_search", "social", "referral"];
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// SplitMix64: a small, fast, seedable generator; the same seed gives the same files.
pub struct Random(pub u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct EventOptions {
    /// The folder to write `date=.../part-0.parquet` into.
    #[arg(long, default_value = "example_project/data/raw/events")]
    pub out: PathBuf,
    /// The first date.
    #[arg(long, default_value = "2024-01-12")]
    pub start: NaiveDate,
    /// How many dates.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i64).range(1..))]
    pub days: i64,
    /// Rows a date.
    #[arg(long, default_value_t = 3000)]
    pub rows: usize,
    /// Distinct users the events come from.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub users: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Write the events; prints one line a date.
pub fn generate(options: &EventOptions) -> Result<(), Box<dyn std::error::Error>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("revenue", DataType::Decimal128(10, 2), false),
        Field::new("cohort", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let mut random = Random(options.seed);
    let mut next_event = 0u64;
    for offset in 0..options.days as u64 {
        let date = options.start + chrono::Days::new(offset);
        // Days since 1970-01-01, NaiveDate's default.
        let day = (date - NaiveDate::default()).num_days();
        // Revenue in cents: money is a decimal, so that sums are exact and every build of the same
        // input publishes the same bytes.
        let mut rows: Vec<(String, i64, &str, i128, &str, i64)> = Vec::with_capacity(options.rows);
        while rows.len() < options.rows {
            next_event += 1;
            let user = random.below(options.users) as i64 + 1;
            let event = EVENTS[[0, 0, 0, 1, 1, 2, 3][random.below(7) as usize]];
            let revenue = if event == "purchase" {
                i128::from(random.below(19_500) + 500)
            } else {
                0
            };
            let cohort = COHORTS[(user as usize) % COHORTS.len()];
            let ts = day * MICROS_PER_DAY + random.below(MICROS_PER_DAY as u64) as i64;
            let row = (
                format!("evt-{next_event:08}"),
                user,
                event,
                revenue,
                cohort,
                ts,
            );
            if random.below(100) < 3 && rows.len() + 1 < options.rows {
                rows.push(row.clone());
            }
            rows.push(row);
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|r| r.0.as_str()),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(
                    Decimal128Array::from_iter_values(rows.iter().map(|r| r.3))
                        .with_precision_and_scale(10, 2)?,
                ),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.4))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.5))
                        .with_timezone("UTC"),
                ),
            ],
        )?;
        let folder = options.out.join(format!("date={date}"));
        std::fs::create_dir_all(&folder)?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(
            File::create(folder.join("part-0.parquet"))?,
            schema.clone(),
            Some(properties),
        )?;
        writer.write(&batch)?;
        writer.close()?;
        println!("{} rows -> {}", rows.len(), folder.display());
    }
    Ok(())
}
