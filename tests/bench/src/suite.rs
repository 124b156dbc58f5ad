//! `dp-bench all`: every benchmark of BENCHMARKS.md, printed as Markdown tables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::measure::{Stats, measure, paired};
use crate::raw::daily_summary_sql;

type Error = Box<dyn std::error::Error>;

/// What `dp-bench all` measures, and how often.
#[derive(Debug, Clone, clap::Args)]
pub struct SuiteOptions {
    /// Where generated projects and data go (data is kept and reused between runs).
    #[arg(long, default_value = "target/bench")]
    pub work: PathBuf,
    /// The dp binary (default: `dp` beside this program, from the same `cargo build --release`).
    #[arg(long)]
    pub dp: Option<PathBuf>,
    /// Timed runs of the quick commands (ls, check, compile, docs generate).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Timed runs of the builds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub build_runs: u64,
    /// Project sizes for ls, check, compile and docs generate.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000,10000")]
    pub sizes: Vec<usize>,
    /// Project sizes to build over the small dataset.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub build_sizes: Vec<usize>,
    /// Dates of the large dataset.
    #[arg(long, default_value_t = 30)]
    pub days: i64,
    /// Rows a date of the large dataset.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// The memory limit of the constrained all-dates build.
    #[arg(long, default_value = "512MB")]
    pub memory_limit: String,
    /// Models of the dbt project built by dp and by dbt-core (0: not measured).
    #[arg(long, default_value_t = 1000)]
    pub dbt_models: usize,
    /// Measure daily_summary on a Ballista cluster (one scheduler, two executors) too.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub cluster: bool,
    /// Timed runs of each tool on the dbt project, and of the incremental merge.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub dbt_runs: u64,
}

