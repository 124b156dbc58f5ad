//! OPERATIONS: what an operator runs on published tables, beside builds: history, rollback,
//! the values of a backfill, vacuum. In: a prepared project and its target. Out: what was
//! done, per model.

mod backfill;
mod deps;
mod hooks;
mod init;
mod rollback;
mod show;

pub use backfill::{check_missing_vars, check_var_read};
pub use deps::{DepsError, Installed, LOCK_FILE, deps};
pub use hooks::run_hooks;
pub use init::{InitError, init};
pub use rollback::{RollbackPlan, plan as plan_rollback, rollback};
pub use show::{Operation, Reader, ShowQuery};

use crate::session::{SessionError, Warehouse};
use crate::storage::{StorageError, VacuumOptions, Vacuumed};

/// Why an operation could not be done.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum OpsError {
    #[error("no model `{name}` in this project")]
    #[diagnostic(code(dp::unknown_model))]
    UnknownModel {
        name: String,
        #[help]
        did_you_mean: Option<String>,
    },

    #[error("`{model}` has no table yet: nothing to show or restore")]
    #[diagnostic(code(dp::no_table), help("build it first: dp build --select {model}"))]
    NoTable { model: String },

    #[error("`{model}` is at version {latest}: version {version} is not an earlier one")]
    #[diagnostic(
        code(dp::rollback_version),
        help("`dp history {model}` lists its versions")
    )]
    NotEarlier {
        model: String,
        version: u64,
        latest: u64,
    },

    #[error(
        "rollback of `{model}` to version {version} refused: downstream models were built from a version it undoes: {downstream}"
    )]
    #[diagnostic(
        code(dp::rollback_downstream),
        help(
            "their published data would no longer match `{model}`: pass --force to roll back anyway, then rebuild them: {command}"
        )
    )]
    DownstreamBuiltFrom {
        model: String,
        version: u64,
        downstream: String,
        command: String,
    },

    #[error(
        "the last run's vars {names} held a secret, recorded masked: dp retry cannot give them again"
    )]
    #[diagnostic(
        code(dp::retry_masked),
        help(
            "run the build again with its --vars; pass secrets with env_var('DP_SECRET_...') rather than --vars"
        )
    )]
    MaskedVars { names: String },

    #[error("cannot read the last run from {}: {reason}", path.display())]
    #[diagnostic(
        code(dp::run_results),
        help(
            "dp retry runs again what the last build or backfill left undone, as it recorded in this file; a run that was killed or a file that was cut short leaves nothing to retry from: run the build or backfill again"
        )
    )]
    RunResults {
        path: std::path::PathBuf,
        reason: String,
    },

    #[error("the backfill gives each date as var `{var}`, but {reads}")]
    #[diagnostic(code(dp::backfill_var), help("{help}"))]
    BackfillVar {
        var: String,
        /// Which models read which vars.
        reads: String,
        help: String,
        /// Where a var the models read has no value.
        #[related]
        problems: Vec<crate::render::RenderError>,
    },

    #[error("`{text}` is not a {what}")]
    #[diagnostic(code(dp::backfill_range), help("{help}"))]
    BadRange {
        text: String,
        what: &'static str,
        help: &'static str,
    },

    #[error("no macro `{name}` in this project or its packages")]
    #[diagnostic(code(dp::unknown_macro))]
    UnknownMacro {
        name: String,
        #[help]
        did_you_mean: Option<String>,
    },

    #[error("invalid --args: {message}")]
    #[diagnostic(
        code(dp::invalid_args),
        help(
            "pass the macro's keyword arguments as a YAML mapping: --args '{{table: orders, limit: 10}}'"
        )
    )]
    InvalidArgs { message: String },

    #[error("the query of `{name}` cannot run: {message}")]
    #[diagnostic(
        code(dp::show_query),
        help("dp show reads the published tables: build what the query reads first")
    )]
    Query { name: String, message: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Render(#[from] crate::render::RenderError),

    #[error(transparent)]
    #[diagnostic(transparent)]
    Storage(#[from] StorageError),
}

impl From<SessionError> for OpsError {
    fn from(error: SessionError) -> Self {
        OpsError::Storage(error.into())
    }
}

/// The values of a backfill: every date from `start` to `end` (both included, `YYYY-MM-DD`),
/// `step` apart (`1d`, `7d`, `1w`...).
pub fn backfill_values(start: &str, end: &str, step: &str) -> Result<Vec<String>, OpsError> {
    let date = |text: &str| {
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| OpsError::BadRange {
            text: text.to_string(),
            what: "date",
            help: "give dates as YYYY-MM-DD, such as 2024-01-31",
        })
    };
    let (start, end) = (date(start)?, date(end)?);
    let bad_step = || OpsError::BadRange {
        text: step.to_string(),
        what: "step",
        help: "give a whole number of days or weeks, such as 1d or 1w",
    };
    let (count, unit) = step.split_at(step.find(|c: char| !c.is_ascii_digit()).unwrap_or(0));
    let count: usize = count.parse().map_err(|_| bad_step())?;
    let days = match unit {
        "d" => Some(count),
        "w" => count.checked_mul(7),
        _ => None,
    }
    .filter(|days| *days > 0)
    .ok_or_else(bad_step)?;
    if end < start {
        return Err(OpsError::BadRange {
            text: format!("{start} .. {end}"),
            what: "range",
            help: "--end must not be before --start",
        });
    }
    Ok(start
        .iter_days()
        .step_by(days)
        .take_while(|day| *day <= end)
        .map(|day| day.format("%Y-%m-%d").to_string())
        .collect())
}

/// One model's vacuum.
#[derive(Debug)]
pub struct VacuumResult {
    pub model: String,
    pub vacuumed: Vacuumed,
}

/// Vacuum the tables of `models`, one after the other. A model without a table (never built, or
/// ephemeral) has nothing to vacuum.
pub async fn vacuum(
    models: &[String],
    warehouse: &Warehouse,
    options: &VacuumOptions,
) -> Vec<VacuumResult> {
    let mut results = Vec::new();
    for name in models {
        let vacuumed = match warehouse.table_url(name) {
            Ok(url) => crate::storage::vacuum(&warehouse.stores, name, &url, options).await,
            Err(error) => Vacuumed {
                files: Vec::new(),
                error: Some(error.into()),
            },
        };
        results.push(VacuumResult {
            model: name.clone(),
            vacuumed,
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_gives_every_step_from_start_to_end_included() {
        let values = backfill_values("2024-01-30", "2024-02-02", "1d").unwrap();
        assert_eq!(
            values,
            ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"]
        );
        let weekly = backfill_values("2024-01-01", "2024-01-20", "1w").unwrap();
        assert_eq!(weekly, ["2024-01-01", "2024-01-08", "2024-01-15"]);
        for (start, end, step) in [
            ("2024-01-02", "2024-01-01", "1d"),
            ("2024-13-01", "2024-01-01", "1d"),
            ("2024-01-01", "2024-01-02", "0d"),
            ("2024-01-01", "2024-01-02", "1h"),
            ("2024-01-01", "2024-01-02", "d"),
            ("2024-01-01", "2024-01-02", "2635249153387078803w"),
        ] {
            assert!(
                backfill_values(start, end, step).is_err(),
                "{start} {end} {step}"
            );
        }
    }
}
