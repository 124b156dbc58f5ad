//! Issue 16: `dp docs generate` (manifest, catalog, lineage, the page), `dp docs serve` and
//! `dp lineage`, on example_project and the lineage fixture.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::path::Path;

use serde_json::Value;

use crate::support::{Running, TestProject, both, free_port, wait_for_port, workspace};

/// `(node, column, how)` of each column `model.column` is derived from, node ids shortened to
/// their name (`stg_events`, `raw.events`).
fn derived(lineage: &Value, model: &str, column: &str) -> BTreeSet<(String, String, String)> {
    let node = node_of(lineage, model);
    node["columns"][column]["derived_from"]
        .as_array()
        .unwrap_or_else(|| panic!("{model}.{column} has no lineage: {node}"))
        .iter()
        .map(|from| {
            (
                short(from["node"].as_str().unwrap()),
                from["column"].as_str().unwrap().to_string(),
                from["how"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(node, column, clause)` of each column that decides the rows of `model`.
fn row_filters(lineage: &Value, model: &str) -> BTreeSet<(String, String, String)> {
    node_of(lineage, model)["row_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|filter| {
            (
                short(filter["node"].as_str().unwrap()),
                filter["column"].as_str().unwrap().to_string(),
                filter["clause"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn node_of<'a>(lineage: &'a Value, model: &str) -> &'a Value {
    let nodes = lineage["nodes"].as_object().unwrap();
    nodes
        .iter()
        .find(|(id, _)| id.starts_with("model.") && id.ends_with(&format!(".{model}")))
        .map(|(_, node)| node)
        .unwrap_or_else(|| panic!("no node {model} in {:?}", nodes.keys()))
}

/// `model.shop_events.stg_events` → `stg_events`; `source.shop_events.raw.events` → `raw.events`.
fn short(id: &str) -> String {
    id.splitn(3, '.').nth(2).unwrap().to_string()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

pub(crate) fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

/// Validate `instance` against `schemas/<name>`.
pub(crate) fn assert_valid(name: &str, instance: &Value) {
    let schema = read_json(&workspace().join("schemas").join(name));
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
}

#[test]
fn example_project_lineage_is_exact() {
    let project = TestProject::example();
    project.dp_ok(&["docs", "generate", "--vars", "date=2024-01-15"]);
    let lineage = read_json(&project.root.join("target/lineage.json"));

    // daily_summary.revenue is the sum of stg_events.revenue, which passes raw.events.revenue on.
    assert_eq!(
        derived(&lineage, "daily_summary", "revenue"),
        set(&[("stg_events", "revenue", "aggregated")])
    );
    assert_eq!(
        derived(&lineage, "stg_events", "revenue"),
        set(&[("raw.events", "revenue", "passthrough")])
    );
    assert_eq!(
        derived(&lineage, "daily_summary", "user_count"),
        set(&[("stg_events", "user_id", "aggregated")])
    );
    // count(*) reads no column.
    assert_eq!(derived(&lineage, "daily_summary", "total_events"), set(&[]));
    // The macro's WHERE on date, and the GROUP BY, decide daily_summary's rows.
    assert_eq!(
        row_filters(&lineage, "daily_summary"),
        set(&[
            ("stg_events", "date", "where"),
            ("stg_events", "date", "group_by"),
            ("stg_events", "cohort", "group_by"),
        ])
    );
    // The window function's inputs decide which deliveries stg_events keeps.
    assert_eq!(
        row_filters(&lineage, "stg_events"),
        set(&[
            ("raw.events", "date", "where"),
            ("raw.events", "event_id", "where"),
            ("raw.events", "ts", "where"),
        ])
    );
    // Lineage crosses the ephemeral int_purchases, a node of its own.
    assert_eq!(
        derived(&lineage, "cohort_revenue", "revenue"),
        set(&[("int_purchases", "revenue", "aggregated")])
    );
    assert_eq!(
        derived(&lineage, "int_purchases", "revenue"),
        set(&[("stg_events", "revenue", "passthrough")])
    );
    assert_eq!(
        node_of(&lineage, "int_purchases")["materialized"],
        "ephemeral"
    );
    assert_eq!(
        row_filters(&lineage, "int_purchases"),
        set(&[("stg_events", "event", "where")])
    );
    assert_eq!(
        derived(&lineage, "cohort_revenue", "buyers"),
        set(&[("int_purchases", "user_id", "aggregated")])
    );
    // The columns of every model, in output order.
    let columns: Vec<&String> = node_of(&lineage, "daily_summary")["columns"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        columns,
        ["date", "cohort", "revenue", "user_count", "total_events"]
    );
    assert_valid("lineage.schema.json", &lineage);
}

#[test]
fn fixture_lineage_covers_joins_windows_unions_ctes_and_star() {
    let project = TestProject::fixture("lineage");
    project.dp_ok(&["docs", "generate"]);
    let lineage = read_json(&project.root.join("target/lineage.json"));

    // `select *` through two levels.
    assert_eq!(
        derived(&lineage, "events_again", "revenue"),
        set(&[("events", "revenue", "passthrough")])
    );
    assert_eq!(
        derived(&lineage, "events", "revenue"),
        set(&[("raw.events", "revenue", "passthrough")])
    );
    // A self-join: both sides are the same model; a column computed from two inputs lists both
    // (here the same column of each side); the join keys decide the rows.
    assert_eq!(
        derived(&lineage, "repeat_purchases", "earlier_event_id"),
        set(&[("events", "event_id", "renamed")])
    );
    assert_eq!(
        derived(&lineage, "repeat_purchases", "revenue_change"),
        set(&[("events", "revenue", "computed")])
    );
    assert_eq!(
        row_filters(&lineage, "repeat_purchases"),
        set(&[("events", "user_id", "join"), ("events", "ts", "join")])
    );
    // A window function reads its argument, partition and order columns.
    assert_eq!(
        derived(&lineage, "running_revenue", "running_revenue"),
        set(&[
            ("events", "revenue", "windowed"),
            ("events", "user_id", "windowed"),
            ("events", "ts", "windowed"),
        ])
    );
    assert_eq!(
        row_filters(&lineage, "last_event"),
        set(&[
            ("events", "user_id", "qualify"),
            ("events", "ts", "qualify")
        ])
    );
    // UNION: each output column from both branches.
    assert_eq!(
        derived(&lineage, "amounts", "amount"),
        set(&[
            ("events", "revenue", "renamed"),
            ("events_again", "revenue", "computed"),
        ])
    );
    // The CTE named `events` shadows the model `events`.
    assert_eq!(
        derived(&lineage, "shadowed", "cents"),
        set(&[("events_again", "revenue", "computed")])
    );
    // HAVING and a cast; a subquery in WHERE decides rows by what it reads.
    assert_eq!(derived(&lineage, "cohort_purchases", "purchases"), set(&[]));
    assert_eq!(
        row_filters(&lineage, "cohort_purchases"),
        set(&[
            ("events", "event", "where"),
            ("events", "cohort", "group_by"),
            ("events", "revenue", "having"),
        ])
    );
    assert_eq!(
        derived(&lineage, "big_spenders", "revenue_double"),
        set(&[("events", "revenue", "cast")])
    );
    assert_eq!(
        row_filters(&lineage, "big_spenders"),
        set(&[
            ("events", "revenue", "where"),
            ("events_again", "revenue", "where"),
        ])
    );
    assert_valid("lineage.schema.json", &lineage);

    // A diamond (amounts reads events and events_again, which reads events): the second
    // meeting of amounts.amount is marked, not expanded again.
    let tree = project.dp_ok(&["lineage", "events.revenue", "--downstream"]);
    assert!(tree.contains("    ├─ amounts.amount (renamed)\n"), "{tree}");
    assert!(
        tree.contains("    │  ├─ amounts.amount (computed) (*)\n"),
        "{tree}"
    );
    assert_eq!(tree.matches("amounts.amount").count(), 2, "{tree}");
}

#[test]
fn manifest_and_catalog_describe_every_node_and_the_built_tables() {
    let project = TestProject::example();
    project.dp_ok(&["build", "--vars", "date=2024-01-15"]);
    let run_id = project.run_results()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    project.dp_ok(&["docs", "generate", "--vars", "date=2024-01-15"]);
    let manifest = read_json(&project.root.join("target/manifest.json"));
    let catalog = read_json(&project.root.join("target/catalog.json"));
    assert_valid("manifest.schema.json", &manifest);
    assert_valid("catalog.schema.json", &catalog);

    let nodes = manifest["nodes"].as_object().unwrap();
    let models: BTreeSet<&str> = nodes
        .values()
        .filter(|n| n["resource_type"] == "model")
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        BTreeSet::from([
            "stg_events",
            "int_purchases",
            "daily_summary",
            "cohort_revenue"
        ])
    );
    let daily = &nodes["model.shop_events.daily_summary"];
    assert_eq!(
        daily["original_file_path"],
        "models/marts/daily_summary.sql"
    );
    assert_eq!(daily["patch_path"], "models/marts/schema.yml");
    assert_eq!(daily["config"]["materialized"], "partitioned");
    assert_eq!(daily["config"]["partition_by"], serde_json::json!(["date"]));
    assert_eq!(daily["tags"], serde_json::json!(["daily"]));
    assert_eq!(
        daily["columns"]["user_count"]["description"],
        "Distinct users that day"
    );
    assert_eq!(
        daily["depends_on"]["nodes"],
        serde_json::json!(["model.shop_events.stg_events"])
    );
    assert_eq!(
        daily["depends_on"]["macros"],
        serde_json::json!(["macro.shop_events.date_filter"])
    );
    assert!(
        daily["raw_code"]
            .as_str()
            .unwrap()
            .contains("{{ date_filter() }}")
    );
    assert!(
        daily["compiled_code"]
            .as_str()
            .unwrap()
            .contains("where date = '2024-01-15'")
    );
    // The ephemeral model's SQL is inlined into its reader's compiled SQL.
    let cohort = &nodes["model.shop_events.cohort_revenue"];
    assert!(
        cohort["compiled_code"]
            .as_str()
            .unwrap()
            .contains("\"int_purchases\" as (")
    );
    // Tests: generic ones attached to their node, the singular one with its SQL.
    let not_null = &nodes["test.shop_events.not_null_daily_summary_date"];
    assert_eq!(not_null["attached_node"], "model.shop_events.daily_summary");
    assert_eq!(not_null["test_metadata"]["name"], "not_null");
    assert_eq!(not_null["column_name"], "date");
    let singular = &nodes["test.shop_events.daily_summary_counts_every_event"];
    assert!(
        singular["raw_code"]
            .as_str()
            .unwrap()
            .contains("summary.events")
    );
    assert_eq!(
        manifest["unit_tests"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        [
            "unit_test.shop_events.daily_summary.daily_summary_sums_per_day_and_cohort",
            "unit_test.shop_events.stg_events.stg_events_keeps_one_row_per_event",
        ]
    );
    // Sources, macros, docs blocks and doc() in descriptions.
    let events = &manifest["sources"]["source.shop_events.raw.events"];
    assert_eq!(events["partitioned_by"], serde_json::json!(["date"]));
    assert_eq!(
        events["columns"]["revenue"]["description"],
        "Order value of a purchase, in the shop's currency; **0** for any other event."
    );
    assert_eq!(
        manifest["macros"]["macro.shop_events.date_filter"]["original_file_path"],
        "macros/date_filter.sql"
    );
    assert!(
        manifest["docs"]["doc.shop_events.__overview__"]["block_contents"]
            .as_str()
            .unwrap()
            .starts_with("# Shop events")
    );
    // The graph, both ways.
    assert_eq!(
        manifest["parent_map"]["model.shop_events.cohort_revenue"],
        serde_json::json!(["model.shop_events.int_purchases"])
    );
    let children = manifest["child_map"]["model.shop_events.stg_events"]
        .as_array()
        .unwrap();
    for child in [
        "model.shop_events.daily_summary",
        "model.shop_events.int_purchases",
        "test.shop_events.not_null_stg_events_event_id",
        "test.shop_events.daily_summary_counts_every_event",
    ] {
        assert!(
            children.iter().any(|c| c == child),
            "{child} in {children:?}"
        );
    }

    // The catalog: planned types, and the built tables' figures from their Delta logs.
    let daily = &catalog["nodes"]["model.shop_events.daily_summary"];
    assert_eq!(daily["columns"]["revenue"]["type"], "decimal(20,2)");
    assert_eq!(daily["columns"]["user_count"]["index"], 3);
    let table = &daily["table"];
    let rows = project.query("daily_summary", "select count(*) from t")[0][0].clone();
    assert_eq!(table["num_rows"].to_string(), rows);
    assert_eq!(table["version"], 0);
    assert_eq!(table["partition_columns"], serde_json::json!(["date"]));
    let bytes: u64 = crate::support::parquet_files(&project.table_dir("daily_summary"))
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(table["num_bytes"], bytes);
    assert_eq!(table["last_commit"]["run_id"], run_id.as_str());
    assert_eq!(table["last_commit"]["operation"], "WRITE");
    // An ephemeral model has no table; a source's columns come from its files.
    assert_eq!(
        catalog["nodes"]["model.shop_events.int_purchases"]["table"],
        Value::Null
    );
    assert_eq!(
        catalog["sources"]["source.shop_events.raw.events"]["columns"]["date"]["type"],
        "varchar"
    );
}

#[test]
fn docs_follow_the_selection_and_name_unknown_doc_blocks() {
    let project = TestProject::example();
    project.dp_ok(&["docs", "generate", "--select", "stg_events"]);
    let catalog = read_json(&project.root.join("target/catalog.json"));
    let documented: Vec<&String> = catalog["nodes"].as_object().unwrap().keys().collect();
    assert_eq!(documented, ["model.shop_events.stg_events"]);
    // The manifest keeps every node.
    let manifest = read_json(&project.root.join("target/manifest.json"));
    assert_eq!(
        manifest["nodes"]["model.shop_events.daily_summary"]["selected"],
        false
    );

    let sources = project.root.join("models/staging/sources.yml");
    let text = std::fs::read_to_string(&sources).unwrap();
    std::fs::write(
        &sources,
        text.replace("doc('order_value')", "doc('order_valu')"),
    )
    .unwrap();
    // As a build, a project with a mistake is one dp cannot document: nothing is written.
    std::fs::remove_dir_all(project.root.join("target")).unwrap();
    let output = project.dp(&["docs", "generate"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(!project.root.join("target/manifest.json").exists());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("dp::unknown_doc"), "{stderr}");
    assert!(
        stderr.contains("no docs block named `order_valu`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `order_value`?"), "{stderr}");
    assert!(stderr.contains("models/staging/sources.yml"), "{stderr}");
}

#[test]
fn dp_lineage_prints_trees_and_json_and_names_close_matches() {
    let project = TestProject::example();
    let tree = project.dp_ok(&["lineage", "daily_summary.revenue", "--upstream"]);
    assert_eq!(
        tree,
        "daily_summary.revenue\n  upstream\n    └─ stg_events.revenue (aggregated)\n       \
         └─ raw.events.revenue (passthrough, source)\nrows of daily_summary decided by\n  \
         stg_events.cohort (group_by)\n  stg_events.date (group_by)\n"
    );
    let down: Value = serde_json::from_str(&project.dp_ok(&[
        "lineage",
        "raw.events.revenue",
        "--downstream",
        "--format",
        "json",
    ]))
    .unwrap();
    let first = &down["columns"][0];
    let readers: BTreeSet<&str> = first["downstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["node"].as_str().unwrap())
        .collect();
    assert_eq!(readers, BTreeSet::from(["stg_events"]));
    let below: BTreeSet<String> = first["downstream"][0]["downstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}.{}:{}", t["node"], t["column"], t["kind"]))
        .collect();
    assert_eq!(
        below,
        BTreeSet::from([
            "\"daily_summary\".\"revenue\":\"model\"".to_string(),
            "\"int_purchases\".\"revenue\":\"ephemeral\"".to_string(),
        ])
    );
    // Every column of a model.
    let all = project.dp_ok(&["lineage", "cohort_revenue", "--format", "json"]);
    let all: Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["columns"].as_array().unwrap().len(), 6);

    let output = project.dp(&["lineage", "daily_summary.revenu"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("dp::unknown_column"), "{stderr}");
    assert!(stderr.contains("did you mean `revenue`?"), "{stderr}");
    let output = project.dp(&["lineage", "daily_sumary.revenue"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("dp::unknown_node"), "{stderr}");
    assert!(stderr.contains("did you mean `daily_summary`?"), "{stderr}");
}

#[test]
fn dp_docs_serve_serves_target_on_loopback_only() {
    let project = TestProject::example();
    project.dp_ok(&["docs", "generate"]);
    let mut server = project
        .command(&["docs", "serve", "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let get_from = |host: &str, path: &str| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let get = |path: &str| get_from(&address, path);
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        project.root.join("dp_project.yml"),
        project.root.join("target/linked.yml"),
    )
    .unwrap();
    let page = get("/docs/index.html");
    let lineage = get("/lineage.json");
    let outside = get("/../dp_project.yml");
    let linked = get("/linked.yml");
    // A page whose DNS name was rebound to 127.0.0.1 sends its own name.
    let rebound = get_from("attacker.example:80", "/manifest.json");
    let _ = server.kill();
    let _ = server.wait();
    let status = |response: &str| response.split(' ').nth(1).unwrap_or_default().to_string();
    assert_eq!(status(&page), "200", "{page:.200}");
    assert!(page.contains("id=\"dp-data\""));
    assert!(lineage.contains("application/json") && lineage.contains("\"nodes\""));
    assert_eq!(status(&outside), "404", "{outside:.200}");
    assert_eq!(status(&linked), "404", "{linked:.200}");
    assert_eq!(status(&rebound), "403", "{rebound:.200}");
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "still serving after a stop"
    );
}

/// Every column `(node, column)` reaches by following `derived_from` (upstream) or its reverse
/// (downstream), read from lineage.json.
fn reach(lineage: &Value, from: (&str, &str), upstream: bool) -> BTreeSet<(String, String)> {
    let mut edges: Vec<((String, String), (String, String))> = Vec::new();
    for (id, node) in lineage["nodes"].as_object().unwrap() {
        for (column, entry) in node["columns"].as_object().unwrap() {
            for parent in entry["derived_from"].as_array().unwrap() {
                let parent = (
                    parent["node"].as_str().unwrap().to_string(),
                    parent["column"].as_str().unwrap().to_string(),
                );
                edges.push(((id.clone(), column.clone()), parent));
            }
        }
    }
    let mut found = BTreeSet::new();
    let mut todo = vec![(from.0.to_string(), from.1.to_string())];
    while let Some(at) = todo.pop() {
        for (child, parent) in &edges {
            let (here, next) = if upstream {
                (child, parent)
            } else {
                (parent, child)
            };
            if *here == at && found.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    found
}

/// Replace the models of `project` by `count` models in a binary tree: `m0000` reads the
/// source, `mN` reads `m((N-1)/2)`.
fn large_project(project: &TestProject, count: usize) {
    let models = project.root.join("models");
    for folder in ["intermediate", "marts"] {
        std::fs::remove_dir_all(models.join(folder)).unwrap();
    }
    for file in ["staging/stg_events.sql", "staging/schema.yml"] {
        std::fs::remove_file(models.join(file)).unwrap();
    }
    std::fs::remove_dir_all(project.root.join("tests")).unwrap();
    for n in 0..count {
        let from = match n {
            0 => "{{ source('raw', 'events') }}".to_string(),
            n => format!("{{{{ ref('m{:04}') }}}}", (n - 1) / 2),
        };
        project.write(
            &format!("models/generated/m{n:04}.sql"),
            &format!("select user_id, revenue, date from {from}\n"),
        );
    }
}

/// Headless Chromium behind its WebDriver (chromedriver), stopped when dropped.
struct Chromium {
    _driver: Running,
    port: u16,
    profile: tempfile::TempDir,
}

impl Chromium {
    /// Start chromedriver. The project's own script installs Chromium and its WebDriver when
    /// absent; a machine where that fails fails the test.
    fn start() -> Self {
        let installed = std::process::Command::new("bash")
            .arg(workspace().join("tests/services/chromium.sh"))
            .status()
            .expect("bash runs");
        assert!(installed.success(), "Chromium could not be installed");
        let port = free_port();
        let mut driver = Running(
            std::process::Command::new("/usr/bin/chromedriver")
                .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("chromedriver starts"),
        );
        assert!(
            wait_for_port(port, "chromedriver", &mut driver.0),
            "chromedriver exited"
        );
        Self {
            _driver: driver,
            port,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    /// A browser session.
    async fn client(&self) -> fantoccini::Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session starts")
    }
}

#[test]
fn the_docs_page_works_in_a_real_browser() {
    let chromium = Chromium::start();
    let project = TestProject::example();
    project.dp_ok(&["build", "--vars", "date=2024-01-15"]);
    project.dp_ok(&["docs", "generate", "--vars", "date=2024-01-15"]);
    let manifest = read_json(&project.root.join("target/manifest.json"));
    let lineage = read_json(&project.root.join("target/lineage.json"));
    let page = project.root.join("target/docs/index.html");
    let large = TestProject::example();
    large_project(&large, 1000);
    large.dp_ok(&["docs", "generate", "-q"]);
    let large_page = large.root.join("target/docs/index.html");

    let screenshot = crate::support::block_on(async {
        use fantoccini::Locator;
        let client = chromium.client().await;
        let wait = std::time::Duration::from_secs(20);
        client
            .goto(url::Url::from_file_path(&page).unwrap().as_str())
            .await
            .unwrap();
        client
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("html[data-dp-ready='true']"))
            .await
            .expect("the page starts");

        // Every model and source is a node of the graph.
        let drawn = client
            .execute(
                "return [...document.querySelectorAll('#graph g.node')].map(n => n.dataset.nodeId)",
                vec![],
            )
            .await
            .unwrap();
        let drawn: BTreeSet<&str> = drawn
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut expected: BTreeSet<&str> = manifest["nodes"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, node)| node["resource_type"] == "model")
            .map(|(id, _)| id.as_str())
            .collect();
        expected.extend(
            manifest["sources"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str),
        );
        assert_eq!(drawn, expected);

        // Search for a model and open it: its details and its tests' results from the build.
        client
            .find(Locator::Css("#search"))
            .await
            .unwrap()
            .send_keys("daily_sum")
            .await
            .unwrap();
        client
            .wait()
            .at_most(wait)
            .for_element(Locator::Css(
                "#search-results li.result-node[data-node-id='model.shop_events.daily_summary']",
            ))
            .await
            .expect("the search finds daily_summary")
            .click()
            .await
            .unwrap();
        let name = client
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#details-name"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(name.trim(), "daily_summary");
        let passed = client
            .find_all(Locator::Css(
                "#details-tests span.badge[data-status='pass']",
            ))
            .await
            .unwrap();
        assert!(passed.len() >= 5, "{} passing tests shown", passed.len());
        // What the last build changed (its diff): a first build, rows 0 → N, by its key.
        let diff = client
            .find(Locator::Css("#details-diff"))
            .await
            .expect("the model view shows the last diff")
            .text()
            .await
            .unwrap();
        assert!(diff.contains("0 →"), "{diff}");
        assert!(diff.contains("added"), "{diff}");

        // Click a column: exactly its upstream and downstream columns light up.
        client
            .find(Locator::Css(
                "#graph g.column[data-node-id='model.shop_events.stg_events'][data-column='revenue']",
            ))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let highlighted = |class: &'static str| {
            let client = &client;
            async move {
                let found = client
                    .execute(
                        &format!(
                            "return [...document.querySelectorAll('#graph g.column.{class}')]\
                             .map(c => [c.dataset.nodeId, c.dataset.column])"
                        ),
                        vec![],
                    )
                    .await
                    .unwrap();
                found
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|pair| {
                        (
                            pair[0].as_str().unwrap().to_string(),
                            pair[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect::<BTreeSet<(String, String)>>()
            }
        };
        let column =
            |node: &str, column: &str| (format!("model.shop_events.{node}"), column.to_string());
        assert_eq!(
            highlighted("col-selected").await,
            BTreeSet::from([column("stg_events", "revenue")])
        );
        let upstream = highlighted("col-upstream").await;
        assert_eq!(
            upstream,
            BTreeSet::from([(
                "source.shop_events.raw.events".to_string(),
                "revenue".to_string()
            )])
        );
        assert_eq!(
            upstream,
            reach(&lineage, ("model.shop_events.stg_events", "revenue"), true)
        );
        let downstream = highlighted("col-downstream").await;
        assert_eq!(
            downstream,
            BTreeSet::from([
                column("daily_summary", "revenue"),
                column("int_purchases", "revenue"),
                column("cohort_revenue", "revenue"),
            ])
        );
        assert_eq!(
            downstream,
            reach(&lineage, ("model.shop_events.stg_events", "revenue"), false)
        );

        let screenshot = client.screenshot().await.unwrap();

        // 1,000 models: nothing is drawn until a node is chosen, then only its neighbourhood.
        client
            .goto(url::Url::from_file_path(&large_page).unwrap().as_str())
            .await
            .unwrap();
        client
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("html[data-dp-ready='true']"))
            .await
            .expect("the large page starts");
        let drawn = || async {
            let ids = client
                .execute(
                    "return [...document.querySelectorAll('#graph g.node')].map(n => n.dataset.nodeId)",
                    vec![],
                )
                .await
                .unwrap();
            ids.as_array()
                .unwrap()
                .iter()
                .map(|id| {
                    id.as_str()
                        .unwrap()
                        .trim_start_matches("model.shop_events.")
                        .to_string()
                })
                .collect::<BTreeSet<String>>()
        };
        assert_eq!(drawn().await, BTreeSet::new());
        client
            .find(Locator::Css("#search"))
            .await
            .unwrap()
            .send_keys("m0100")
            .await
            .unwrap();
        client
            .wait()
            .at_most(wait)
            .for_element(Locator::Css(
                "#search-results li.result-node[data-node-id='model.shop_events.m0100']",
            ))
            .await
            .expect("the search finds m0100")
            .click()
            .await
            .unwrap();
        // Two steps up and down the binary tree of models.
        let neighbourhood = [
            "m0024", "m0049", "m0100", "m0201", "m0202", "m0403", "m0404", "m0405", "m0406",
        ];
        assert_eq!(
            drawn().await,
            neighbourhood.iter().map(|m| m.to_string()).collect()
        );
        client.close().await.unwrap();
        screenshot
    });
    assert!(screenshot.starts_with(b"\x89PNG"), "not a PNG");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    std::fs::write(target.join("docs-screenshot.png"), &screenshot).unwrap();
}

/// A description's Markdown links, each hiding `javascript:` as one of the bypasses a browser's
/// URL parser undoes (a tab, a newline, a leading control character or space, an entity, the
/// scheme's case), and links that must keep working.
const HOSTILE_LINKS: &str = r#"version: 2
models:
  - name: other
    description: "Links:\n\n
      - [tab](<java\tscript:window.__pwned_tab=1;undefined>)\n
      - [tab entity](java&#9;script:window.__pwned_tab_entity=1;undefined)\n
      - [newline entity](java&#10;script:window.__pwned_newline=1;undefined)\n
      - [return entity](java&#13;script:window.__pwned_return=1;undefined)\n
      - [control](<\x01javascript:window.__pwned_control=1;undefined>)\n
      - [control entity](&#1;javascript:window.__pwned_control_entity=1;undefined)\n
      - [trailing control](<javascript:window.__pwned_trailing=1;undefined\x1f>)\n
      - [space](< javascript:window.__pwned_space=1;undefined>)\n
      - [case](JaVaScRiPt:window.__pwned_case=1;undefined)\n
      - [entity](&#106;avascript:window.__pwned_entity=1;undefined)\n
      - [colon entity](javascript&colon;window.__pwned_colon=1;undefined)\n
      - [vbscript](vbscript:msgbox)\n
      - [data](data:text/html,<script>opener.__pwned_data=1</script>)\n
      - [web](https://example.com/docs?a=1&b=2)\n
      - [mail](mailto:data@example.com)\n
      - [fragment](#node=model.ops.daily)\n"
"#;

#[test]
fn a_description_link_never_runs_javascript_when_clicked() {
    let project = TestProject::fixture("ops");
    project.write("models/links.yml", HOSTILE_LINKS);
    project.dp_ok(&["docs", "generate", "--vars", "date=2024-01-15"]);
    let page = project.root.join("target/docs/index.html");
    let chromium = Chromium::start();
    crate::support::block_on(async {
        use fantoccini::Locator;
        let client = chromium.client().await;
        let mut url = url::Url::from_file_path(&page).unwrap();
        url.set_fragment(Some("node=model.ops.other"));
        client.goto(url.as_str()).await.unwrap();
        let wait = std::time::Duration::from_secs(20);
        client
            .wait()
            .at_most(wait)
            .for_element(Locator::Css("#details-description li"))
            .await
            .expect("the description is shown");
        let links = || async {
            let found = client
                .execute(
                    "return [...document.querySelectorAll('#details-description a')]\
                     .map(a => [a.textContent, a.getAttribute('href'), a.protocol])",
                    vec![],
                )
                .await
                .unwrap();
            found
                .as_array()
                .unwrap()
                .iter()
                .map(|link| Link {
                    text: link[0].as_str().unwrap().to_string(),
                    href: link[1].as_str().map(str::to_string),
                    scheme: link[2].as_str().unwrap_or_default().to_string(),
                })
                .collect::<Vec<Link>>()
        };
        let items = client
            .execute(
                "return [...document.querySelectorAll('#details-description li')].length",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(items, 16, "every link is a list item");
        // Click each link that is left, except the ones to another page; note what ran.
        let mut ran = Vec::new();
        for Link { text, .. } in links().await {
            if matches!(text.as_str(), "web" | "mail" | "fragment") {
                continue;
            }
            let link = client
                .find(Locator::XPath(&format!(
                    "//div[@id='details-description']//a[normalize-space(.)='{text}']"
                )))
                .await
                .unwrap();
            link.click().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let pwned = client
                .execute(
                    "const found = Object.keys(window).filter(k => k.startsWith('__pwned'));\
                     found.forEach(k => delete window[k]); return found",
                    vec![],
                )
                .await
                .unwrap();
            if pwned != serde_json::json!([]) {
                ran.push(format!("{text}: {pwned}"));
            }
            let now = client.current_url().await.unwrap();
            if now != url {
                // A link without a scheme is a file next to the page: harmless.
                if now.scheme() != "file" {
                    ran.push(format!("{text}: went to {now}"));
                }
                client.goto(url.as_str()).await.unwrap();
                client
                    .wait()
                    .at_most(wait)
                    .for_element(Locator::Css("#details-description li"))
                    .await
                    .expect("the description is shown again");
            }
        }
        assert_eq!(ran, Vec::<String>::new(), "what the clicks did");
        // A link the browser reads as having a scheme is left only for the web and mail; a
        // scheme hidden from a naive check is no link at all.
        let links = links().await;
        for link in &links {
            assert!(
                matches!(link.scheme.as_str(), "https:" | "mailto:" | "file:"),
                "{link:?}"
            );
        }
        let texts: BTreeSet<&str> = links.iter().map(|link| link.text.as_str()).collect();
        for hidden in [
            "tab",
            "control",
            "trailing control",
            "space",
            "case",
            "vbscript",
            "data",
        ] {
            assert!(!texts.contains(hidden), "{hidden:?} is a link: {links:?}");
        }
        let href = |text: &str| {
            links
                .iter()
                .find(|link| link.text == text)
                .and_then(|link| link.href.clone())
        };
        assert_eq!(
            href("web").as_deref(),
            Some("https://example.com/docs?a=1&b=2")
        );
        assert_eq!(href("mail").as_deref(), Some("mailto:data@example.com"));
        assert_eq!(href("fragment").as_deref(), Some("#node=model.ops.daily"));
        let text = client
            .find(Locator::Css("#details-description"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("tab entity"), "{text}");
        client.close().await.unwrap();
    });
}

/// A link of the page: its text, its `href` attribute, and the scheme of the URL the browser
/// made of it (`https:`, `javascript:`, `file:` for a relative one).
#[derive(Debug)]
struct Link {
    text: String,
    href: Option<String>,
    scheme: String,
}