/// Run every benchmark and print the tables.
pub fn run(options: &SuiteOptions) -> Result<(), Error> {
    let dp = match &options.dp {
        Some(dp) => dp.clone(),
        None => std::env::current_exe()?.with_file_name("dp"),
    };
    if !dp.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p dp-cli -p dp-bench)",
            dp.display()
        )
        .into());
    }
    let bench = std::env::current_exe()?;
    std::fs::create_dir_all(&options.work)?;
    let work = std::path::absolute(&options.work)?;
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "dp-bench on {cores} cores; wall-clock median / min / max of each command, and the peak memory of its process.\n"
    );

    // 1. Load, render, resolve and plan as projects grow.
    let small = work.join("small/events");
    generate_events(&bench, &small, 7, 3000, 2000)?;
    println!("## Project size\n");
    println!("| command | models | median | min | max | per model | peak memory |");
    println!("|---|---|---|---|---|---|---|");
    let example = work.join("example_project");
    copy_project(&repository.join("example_project"), &example)?;
    let stats = measure(options.runs, || {}, &mut dp_in(&dp, &example, &["ls"]))?;
    row("dp ls", "example", &stats, None);
    for &size in &options.sizes {
        let project = generate_project(&bench, &work, size, &small)?;
        for (name, args) in [
            ("dp ls", &["ls"][..]),
            ("dp check", &["check", "-q"][..]),
            ("dp compile", &["compile", "-q"][..]),
            ("dp docs generate", &["docs", "generate", "-q"][..]),
        ] {
            let stats = measure(options.runs, || {}, &mut dp_in(&dp, &project, args))?;
            row(name, &size.to_string(), &stats, Some(size));
        }
    }

    // 2. Whole builds of generated projects over a small dataset, into an empty warehouse.
    let trash = Trash::new(&work);
    println!("\n## Builds over the small dataset (7 dates x 3,000 rows)\n");
    println!("| command | models | median | min | max | per model | peak memory |");
    println!("|---|---|---|---|---|---|---|");
    for &size in &options.build_sizes {
        let project = generate_project(&bench, &work, size, &small)?;
        let clean = || trash.clear(&project);
        let stats = measure(
            options.build_runs,
            clean,
            &mut dp_in(&dp, &project, &["build", "-q"]),
        )?;
        trash.empty();
        row("dp build", &size.to_string(), &stats, Some(size));
    }

    // 3. daily_summary over the large dataset: dp against plain DataFusion, same SQL, same files.
    let events = work.join(format!("events-{}x{}", options.days, options.rows));
    generate_events(&bench, &events, options.days, options.rows, 100_000)?;
    let project = summary_project(&work, &events)?;
    let raw_out = work.join("raw-daily-summary");
    let first = chrono::NaiveDate::from_ymd_opt(2024, 1, 12).expect("a valid date");
    let date = (first + chrono::Days::new(options.days as u64 / 2)).to_string();
    let raw = |date: Option<&str>| {
        let mut command = Command::new(&bench);
        command
            .arg("daily-summary")
            .arg("--events")
            .arg(&events)
            .arg("--out")
            .arg(&raw_out);
        if let Some(date) = date {
            command.arg("--date").arg(date);
        }
        command
    };
    let clean = || {
        trash.clear(&project);
        let _ = std::fs::remove_dir_all(&raw_out);
    };
    let var = format!("date={date}");
    println!(
        "\n## daily_summary over {} dates x {} rows: dp against plain DataFusion\n",
        options.days, options.rows
    );
    println!("| run | median | min | max | peak memory | dp / DataFusion (medians) |");
    println!("|---|---|---|---|---|---|");
    let one_dp = measure(
        options.build_runs,
        clean,
        &mut dp_in(&dp, &project, &["build", "-q", "--vars", &var]),
    )?;
    let files = files_read(&project)?;
    let one_raw = measure(options.build_runs, clean, &mut raw(Some(&date)))?;
    compare(&format!("one date ({date})"), &one_dp, &one_raw);
    let all_dp = measure(
        options.build_runs,
        clean,
        &mut dp_in(&dp, &project, &["build", "-q"]),
    )?;
    let all_raw = measure(options.build_runs, clean, &mut raw(None))?;
    compare("all dates", &all_dp, &all_raw);
    let limited = measure(
        options.build_runs,
        clean,
        &mut dp_in(
            &dp,
            &project,
            &["build", "-q", "--memory-limit", &options.memory_limit],
        ),
    )?;
    println!(
        "| all dates, dp with --memory-limit {} | {} | {} | {} | {} | |",
        options.memory_limit,
        ms(limited.median),
        ms(limited.min),
        ms(limited.max),
        mib(limited.peak_memory)
    );
    // The diff's cost: the one date built again over the published table (its partition
    // replaced, diffed by key against the published one), with and without the diff, in turn.
    clean();
    run_to_end(&mut dp_in(&dp, &project, &["build", "-q"]))?;
    let (diffed, plain, ratio) = paired(
        options.build_runs * 2,
        &mut dp_in(&dp, &project, &["build", "-q", "--vars", &var]),
        &mut dp_in(&dp, &project, &["build", "-q", "--vars", &var, "--no-diff"]),
    )?;
    for (run, stats) in [("with its diff", &diffed), ("`--no-diff`", &plain)] {
        println!(
            "| one date again over the published table, dp {run} | {} | {} | {} | {} | |",
            ms(stats.median),
            ms(stats.min),
            ms(stats.max),
            mib(stats.peak_memory)
        );
    }
    println!(
        "\nThe diff adds {:+.1} % to the one-date rebuild (median of {} paired runs' ratios).",
        (ratio - 1.0) * 100.0,
        options.build_runs * 2
    );
    // Both wrote the same rows (a fresh build's table folder holds only its current files).
    clean();
    run_to_end(&mut dp_in(&dp, &project, &["build", "-q", "--vars", &var]))?;
    run_to_end(&mut raw(Some(&date)))?;
    let rows = tokio::runtime::Runtime::new()?.block_on(same_rows(
        &project.join("warehouse/daily_summary"),
        &raw_out,
    ))?;
    trash.empty();
    println!(
        "\nThe one-date build read {files} of the {} event files (run results: `source_files`); \
         dp and DataFusion wrote the same {rows} rows.",
        options.days
    );

    // 4. An incremental merge of one date into the whole table, against a full rebuild.
    incremental_merge(&dp, &work, &events, &date, options)?;

    // 5. The same build on a Ballista cluster on this machine, next to the embedded engine.
    if options.cluster {
        on_cluster(&dp, &work, &events, &date, options)?;
    }

    // 6. A dbt project, unmodified: dp against dbt-core with dbt-duckdb.
    if options.dbt_models > 0 {
        dbt_project(&dp, &bench, &work, &repository, options)?;
    }
    Ok(())
}

