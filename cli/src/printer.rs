//! Reporter implementations: how a run looks on stdout, for people or as JSON lines.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use dp_engine::report::{
    BackfillSummary, DiffMode, ModelDiff, ModelResult, ModelStatus, Reporter, RunEvent, RunSummary,
    TestResult, TestStatus, ValueResult, ValueStatus, mask,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::args::LogFormat;

/// Writes run events to stdout: lines, and on a terminal a live progress line below them.
pub struct Printer {
    format: LogFormat,
    quiet: bool,
    out: Mutex<std::io::Stdout>,
    /// The live progress line: only on a terminal, for people.
    progress: Option<ProgressBar>,
    /// The models running now, for the progress line.
    running: Mutex<BTreeSet<String>>,
    /// A backfill: a line per value, and model lines only for failures.
    backfill: bool,
}

impl Printer {
    pub fn new(format: LogFormat, quiet: bool) -> Self {
        let live = format == LogFormat::Human && !quiet && std::io::stdout().is_terminal();
        Self {
            format,
            quiet,
            out: Mutex::new(std::io::stdout()),
            progress: live.then(|| {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            }),
            running: Mutex::new(BTreeSet::new()),
            backfill: false,
        }
    }

    /// A printer for a backfill.
    pub fn for_backfill(format: LogFormat, quiet: bool) -> Self {
        Self {
            backfill: true,
            ..Self::new(format, quiet)
        }
    }

    fn write(&self, text: &str) {
        let text = mask(text);
        let write = || {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            // A closed stdout (a pipe to `head`) must not stop the run.
            let _ = writeln!(out, "{text}");
        };
        match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Keep the progress line up to date with `event`.
    fn show_progress(&self, event: &RunEvent<'_>) {
        let Some(bar) = &self.progress else {
            return;
        };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match *event {
            RunEvent::RunStarted { models, .. } if !self.backfill => {
                bar.set_length(models as u64);
                bar.set_style(style(
                    "{spinner} [{elapsed_precise}] {pos}/{len} models  {msg}",
                ));
            }
            RunEvent::BackfillStarted { values, .. } => {
                bar.set_length(values as u64);
                bar.set_style(style(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} dates ({per_sec}, ETA {eta})  {msg}",
                ));
            }
            RunEvent::ModelStarted { model, .. } if !self.backfill => {
                running.insert(model.to_string());
            }
            RunEvent::ModelFinished { result, .. } if !self.backfill => {
                running.remove(&result.model);
                bar.inc(1);
            }
            RunEvent::ValueFinished { counts, .. } => {
                bar.inc(1);
                bar.set_message(format!(
                    "built {} · up to date {} · failed {}",
                    counts.built, counts.up_to_date, counts.failed
                ));
            }
            RunEvent::RunFinished { .. } if !self.backfill => bar.finish_and_clear(),
            RunEvent::BackfillFinished { .. } => bar.finish_and_clear(),
            _ => {}
        }
        if !self.backfill && !running.is_empty() {
            let names: Vec<&str> = running.iter().map(String::as_str).collect();
            bar.set_message(format!("running: {}", names.join(", ")));
        }
    }

    fn human(&self, event: RunEvent<'_>) -> Option<String> {
        match event {
            RunEvent::RunStarted {
                models, threads, ..
            } => (!self.quiet && !self.backfill).then(|| {
                let plural = if models == 1 { "" } else { "s" };
                format!("Building {models} model{plural} ({threads} at a time)")
            }),
            RunEvent::ModelStarted { .. } => None,
            RunEvent::ModelFinished { result, .. }
                if self.backfill && !matches!(result.status, ModelStatus::Failed(_)) =>
            {
                None
            }
            RunEvent::ModelFinished {
                result,
                index,
                total,
                ..
            } => {
                let mut text = model_line(result, index, total);
                for test in &result.tests {
                    if test.status != TestStatus::Pass || !self.quiet {
                        text.push_str("\n       ");
                        text.push_str(&test_lines(test, "             "));
                    }
                }
                if let Some(diff) = result.diff.as_ref().filter(|_| !self.quiet) {
                    for line in diff_lines(diff) {
                        text.push_str("\n       ");
                        text.push_str(&line);
                    }
                }
                match &result.status {
                    ModelStatus::Failed(error) => {
                        Some(format!("{text}\n{}", render_diagnostic(error.as_ref())))
                    }
                    _ if self.quiet
                        && result.tests.iter().all(|t| t.status == TestStatus::Pass) =>
                    {
                        None
                    }
                    _ => Some(text),
                }
            }
            RunEvent::RunFinished { .. } if self.backfill => None,
            RunEvent::RunFinished { summary } => Some(summary_line(summary)),
            RunEvent::BackfillStarted {
                values, threads, ..
            } => (!self.quiet).then(|| format!("Backfilling {values} dates ({threads} at a time)")),
            RunEvent::ValueFinished { result, .. } => {
                (!self.quiet || result.status() == ValueStatus::Failed).then(|| value_line(result))
            }
            RunEvent::BackfillFinished { summary } => Some(backfill_summary(summary)),
            RunEvent::HookFinished {
                hook,
                command,
                error,
            } => match error {
                None => (!self.quiet).then(|| format!("Hook {hook} `{command}`: ok")),
                Some(error) => Some(format!("Hook {hook} `{command}` FAILED: {error}")),
            },
            RunEvent::TestFinished { result, index } => (!self.quiet
                || result.status != TestStatus::Pass)
                .then(|| format!("{index:>3} {}", test_lines(result, "    "))),
            RunEvent::TestsFinished { summary } => {
                let tests: Vec<&TestResult> = summary.results.iter().collect();
                Some(format!(
                    "Done in {:.2}s: {}",
                    summary.elapsed.as_secs_f64(),
                    test_counts(&tests)
                ))
            }
        }
    }
}

