//! `dp history`: a model's table versions, newest first, from its Delta log.

use std::process::ExitCode;

use dp_engine::report::TestStatus;

use crate::args::{GlobalArgs, HistoryArgs, OutputFormat, SelectArgs};

pub fn run(global: &GlobalArgs, args: &HistoryArgs) -> miette::Result<ExitCode> {
    // Any model has a history, whatever vars its template needs.
    let prepared = super::prepare_partial(global, &SelectArgs::default())?;
    let runtime = super::runtime()?;
    let history = runtime.block_on(prepared.history(&args.model, args.limit))?;
    let text = match args.format {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(&history).unwrap_or_default();
            format!("{json}\n")
        }
        OutputFormat::Human => table(&history),
    };
    super::out(&text);
    Ok(ExitCode::SUCCESS)
}

/// One line per version.
fn table(history: &[dp_engine::Commit]) -> String {
    let mut text = format!(
        "{:>7}  {:<24} {:<8} {:<17} {:<24} {:>10}  {:<12} {}\n",
        "version", "committed (UTC)", "run", "operation", "partitions", "rows", "sql", "tests"
    );
    for commit in history {
        let when = commit
            .timestamp
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let record = commit.record.as_ref();
        let run: String = record
            .map(|r| r.run_id.chars().take(8).collect())
            .unwrap_or_else(|| "-".into());
        let partitions = match commit.partitions.len() {
            0 => "-".to_string(),
            1 => commit.partitions[0].clone(),
            n => format!("{n} partitions"),
        };
        let sql: String = record
            .map(|r| r.sql_hash.chars().take(12).collect())
            .filter(|hash: &String| !hash.is_empty())
            .unwrap_or_else(|| "-".into());
        let tests = record
            .filter(|r| !r.tests.is_empty())
            .map(|r| {
                let count = |status| r.tests.iter().filter(|t| t.status == status).count();
                let mut counts = vec![format!("{} passed", count(TestStatus::Pass))];
                if count(TestStatus::Warn) > 0 {
                    counts.push(format!("{} warned", count(TestStatus::Warn)));
                }
                counts.join(", ")
            })
            .unwrap_or_else(|| "-".into());
        text.push_str(&format!(
            "{:>7}  {:<24} {:<8} {:<17} {:<24} {:>10}  {:<12} {}\n",
            commit.version,
            when,
            run,
            commit.operation.as_deref().unwrap_or("-"),
            partitions,
            commit.rows_added,
            sql,
            tests
        ));
    }
    text
}
