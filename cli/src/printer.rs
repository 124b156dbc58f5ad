//! Reporter implementations: how a run looks on stdout, for people or as JSON lines.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use dp_engine::report::{
    ModelResult, ModelStatus, Reporter, RunEvent, RunSummary, TestResult, TestStatus,
};
use miette::{GraphicalReportHandler, GraphicalTheme};

use crate::args::LogFormat;

/// Writes run events to stdout.
pub struct Printer {
    format: LogFormat,
    quiet: bool,
    out: Mutex<std::io::Stdout>,
}

impl Printer {
    pub fn new(format: LogFormat, quiet: bool) -> Self {
        Self {
            format,
            quiet,
            out: Mutex::new(std::io::stdout()),
        }
    }

    fn write(&self, text: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed stdout (a pipe to `head`) must not stop the run.
        let _ = writeln!(out, "{text}");
    }

    fn human(&self, event: RunEvent<'_>) -> Option<String> {
        match event {
            RunEvent::RunStarted {
                models, threads, ..
            } => (!self.quiet).then(|| {
                let plural = if models == 1 { "" } else { "s" };
                format!("Building {models} model{plural} ({threads} at a time)")
            }),
            RunEvent::ModelStarted { .. } => None,
            RunEvent::ModelFinished {
                result,
                index,
                total,
            } => {
                let mut text = model_line(result, index, total);
                for test in &result.tests {
                    if test.status != TestStatus::Pass || !self.quiet {
                        text.push_str("\n       ");
                        text.push_str(&test_lines(test, "             "));
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
            RunEvent::RunFinished { summary } => Some(summary_line(summary)),
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

fn model_line(result: &ModelResult, index: usize, total: usize) -> String {
    let width = total.to_string().len();
    let status = match result.status {
        ModelStatus::Success => "OK",
        ModelStatus::Failed(_) => "ERROR",
        ModelStatus::Skipped { .. } => "SKIP",
        ModelStatus::NoData { .. } => "NODATA",
    };
    let detail = match &result.status {
        ModelStatus::Skipped { .. } | ModelStatus::NoData { .. } => {
            result.status.message().unwrap_or_default()
        }
        ModelStatus::Failed(_) => format!("{:.2}s", result.elapsed.as_secs_f64()),
        ModelStatus::Success => {
            let version = result
                .version
                .map_or_else(|| "nothing to commit".to_string(), |v| format!("v{v}"));
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

/// A diagnostic drawn as miette draws it, with colour only on a terminal.
pub fn render_diagnostic(diagnostic: &dyn miette::Diagnostic) -> String {
    let theme = if std::io::stdout().is_terminal() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut text = String::new();
    let _ = GraphicalReportHandler::new_themed(theme).render_report(&mut text, diagnostic);
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
            model,
            index,
            total,
        } => {
            json!({"event": "model_started", "model": model, "index": index, "total": total})
        }
        RunEvent::ModelFinished {
            result,
            index,
            total,
        } => json!({
            "event": "model_finished",
            "model": result.model,
            "index": index,
            "total": total,
            "status": result.status.name(),
            "rows": result.rows,
            "partitions": result.partitions,
            "delta_version": result.version,
            "duration_ms": result.elapsed.as_millis() as u64,
            "message": result.status.message(),
            "tests": result.tests,
        }),
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
    })
}