/// daily_summary over the large dataset built by the embedded engine and by a Ballista cluster
/// of one scheduler and two executors on this machine, in turn over the published table (each
/// run replaces the partitions it builds): the cost of distribution where there is nothing to
/// distribute to. The executors share the machine's cores, one task each per core they get.
fn on_cluster(
    dp: &Path,
    work: &Path,
    events: &Path,
    date: &str,
    options: &SuiteOptions,
) -> Result<(), Error> {
    let bin_dir = dp.parent().ok_or("dp has no folder")?;
    let logs = work.join("cluster-logs");
    std::fs::create_dir_all(&logs)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cluster = crate::cluster::Cluster::start(bin_dir, &logs, 2, (cores / 2).max(1), &[]);
    let project = summary_project(work, events)?;
    let config = std::fs::read_to_string(project.join("dp_project.yml"))?;
    std::fs::write(
        project.join("dp_project.yml"),
        format!(
            "{config}target: local\ntargets:\n  local:\n    warehouse: warehouse\n{}",
            cluster.target_yaml("cluster")
        ),
    )?;
    run_to_end(&mut dp_in(dp, &project, &["build", "-q"]))?;
    println!(
        "\n## daily_summary on a Ballista cluster on this machine ({} dates x {} rows)\n",
        options.days, options.rows
    );
    println!(
        "| run | engine | median | min | max | dp's peak memory | cluster / embedded (median of paired ratios) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let var = format!("date={date}");
    for (run, args) in [
        ("all dates", vec!["build", "-q"]),
        ("one date", vec!["build", "-q", "--vars", &var]),
    ] {
        let on_cluster: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--target", "cluster"])
            .collect();
        let (distributed, embedded, ratio) = paired(
            options.build_runs,
            &mut dp_in(dp, &project, &on_cluster),
            &mut dp_in(dp, &project, &args),
        )?;
        for (engine, stats, ratio) in [
            ("embedded", &embedded, String::new()),
            (
                "1 scheduler + 2 executors",
                &distributed,
                format!("{ratio:.2}x"),
            ),
        ] {
            println!(
                "| {run} | {engine} | {} | {} | {} | {} | {ratio} |",
                ms(stats.median),
                ms(stats.min),
                ms(stats.max),
                mib(stats.peak_memory)
            );
        }
    }
    let tasks = cluster.tasks_finished();
    println!("\nThe executors ran {tasks:?} tasks.");
    Ok(())
}

/// An incremental model keyed by (date, event_id) over the large dataset: the full build, then
/// a merge of one date's rows, which must read that date's files and rewrite only its partition.
fn incremental_merge(
    dp: &Path,
    work: &Path,
    events: &Path,
    date: &str,
    options: &SuiteOptions,
) -> Result<(), Error> {
    let root = events_project(work, "incremental_bench", events)?;
    // Events delivered twice are one row: a merge's new rows hold each key once.
    std::fs::write(
        root.join("models/events_by_day.sql"),
        "{{ config(materialized='incremental', unique_key=['date', 'event_id'], partition_by='date') }}\n\
         select distinct event_id, user_id, event, revenue, cohort, ts, date\n\
         from {{ source('raw', 'events') }}\n\
         {% if is_incremental() %}where date = '{{ var(\"date\") }}'{% endif %}\n",
    )?;
    let trash = Trash::new(work);
    let var = format!("date={date}");
    // Each full build starts from an empty warehouse; the merges run on the last one's table.
    let full = measure(
        options.dbt_runs,
        || trash.clear(&root),
        &mut dp_in(dp, &root, &["build", "-q"]),
    )?;
    let merge = measure(
        options.dbt_runs,
        || {},
        &mut dp_in(dp, &root, &["build", "-q", "--vars", &var]),
    )?;
    let result = &last_results(&root)?["results"][0];
    println!(
        "\n## Incremental merge of one date into {} dates x {} rows\n",
        options.days, options.rows
    );
    println!(
        "| run | median | min | max | peak memory | event files read | table files rewritten | files written |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| full build | {} | {} | {} | {} | {} | | |",
        ms(full.median),
        ms(full.min),
        ms(full.max),
        mib(full.peak_memory),
        options.days
    );
    println!(
        "| merge of {date} | {} | {} | {} | {} | {} | {} | {} |",
        ms(merge.median),
        ms(merge.min),
        ms(merge.max),
        mib(merge.peak_memory),
        result["source_files"]["raw.events"],
        result["files_rewritten"],
        result["files_written"]
    );
    println!(
        "\nmerge / full rebuild: {:.2}x (medians)",
        merge.median.as_secs_f64() / full.median.as_secs_f64()
    );
    trash.clear(&root);
    trash.empty();
    Ok(())
}

/// The generated dbt project, built whole into an empty warehouse by dp and by dbt-core with
/// dbt-duckdb (installed by tests/bench/dbt.sh), which must agree on what they built.
fn dbt_project(
    dp: &Path,
    bench: &Path,
    work: &Path,
    repository: &Path,
    options: &SuiteOptions,
) -> Result<(), Error> {
    let installed = Command::new("bash")
        .arg(repository.join("tests/bench/dbt.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !installed.status.success() {
        return Err(
            "tests/bench/dbt.sh could not install dbt (pass --dbt-models 0 to skip)".into(),
        );
    }
    let bin = PathBuf::from(String::from_utf8(installed.stdout)?.trim());
    let root = work.join(format!("dbt-project-{}", options.dbt_models));
    run_to_end(
        Command::new(bench)
            .args([
                "project",
                "--flavor",
                "dbt",
                "--models",
                &options.dbt_models.to_string(),
                "--out",
            ])
            .arg(&root),
    )?;
    let trash = Trash::new(work);
    let dbt = |args: &[&str]| {
        let mut command = Command::new(bin.join("dbt"));
        command
            .args(args)
            .arg("--project-dir")
            .arg(&root)
            .arg("--profiles-dir")
            .arg(&root)
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .current_dir(&root);
        command
    };
    let cold = || trash.clear(&root);
    // dbt's partial parsing reuses target/partial_parse.msgpack: kept for the warm runs.
    let warm = || {
        for name in ["warehouse.duckdb", "warehouse"] {
            let path = root.join(name);
            if path.exists() {
                trash.clear_path(&path);
            }
        }
    };
    println!(
        "\n## A dbt project of {} models (and one seed of {} rows): dp against dbt-core with dbt-duckdb\n",
        options.dbt_models,
        crate::project::SEED_ROWS
    );
    println!("| run | median | min | max | peak memory | / dp (medians) |");
    println!("|---|---|---|---|---|---|");
    let dp_stats = measure(
        options.dbt_runs,
        cold,
        &mut dp_in(dp, &root, &["build", "-q"]),
    )?;
    let dp_totals = dp_mart_totals(&root)?;
    let cold_dbt = measure(options.dbt_runs, cold, &mut dbt(&["build", "-q"]))?;
    let warm_dbt = measure(options.dbt_runs, warm, &mut dbt(&["build", "-q"]))?;
    let dbt_totals = dbt_mart_totals(&bin, &root)?;
    for (run, stats) in [
        ("`dp build` (seed, models, tests)", &dp_stats),
        ("`dbt build`, full parse", &cold_dbt),
        ("`dbt build`, partial parse", &warm_dbt),
    ] {
        println!(
            "| {run} | {} | {} | {} | {} | {:.1}x |",
            ms(stats.median),
            ms(stats.min),
            ms(stats.max),
            mib(stats.peak_memory),
            stats.median.as_secs_f64() / dp_stats.median.as_secs_f64()
        );
    }
    if dp_totals != dbt_totals {
        return Err(format!("dp and dbt built different marts:\n{dp_totals}\n{dbt_totals}").into());
    }
    println!("\nBoth built the same marts: {dp_totals}.");
    trash.clear(&root);
    trash.empty();
    Ok(())
}

/// What both tools' marts add up to: rows, revenue (in cents) and users of every mart (the
/// Python of [`dbt_mart_totals`] prints the same line).
const MART_TOTALS: &str = "rows {rows}, revenue {revenue}, users {users}";

/// [`MART_TOTALS`] of dp's marts: the Parquet files under each fresh table (a first build's table
/// folder holds only its current files).
fn dp_mart_totals(root: &Path) -> Result<String, Error> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let ctx = datafusion::prelude::SessionContext::new();
        let options = datafusion::prelude::ParquetReadOptions::default()
            .table_partition_cols(vec![]);
        let pattern = root.join("warehouse");
        let mut tables = Vec::new();
        for entry in std::fs::read_dir(&pattern)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with("mart_") {
                tables.push(name);
            }
        }
        let (mut rows, mut revenue, mut users) = (0i64, 0i64, 0i64);
        for table in tables {
            ctx.register_parquet(&table, format!("{}/{table}/", pattern.display()), options.clone())
                .await?;
            let sql = format!(
                "select count(*), cast(round(sum(revenue) * 100) as bigint), sum(users) from \"{table}\""
            );
            let batches = ctx.sql(&sql).await?.collect().await?;
            let text = pretty_format_batches(&batches)?.to_string();
            let values: Vec<i64> = text
                .lines()
                .nth(3)
                .unwrap_or_default()
                .split('|')
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            if let [r, v, u] = values[..] {
                rows += r;
                revenue += v;
                users += u;
            }
        }
        Ok(MART_TOTALS
            .replace("{rows}", &rows.to_string())
            .replace("{revenue}", &revenue.to_string())
            .replace("{users}", &users.to_string()))
    })
}

