//! Everything a user can get wrong gives a diagnostic that names the file and line, and nothing
//! is committed. One fixture project per mistake under tests/fixtures/errors/; the optional file
//! `cmd` holds the dp arguments (default: `build`). Each diagnostic is a snapshot.

use crate::support::{TestProject, both, parquet_files, walk, workspace};

#[test]
fn every_mistake_is_a_diagnostic_and_publishes_nothing() {
    let base = workspace().join("tests/fixtures/errors");
    let mut names: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 12, "fixtures: {names:?}");
    for name in names {
        let project = TestProject::fixture(&format!("errors/{name}"));
        let cmd =
            std::fs::read_to_string(project.root.join("cmd")).unwrap_or_else(|_| "build".into());
        let args: Vec<&str> = cmd.split_whitespace().collect();
        let output = project.dp(&args);
        let text = both(&output);
        let code = output.status.code();
        assert!(
            matches!(code, Some(1) | Some(2)),
            "{name}: exit code {code:?}\n{text}"
        );
        assert!(!text.contains("panicked"), "{name} panicked:\n{text}");
        assert!(
            text.contains("models/") || text.contains("dp_project.yml"),
            "{name}: no file named\n{text}"
        );
        // The models a mistake does not reach still build (`N/M OK  model`); nothing else
        // is written.
        let built: Vec<std::path::PathBuf> = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace().skip(1);
                let model = (words.next() == Some("OK")).then(|| words.next())??;
                Some(project.table_dir(model))
            })
            .collect();
        let unbuilt = |path: &std::path::PathBuf| !built.iter().any(|dir| path.starts_with(dir));
        let data_files: Vec<_> = parquet_files(&project.root.join("warehouse"))
            .into_iter()
            .filter(unbuilt)
            .collect();
        assert!(
            data_files.is_empty(),
            "{name} left data files: {data_files:?}"
        );
        let commits: Vec<_> = walk(&project.root.join("warehouse"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|f| f != "00000000000000000000.json")
                    && p.to_string_lossy().contains("_delta_log")
                    && unbuilt(p)
            })
            .collect();
        assert!(commits.is_empty(), "{name} committed: {commits:?}");

        let root = project.root.display().to_string();
        insta::with_settings!({
            snapshot_suffix => name.clone(),
            description => format!("dp {cmd} (exit code {})", code.unwrap()),
            filters => vec![
                (root.as_str(), "[PROJECT]"),
                (r"\d+\.\d\ds", "[TIME]"),
                (r"\(\d+ at a time\)", "([THREADS] at a time)"),
            ],
        }, {
            insta::assert_snapshot!("diagnostic", text);
        });
    }
}

#[test]
fn check_reports_every_problem_of_a_project_at_once_as_json() {
    let project = TestProject::fixture("errors/several_sql_problems");
    let output = project.dp(&["check", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    let problems: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0]["file"], "models/first.sql");
    assert_eq!(problems[0]["line"], 1);
    assert_eq!(problems[0]["column"], 18);
    assert_eq!(problems[0]["code"], "dp::sql");
    assert!(
        problems[0]["help"]
            .as_str()
            .unwrap()
            .contains("did you mean `user_id`?")
    );
    assert_eq!(problems[1]["file"], "models/second.sql");
    assert_eq!(problems[1]["line"], 3);
}

#[test]
fn check_passes_on_the_example_project_without_reading_or_writing_data() {
    let project = TestProject::example();
    let out = project.dp_ok(&["check"]);
    assert!(out.contains("No problems found (4 models)"), "{out}");
    assert!(!project.root.join("warehouse").exists());
    let json = project.dp_ok(&["check", "--format", "json"]);
    assert_eq!(json.trim(), "[]");
}

#[test]
fn partition_by_a_list_struct_or_map_column_is_found_by_check_at_its_config() {
    let project = TestProject::fixture("ops");
    for (column, expression, kind) in [
        ("tags", "make_array('a', 'b')", "list"),
        ("point", "named_struct('x', 1, 'y', 2)", "struct"),
        ("attributes", "map(['k'], ['v'])", "map"),
    ] {
        let model = format!("models/by_{column}.sql");
        project.write(
            &model,
            &format!(
                "{{{{ config(materialized='partitioned', partition_by='{column}') }}}}\nselect 1 as id, {expression} as {column}\n"
            ),
        );
        let name = format!("by_{column}");
        let check = project.dp(&["check", "--select", &name, "--vars", "date=2024-01-01"]);
        let text = both(&check);
        assert_eq!(check.status.code(), Some(1), "{column}: {text}");
        assert!(text.contains("dp::partition_type"), "{column}: {text}");
        let flat = text
            .split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(&format!("is partitioned by `{column}`, a {kind} column")),
            "{column}: {text}"
        );
        assert!(
            text.contains(&format!("[{model}:1:")),
            "{column}: the config is not named\n{text}"
        );
        let build = project.dp(&["build", "--select", &name, "--vars", "date=2024-01-01"]);
        let text = both(&build);
        assert_eq!(build.status.code(), Some(1), "{column}: {text}");
        assert!(text.contains("dp::partition_type"), "{column}: {text}");
        assert!(text.contains(&format!("[{model}:1:")), "{column}: {text}");
        assert!(
            !project.table_dir(&name).exists(),
            "{column}: a table was written"
        );
        std::fs::remove_file(project.root.join(&model)).unwrap();
    }
}
