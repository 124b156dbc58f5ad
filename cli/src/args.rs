//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// dp: a declarative, SQL-first data pipeline engine on DataFusion and Delta Lake.
#[derive(Debug, Parser)]
#[command(name = "dp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The project folder (default: the current folder, or the nearest one above it holding
    /// dp_project.yml).
    #[arg(long, global = true, default_value = ".")]
    pub project_dir: PathBuf,
    /// The target of dp_project.yml to run against.
    #[arg(long, global = true)]
    pub target: Option<String>,
    /// More log output (-v: dp's info, -vv: dp's debug, -vvv: every library's debug too);
    /// RUST_LOG overrides.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// How events and logs are written.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the selected models and seeds and publish each to its Delta table.
    Build(BuildArgs),
    /// Load the selected seeds (CSV files under seeds/) into their Delta tables.
    Seed(BuildArgs),
    /// Run the selected snapshots: each records what changed in what it snapshots since its
    /// last run as new versions of rows (dbt's snapshots), in one commit.
    Snapshot(BuildArgs),
    /// Run the tests of the selected nodes: data and singular tests against the published data,
    /// and unit tests (`--select test_type:unit` for only those).
    Test(CoverArgs),
    /// Load, render and plan every model from schemas alone, without reading data, and report
    /// every problem at once.
    Check(CheckArgs),
    /// Write the selected models' SQL to target/compiled/ without running anything.
    Compile(SelectArgs),
    /// List the selected nodes in execution order.
    Ls(SelectArgs),
    /// Delete the files of the selected models' tables that no version needs and that are
    /// older than the retention: files replaced by later builds, and what killed builds left.
    Vacuum(VacuumArgs),
    /// Generate the project's documentation into target/ (manifest, catalog, column lineage
    /// and a page that opens offline), or serve it.
    Docs {
        #[command(subcommand)]
        command: DocsCommand,
    },
    /// Show where a model's columns come from and where they go: `model`, `model.column`,
    /// `source.table` or `source.table.column`.
    Lineage(LineageArgs),
    /// Build the selected models once for each date of a range, each date with its tests and
    /// its own commit; dates already published from the same SQL and vars are skipped.
    Backfill(BackfillArgs),
    /// Run again exactly the models (or backfill dates) that failed or were skipped in the last
    /// run, with the vars and target it had (from target/run_results.json).
    Retry(RetryArgs),
    /// A model's table versions, newest first: when, run, operation, partitions, rows, SQL
    /// hash and tests, from the Delta log.
    History(HistoryArgs),
    /// Restore a model's table to an earlier version, as a new commit.
    Rollback(RollbackArgs),
    /// Create a new project, ready to build, in a new folder.
    Init(InitArgs),
    /// Show the first rows of a model's query (`--select`) or of an inline query (`--inline`,
    /// which may call ref(), source() and macros), read from the published tables; nothing is
    /// written.
    Show(ShowArgs),
    /// Call a macro with keyword arguments (`--args '{key: value}'`), its queries answered from
    /// the published tables; what it logs with log(..., info=True) or print() is shown.
    RunOperation(RunOperationArgs),
    /// Install the packages of packages.yml (or dependencies.yml) into dbt_packages/ (the
    /// project's packages-install-path), pinned in package-lock.yml.
    Deps,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("query").required(true))]