/// A test's line, then what it found, each further line indented by `indent`.
fn test_lines(test: &TestResult, indent: &str) -> String {
    let status = match test.status {
        TestStatus::Pass => "PASS",
        TestStatus::Warn => "WARN",
        TestStatus::Fail => "FAIL",
        TestStatus::Error => "ERROR",
    };
    let mut text = format!(
        "{status:<5} {} test {} on {}",
        test.kind.name(),
        test.name,
        test.subject
    );
    if test.failures > 0 {
        let rows = if test.failures == 1 { "row" } else { "rows" };
        text.push_str(&format!(": {} failing {rows}", test.failures));
    }
    if let Some(file) = &test.failures_file {
        text.push_str(&format!(" (all in {})", file.display()));
    }
    if test.status != TestStatus::Pass
        && let Some(at) = &test.defined_at
    {
        text.push_str(&format!("\n{indent}defined at {at}"));
    }
    for block in [&test.sample, &test.detail].into_iter().flatten() {
        for line in block.lines() {
            text.push('\n');
            text.push_str(indent);
            text.push_str(line);
        }
    }
    text
}

impl Reporter for Printer {
    fn report(&self, event: RunEvent<'_>) {
        self.show_progress(&event);
        match self.format {
            LogFormat::Human => {
                if let Some(text) = self.human(event) {
                    self.write(&text);
                }
            }
            LogFormat::Json => {
                if let Some(json) = json_event(event) {
                    self.write(&json.to_string());
                }
            }
        }
    }
}