/// [`MART_TOTALS`] of dbt's marts, read from its DuckDB file with dbt's own Python.
fn dbt_mart_totals(bin: &Path, root: &Path) -> Result<String, Error> {
    let script = r#"
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
marts = [r[0] for r in con.execute("select table_name from information_schema.tables where table_name like 'mart_%'").fetchall()]
rows = revenue = users = 0
for mart in marts:
    r, v, u = con.execute(f'select count(*), cast(round(sum(revenue) * 100) as bigint), sum(users) from "{mart}"').fetchone()
    rows += r; revenue += v or 0; users += u or 0
print(f"rows {rows}, revenue {revenue}, users {users}")
"#;
    let output = Command::new(bin.join("python"))
        .arg("-c")
        .arg(script)
        .arg(root.join("warehouse.duckdb"))
        .output()?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// The run results of the last dp run in `root`.
fn last_results(root: &Path) -> Result<serde_json::Value, Error> {
    let text = std::fs::read_to_string(root.join("target/run_results.json"))?;
    Ok(serde_json::from_str(&text)?)
}

fn run_to_end(command: &mut Command) -> Result<(), Error> {
    let status = command.stdout(std::process::Stdio::null()).status()?;
    if !status.success() {
        return Err(format!("{command:?} failed").into());
    }
    Ok(())
}

/// The rows of the Parquet files under two date-partitioned folders, which must be equal;
/// returns how many there are.
async fn same_rows(one: &Path, other: &Path) -> Result<usize, Error> {
    let mut tables = Vec::new();
    for folder in [one, other] {
        let ctx = datafusion::prelude::SessionContext::new();
        let options = datafusion::prelude::ParquetReadOptions::default()
            .table_partition_cols(vec![("date".to_string(), DataType::Utf8)]);
        ctx.register_parquet("t", format!("{}/", folder.display()), options)
            .await?;
        let sql =
            "select date, cohort, revenue, user_count, total_events from t order by date, cohort";
        let batches = ctx.sql(sql).await?.collect().await?;
        tables.push(pretty_format_batches(&batches)?.to_string());
    }
    if tables[0] != tables[1] {
        return Err(format!("dp and DataFusion disagree:\n{}\n{}", tables[0], tables[1]).into());
    }
    Ok(tables[0].lines().count().saturating_sub(4))
}

/// `dp <args>` in `project`.
fn dp_in(dp: &Path, project: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(dp);
    command
        .args(args)
        .arg("--project-dir")
        .arg(project)
        .env_remove("RUST_LOG");
    command
}

fn row(command: &str, models: &str, stats: &Stats, per: Option<usize>) {
    let per_model = per.map_or_else(String::new, |n| {
        format!("{:.2} ms", stats.median.as_secs_f64() * 1000.0 / n as f64)
    });
    println!(
        "| `{command}` | {models} | {} | {} | {} | {per_model} | {} |",
        ms(stats.median),
        ms(stats.min),
        ms(stats.max),
        mib(stats.peak_memory)
    );
}

fn compare(run: &str, dp: &Stats, raw: &Stats) {
    let ratio = dp.median.as_secs_f64() / raw.median.as_secs_f64();
    for (who, stats, ratio) in [
        ("dp", dp, format!("{ratio:.2}x")),
        ("DataFusion", raw, String::new()),
    ] {
        println!(
            "| {run}, {who} | {} | {} | {} | {} | {ratio} |",
            ms(stats.median),
            ms(stats.min),
            ms(stats.max),
            mib(stats.peak_memory)
        );
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// Events in `out`, made by this program's `events` command unless an earlier run made them.
fn generate_events(
    bench: &Path,
    out: &Path,
    days: i64,
    rows: usize,
    users: u64,
) -> Result<(), Error> {
    let done = out.join(".complete");
    if done.exists() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(out);
    eprintln!(
        "generating {days} dates x {rows} rows into {}",
        out.display()
    );
    run_to_end(
        Command::new(bench)
            .arg("events")
            .args(["--days", &days.to_string(), "--rows", &rows.to_string()])
            .args(["--users", &users.to_string(), "--out"])
            .arg(out),
    )?;
    std::fs::write(done, "")?;
    Ok(())
}

/// A generated project of `models` models over the events in `events`.
fn generate_project(
    bench: &Path,
    work: &Path,
    models: usize,
    events: &Path,
) -> Result<PathBuf, Error> {
    let out = work.join(format!("project-{models}"));
    let data = events.parent().expect("the events folder has a parent");
    run_to_end(
        Command::new(bench)
            .args(["project", "--models", &models.to_string(), "--out"])
            .arg(&out)
            .arg("--data")
            .arg(data),
    )?;
    Ok(out)
}

/// A project named `name` in `work/<name>` (replaced), with the events in `events` as its
/// source `raw.events`, partitioned by date, and no model yet.
fn events_project(work: &Path, name: &str, events: &Path) -> Result<PathBuf, Error> {
    let root = work.join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("models"))?;
    std::fs::write(root.join("dp_project.yml"), format!("name: {name}\n"))?;
    std::fs::write(
        root.join("models/sources.yml"),
        format!(
            "sources:\n  - name: raw\n    tables:\n      - name: events\n        location: file://{}/\n        partitioned_by: [date]\n",
            events.display()
        ),
    )?;
    Ok(root)
}

/// A project with one model, daily_summary, over the events in `events`.
fn summary_project(work: &Path, events: &Path) -> Result<PathBuf, Error> {
    let root = events_project(work, "daily_summary_bench", events)?;
    let model = daily_summary_sql(
        "{{ source('raw', 'events') }}",
        "{% if var('date', none) %}where date = '{{ var(\"date\") }}'{% endif %}",
    );
    std::fs::write(
        root.join("models/daily_summary.sql"),
        format!(
            "{{{{ config(materialized='partitioned', partition_by='date', diff={{'key': ['date', 'cohort']}}) }}}}\n{model}"
        ),
    )?;
    Ok(root)
}

/// Copy a project's files, without what a run left in it.
fn copy_project(from: &Path, to: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(to);
    let status = Command::new("cp").arg("-r").arg(from).arg(to).status()?;
    if !status.success() {
        return Err(format!("copying {} failed", from.display()).into());
    }
    for folder in ["warehouse", "target"] {
        let _ = std::fs::remove_dir_all(to.join(folder));
    }
    Ok(())
}

/// Where the outputs of earlier runs go, so that each build starts with an empty warehouse.
/// Deleting thousands of files right before a run slows the file creation the run does (ext4's
/// inode allocator avoids recently freed inodes), so they are deleted after each benchmark.
struct Trash {
    folder: PathBuf,
    moved: std::cell::Cell<usize>,
}

impl Trash {
    fn new(work: &Path) -> Self {
        let folder = work.join("trash");
        let _ = std::fs::remove_dir_all(&folder);
        Self {
            folder,
            moved: std::cell::Cell::new(0),
        }
    }

    /// Move what a run of dp (or dbt) left in `project` out of its way.
    fn clear(&self, project: &Path) {
        for name in ["warehouse", "target", "warehouse.duckdb", "logs"] {
            let from = project.join(name);
            if from.exists() {
                self.clear_path(&from);
            }
        }
    }

    /// Move one file or folder out of the way.
    fn clear_path(&self, path: &Path) {
        self.moved.set(self.moved.get() + 1);
        let _ = std::fs::create_dir_all(&self.folder);
        let _ = std::fs::rename(path, self.folder.join(self.moved.get().to_string()));
    }

    fn empty(&self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// The files of `raw.events` that the last build's daily_summary read.
fn files_read(project: &Path) -> Result<u64, Error> {
    last_results(project)?["results"][0]["source_files"]["raw.events"]
        .as_u64()
        .ok_or_else(|| "run_results.json has no source_files for raw.events".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_summary_project_passes_dp_check() {
        let work = tempfile::tempdir().unwrap();
        let events =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../example_project/data/raw/events");
        let root = summary_project(work.path(), &std::path::absolute(events).unwrap()).unwrap();
        let prepared = dp_engine::prepare(&dp_engine::PrepareOptions {
            project_dir: root,
            vars: vec!["date=2024-01-15".to_string()],
            ..Default::default()
        })
        .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let plan = runtime.block_on(dp_engine::check(&prepared)).unwrap().plan;
        let model = plan
            .models
            .iter()
            .find(|m| m.name == "daily_summary")
            .unwrap();
        assert!(
            model.sql.contains("where date = '2024-01-15'"),
            "{}",
            model.sql
        );
    }
}