pub struct ShowArgs {
    /// The model whose query to run.
    #[arg(short, long, group = "query")]
    pub select: Option<String>,
    /// A query to run instead, such as "select * from {{ ref('orders') }}".
    #[arg(long, group = "query")]
    pub inline: Option<String>,
    /// How many rows to show.
    #[arg(long, default_value_t = 5)]
    pub limit: usize,
    /// Variables for var(): key=value (repeatable) or a YAML mapping such as '{date: 2024-01-15}'.
    #[arg(long)]
    pub vars: Vec<String>,
    /// A table for people, or the rows as a JSON array of objects.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RunOperationArgs {
    /// The macro: its name, or `package.name`.
    #[arg(value_name = "MACRO")]
    pub name: String,
    /// The macro's keyword arguments, as a YAML mapping: '{table: orders, limit: 10}'.
    #[arg(long, default_value = "")]
    pub args: String,
    /// Variables for var(): key=value (repeatable) or a YAML mapping such as '{date: 2024-01-15}'.
    #[arg(long)]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's name, and its folder (default: the current folder, named after it).
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// The first date (YYYY-MM-DD).
    #[arg(long)]
    pub start: String,
    /// The last date, included.
    #[arg(long)]
    pub end: String,
    /// The distance between dates: 1d, 7d, 1w...
    #[arg(long, default_value = "1d")]
    pub step: String,
    /// The var each date is given.
    #[arg(long, default_value = "date")]
    pub var: String,
    /// Dates built at once (default: the target's `threads`, else the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Build again dates already published from the same SQL and vars.
    #[arg(long)]
    pub force: bool,
    /// The most memory the build's queries may hold, such as 512MB or 4GB.
    #[arg(long, value_parser = memory_size)]
    pub memory_limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Values built at once, for a backfill's dates.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The model.
    pub model: String,
    /// At most this many versions (1 or more).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit: Option<usize>,
    /// A table for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The model.
    pub model: String,
    /// The version to restore.
    #[arg(long)]
    pub to_version: u64,
    /// Roll back even when downstream models were built from a version it undoes.
    #[arg(long)]
    pub force: bool,
    /// Only show what would change.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// Write target/manifest.json, catalog.json, lineage.json and docs/index.html; the catalog
    /// and lineage cover the selected models.
    Generate(CoverArgs),
    /// Serve target/ on 127.0.0.1 (Ctrl-C stops).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct LineageArgs {
    /// `model`, `model.column`, `source.table` or `source.table.column`.
    #[arg(value_name = "NODE[.COLUMN]")]
    pub node: String,
    /// Only the columns it is derived from.
    #[arg(long, conflicts_with = "downstream")]
    pub upstream: bool,
    /// Only the columns derived from it.
    #[arg(long)]
    pub downstream: bool,
    /// A tree for people, or JSON.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
    /// Variables for var(): key=value (repeatable) or a YAML mapping such as '{date: 2024-01-15}'.
    #[arg(long)]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Keep files younger than this, such as 7d or 36h (default: the target's
    /// `vacuum_retention`, else 7d); a build still running owns files younger than that.
    #[arg(long, value_parser = duration)]
    pub retain: Option<std::time::Duration>,
    /// Only list the files that would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a retention shorter than the table's minimum (7 days unless the table sets
    /// `delta.deletedFileRetentionDuration`): only when no build of these models can be running.
    #[arg(long)]
    pub force: bool,
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    dp_engine::project::parse_duration(text).ok_or_else(|| {
        format!(
            "`{text}` is not a duration: give a whole number and a unit (s, m, h, d, w), such as 7d"
        )
    })
}

/// Which nodes, with which variables.
#[derive(Debug, Default, Args)]
pub struct SelectArgs {
    /// Nodes to select (dbt syntax: name, +name, name+, @name, tag:x, path:x, source:x; for
    /// `dp test` also test_type:data|singular|unit).
    #[arg(short, long, num_args = 1..)]
    pub select: Vec<String>,
    /// Nodes to leave out of the selection.
    #[arg(long, num_args = 1..)]
    pub exclude: Vec<String>,
    /// Variables for var(): key=value (repeatable) or a YAML mapping such as '{date: 2024-01-15}'.
    #[arg(long)]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// How problems are written: for people, or as a JSON array (file, line, column, code,
    /// message, help) for editors and CI annotations.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

/// What `dp test` and `dp docs generate` take.
#[derive(Debug, Args)]
pub struct CoverArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Stop before running anything when a model does not render or plan (default: that model
    /// fails, what reads it is skipped, and everything else runs; or the target's `fail_fast`).
    #[arg(long)]
    pub fail_fast: bool,
}

/// What `dp build` and `dp seed` take.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Models built at once (default: the target's `threads`, else twice the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The most memory the build's queries may hold, such as 512MB or 4GB (default: the
    /// target's `memory_limit`, else none); sorts, aggregations and joins spill to disk beyond it.
    #[arg(long, value_parser = memory_size)]
    pub memory_limit: Option<usize>,
    /// Rebuild incremental models whole (those whose config does not say full_refresh: false).
    #[arg(long)]
    pub full_refresh: bool,
    /// Stage, audit and diff every selected model without committing any, then delete what
    /// was staged; a model reads its upstream models' staged rows.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the diff of each build against the published rows (and its thresholds).
    #[arg(long)]
    pub no_diff: bool,
    /// Stop before building anything when a model does not render or plan (default: that model
    /// fails, what reads it is skipped, and every other model builds; or the target's
    /// `fail_fast`).
    #[arg(long)]
    pub fail_fast: bool,
}

fn memory_size(text: &str) -> Result<usize, String> {
    dp_engine::project::parse_byte_size(text).ok_or_else(|| {
        format!("`{text}` is not a memory size: give a number and a unit, such as 512MB or 4GB")
    })
}