/// A build's diff, in a few lines: rows, changes by key with sample keys, changed columns.
fn diff_lines(diff: &ModelDiff) -> Vec<String> {
    let signed = |before: u64, after: u64| {
        let change = after as i128 - before as i128;
        format!("{before} → {after} ({change:+})")
    };
    let mut rows = format!("DIFF  rows {}", signed(diff.rows_before, diff.rows_after));
    if diff.mode == DiffMode::Counts {
        rows.push_str(" (row counts only: more rows than the diff's max_rows)");
    }
    let mut lines = vec![rows];
    let partitions: Vec<String> = diff
        .partitions
        .iter()
        .filter(|(_, rows)| diff.partitions.len() > 1 && rows.before != rows.after)
        .take(5)
        .map(|(name, rows)| format!("{name}: {}", signed(rows.before, rows.after)))
        .collect();
    if !partitions.is_empty() {
        lines.push(format!("      partitions {}", partitions.join(", ")));
    }
    if let (Some(added), Some(removed), Some(changed)) = (diff.added, diff.removed, diff.changed) {
        lines.push(format!(
            "      by ({}): {added} added, {removed} removed, {changed} changed",
            diff.key.join(", ")
        ));
        for (kind, keys) in &diff.samples {
            let keys: Vec<String> = keys
                .iter()
                .map(|key| {
                    key.iter()
                        .map(|(column, value)| format!("{column}={value}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            lines.push(format!("        {kind}: {}", keys.join(", ")));
        }
    }
    // Columns, where there was something to compare with.
    let changed = diff
        .columns
        .iter()
        .filter(|(_, c)| diff.rows_before > 0 && c.changed());
    for (name, column) in changed {
        let mut parts = Vec::new();
        if column.sum_before != column.sum_after {
            let (before, after) = (
                column.sum_before.unwrap_or(0.0),
                column.sum_after.unwrap_or(0.0),
            );
            let pct = match before {
                0.0 => String::new(),
                _ => format!(" ({:+.2}%)", 100.0 * (after - before) / before.abs()),
            };
            parts.push(format!("sum {before} → {after}{pct}"));
        }
        if column.nulls_before != column.nulls_after {
            parts.push(format!(
                "nulls {}",
                signed(column.nulls_before, column.nulls_after)
            ));
        }
        if column.distinct_before != column.distinct_after {
            let approximate = if column.distinct_approximate {
                "≈"
            } else {
                ""
            };
            parts.push(format!(
                "distinct {approximate}{}",
                signed(column.distinct_before, column.distinct_after)
            ));
        }
        for (what, before, after) in [
            ("min", column.min_before, column.min_after),
            ("max", column.max_before, column.max_after),
        ] {
            if let (Some(before), Some(after)) = (before, after)
                && before != after
            {
                parts.push(format!("{what} {before} → {after}"));
            }
        }
        if !parts.is_empty() {
            lines.push(format!("      {name}: {}", parts.join(", ")));
        }
    }
    lines
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A backfill value's line: its date, what became of it, and its failed models.
fn value_line(result: &ValueResult) -> String {
    let status = match result.status() {
        ValueStatus::Built => "BUILT",
        ValueStatus::UpToDate => "DONE",
        ValueStatus::Failed => "FAILED",
    };
    let detail = match (&result.summary, &result.error) {
        (_, Some(error)) => format!("\n{}", render_diagnostic(error.as_ref())),
        (Some(_), None) if result.status() == ValueStatus::UpToDate => {
            "already published from the same SQL and vars".to_string()
        }
        (Some(summary), None) => {
            let rows: u64 = summary.results.iter().map(|r| r.rows).sum();
            let built = summary
                .results
                .iter()
                .filter(|r| matches!(r.status, ModelStatus::Success))
                .count();
            let failed: Vec<&str> = summary
                .results
                .iter()
                .filter(|r| !r.status.succeeded())
                .map(|r| r.model.as_str())
                .collect();
            let models = if built == 1 { "model" } else { "models" };
            match failed.is_empty() {
                true => format!("{built} {models} built, {rows} rows"),
                false => format!("failed: {}", failed.join(", ")),
            }
        }
        (None, None) => String::new(),
    };
    format!("{:<12} {status:<7} {detail}", result.value)
}

/// The end of a backfill: the counts, the dates that failed and the command to retry them.
fn backfill_summary(summary: &BackfillSummary) -> String {
    let counts = summary.counts();
    let mut text = format!(
        "Done in {:.2}s: {} dates built, {} up to date, {} failed",
        summary.elapsed.as_secs_f64(),
        counts.built,
        counts.up_to_date,
        counts.failed
    );
    let failed = summary.failed();
    if !failed.is_empty() {
        text.push_str(&format!(
            "\nFailed: {}\nRetry them with: dp retry",
            failed.join(", ")
        ));
    }
    text
}

fn model_line(result: &ModelResult, index: usize, total: usize) -> String {
    let width = total.to_string().len();
    let status = match result.status {
        ModelStatus::Success => "OK",
        ModelStatus::Failed(_) => "ERROR",
        ModelStatus::Skipped { .. } => "SKIP",
        ModelStatus::NoData { .. } => "NODATA",
        ModelStatus::UpToDate { .. } => "DONE",
    };
    let detail = match &result.status {
        ModelStatus::Skipped { .. } | ModelStatus::NoData { .. } | ModelStatus::UpToDate { .. } => {
            result.status.message().unwrap_or_default()
        }
        ModelStatus::Failed(_) => {
            let class = result.failure_class.map_or("", |c| c.name());
            let attempts = match result.attempts {
                0 | 1 => String::new(),
                n => format!(" after {n} attempts"),
            };
            format!("{:.2}s  {class}{attempts}", result.elapsed.as_secs_f64())
        }
        ModelStatus::Success => {
            let version = match (result.version, result.dry_run) {
                (_, true) => "dry run, not committed".to_string(),
                (Some(v), false) => format!("v{v}"),
                (None, false) => "nothing to commit".to_string(),
            };
            let partitions = match result.partitions.len() {
                0 => String::new(),
                1 => format!("  {}", result.partitions[0]),
                n => format!("  {n} partitions"),
            };
            format!(
                "{:>9} rows  {version}{partitions}  {:.2}s",
                result.rows,
                result.elapsed.as_secs_f64()
            )
        }
    };
    format!(
        "{index:>width$}/{total} {status:<6} {:<28} {:<11} {detail}",
        result.model,
        result.materialized.to_string()
    )
}

fn summary_line(summary: &RunSummary) -> String {
    let count = |name: &str| {
        summary
            .results
            .iter()
            .filter(|r| r.status.name() == name)
            .count()
    };
    let mut line = format!(
        "Done in {:.2}s: {} ok, {} error, {} skipped",
        summary.elapsed.as_secs_f64(),
        count("success"),
        count("error"),
        count("skipped")
    );
    if count("no_data") > 0 {
        line.push_str(&format!(", {} no data", count("no_data")));
    }
    let tests: Vec<&TestResult> = summary.results.iter().flat_map(|r| &r.tests).collect();
    if !tests.is_empty() {
        line.push_str(&format!("; tests: {}", test_counts(&tests)));
    }
    line
}

/// `12 passed, 1 failed, 2 warned`: the passed count, and the others when there are any.
fn test_counts(tests: &[&TestResult]) -> String {
    let count = |status: TestStatus| tests.iter().filter(|t| t.status == status).count();
    let mut parts = vec![format!("{} passed", count(TestStatus::Pass))];
    for (status, word) in [
        (TestStatus::Fail, "failed"),
        (TestStatus::Error, "errored"),
        (TestStatus::Warn, "warned"),
    ] {
        if count(status) > 0 {
            parts.push(format!("{} {word}", count(status)));
        }
    }
    parts.join(", ")
}

/// A diagnostic drawn as miette draws it, with colour only on a terminal, its secrets masked
/// before miette wraps its lines (at the width `COLUMNS` gives, if any).
pub fn render_diagnostic(diagnostic: &dyn miette::Diagnostic) -> String {
    let theme = if std::io::stdout().is_terminal() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut handler = GraphicalReportHandler::new_themed(theme);
    if let Some(columns) = crate::masked::columns() {
        handler = handler.with_width(columns);
    }
    let mut text = String::new();
    let _ = handler.render_report(&mut text, &crate::masked::Masked::new(diagnostic));
    text
}

fn json_event(event: RunEvent<'_>) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match event {
        RunEvent::RunStarted {
            run_id,
            models,
            threads,
        } => {
            json!({"event": "run_started", "run_id": run_id, "models": models, "threads": threads})
        }
        RunEvent::ModelStarted {
            run_id,
            model,
            index,
            total,
        } => {
            json!({"event": "model_started", "run_id": run_id, "model": model, "index": index, "total": total})
        }
        RunEvent::ModelFinished {
            run_id,
            result,
            index,
            total,
        } => {
            // The fields of run_results.json, and where the event stands in the run.
            let mut value =
                serde_json::to_value(dp_engine::report::entry(result)).unwrap_or_default();
            value["event"] = json!("model_finished");
            value["run_id"] = json!(run_id);
            value["partition"] = match result.partitions.len() {
                0 => serde_json::Value::Null,
                _ => json!(result.partitions.join(",")),
            };
            value["index"] = json!(index);
            value["total"] = json!(total);
            value
        }
        RunEvent::TestFinished { result, index } => {
            let mut value = serde_json::to_value(result).unwrap_or_default();
            value["event"] = json!("test_finished");
            value["index"] = json!(index);
            value
        }
        RunEvent::TestsFinished { summary } => json!({
            "event": "tests_finished",
            "run_id": summary.run_id,
            "success": summary.success(),
            "duration_ms": summary.elapsed.as_millis() as u64,
        }),
        RunEvent::RunFinished { summary } => json!({
            "event": "run_finished",
            "run_id": summary.run_id,
            "success": summary.success(),
            "duration_ms": summary.elapsed.as_millis() as u64,
        }),
        RunEvent::BackfillStarted {
            run_id,
            values,
            threads,
        } => {
            json!({"event": "backfill_started", "run_id": run_id, "values": values, "threads": threads})
        }
        RunEvent::ValueFinished {
            result,
            counts,
            total,
        } => json!({
            "event": "value_finished",
            "value": result.value,
            "status": result.status(),
            "message": result.error.as_ref().map(|e| e.to_string()),
            "done": counts,
            "total": total,
        }),
        RunEvent::HookFinished {
            hook,
            command,
            error,
        } => json!({"event": "hook_finished", "hook": hook, "command": command, "error": error}),
        RunEvent::BackfillFinished { summary } => json!({
            "event": "backfill_finished",
            "run_id": summary.run_id,
            "success": summary.success(),
            "failed": summary.failed(),
            "duration_ms": summary.elapsed.as_millis() as u64,
        }),
    })
}
