//! A synthetic project of N models in layers, for benchmarks and scale tests: staging models
//! over events, intermediate models joining 1 to 3 earlier models, and marts aggregating one;
//! each with data tests. Deterministic from a seed. Two flavors: dp's own (a partitioned Parquet
//! source, dp's materializations and tests), and a dbt project as dbt-core with dbt-duckdb runs
//! it unmodified (the events a seed, staging models views, dbt's built-in tests).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::events::Random;

/// What to generate.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectOptions {
    /// How many models (at least two: one staging model and one mart).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(2..))]
    pub models: u64,
    /// The project folder to write (replaced when it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// A folder holding `events/date=.../*.parquet`, which the project's source reads.
    #[arg(long, default_value = "example_project/data/raw")]
    pub data: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// dp's own project, or a dbt project (dbt_project.yml, profiles.yml for dbt-duckdb, a seed).
    #[arg(long, value_enum, default_value_t = Flavor::Dp)]
    pub flavor: Flavor,
    /// For the dbt flavor: a dbt_utils checkout the project depends on (`local:` in
    /// packages.yml); every model then calls its macros and the marts run its tests.
    #[arg(long)]
    pub dbt_utils: Option<PathBuf>,
}

/// Which tool's project to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    Dp,
    Dbt,
}

/// How many event rows the dbt flavor's seed holds: 7 dates of 3,000, like the small dataset.
pub const SEED_ROWS: u64 = 21_000;

/// Write the project: `models` models reading the events under `data` (a folder holding
/// `events/date=.../*.parquet`; the dbt flavor writes its own events as a seed instead).
pub fn generate(
    out: &Path,
    data: &Path,
    models: usize,
    seed: u64,
    flavor: Flavor,
    dbt_utils: Option<&Path>,
) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(out);
    for folder in ["staging", "intermediate", "marts"] {
        std::fs::create_dir_all(out.join("models").join(folder))?;
    }
    let mut random = Random(seed);
    let events_relation = match flavor {
        Flavor::Dp => {
            std::fs::write(
                out.join("dp_project.yml"),
                "name: generated\ntargets:\n  bench:\n    warehouse: warehouse\n",
            )?;
            std::fs::write(
                out.join("models/staging/sources.yml"),
                format!(
                    "sources:\n  - name: raw\n    location: {}\n    tables:\n      - name: events\n        partitioned_by: [date]\n",
                    url_of(data)
                ),
            )?;
            "{{ source('raw', 'events') }}"
        }
        Flavor::Dbt => {
            write_dbt_files(out, &mut random)?;
            if let Some(package) = dbt_utils {
                std::fs::write(
                    out.join("packages.yml"),
                    format!("packages:\n  - local: {}\n", package.display()),
                )?;
            }
            "{{ ref('raw_events') }}"
        }
    };
    // With dbt_utils: a surrogate key in staging, a null-safe sum in intermediate models, the
    // group by of marts, and its tests.
    let utils = dbt_utils.is_some();
    let key = match utils {
        true => ", {{ dbt_utils.generate_surrogate_key(['user_id', 'date']) }} as user_day",
        false => "",
    };
    // The dbt flavor: staging models are views, the rest tables (dbt_project.yml says so);
    // dp's: staging and marts partitioned by date.
    let partitioned = match flavor {
        Flavor::Dp => "{{ config(materialized='partitioned', partition_by='date') }}\n",
        Flavor::Dbt => "",
    };
    let date_filter = match flavor {
        Flavor::Dp => "{% if var('date', none) %} and date = '{{ var(\"date\") }}'{% endif %}",
        Flavor::Dbt => "",
    };
    let staging = (models / 10).max(1);
    let marts = (models * 3 / 10).max(1).min(models - staging);
    let intermediate = models - staging - marts;
    let events = ["page_view", "click", "add_to_cart", "purchase"];
    let mut schema = String::from("models:\n");
    let mut names: Vec<String> = Vec::new();
    for i in 0..staging {
        let name = format!("stg_events_{i}");
        let event = events[i % events.len()];
        write_model(
            out,
            "staging",
            &name,
            &format!(
                "{partitioned}select user_id, cohort, revenue, date{key}\nfrom {events_relation}\n\
                 where event = '{event}'{date_filter}\n"
            ),
        )?;
        let revenue_test = match (flavor, utils) {
            (Flavor::Dp, _) => "[{expression_is_true: {arguments: {expression: \">= 0\"}}}]",
            (Flavor::Dbt, false) => "[not_null]",
            (Flavor::Dbt, true) => "[{dbt_utils.accepted_range: {arguments: {min_value: 0}}}]",
        };
        let _ = write!(
            schema,
            "  - name: {name}\n    columns:\n      - {{name: user_id, data_tests: [not_null]}}\n      - {{name: revenue, data_tests: {revenue_test}}}\n"
        );
        names.push(name);
    }
    for i in 0..intermediate {
        let name = format!("int_users_{i}");
        let inputs = 1 + random.below(3) as usize;
        let picked: Vec<&String> = (0..inputs)
            .map(|_| &names[random.below(names.len() as u64) as usize])
            .collect();
        let mut sql = String::from("select a.user_id, a.cohort, ");
        let terms: Vec<String> = std::iter::once("a.revenue".to_string())
            .chain((1..picked.len()).map(|j| format!("coalesce(j{j}.revenue, 0)")))
            .collect();
        match utils {
            true => {
                let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
                let _ = write!(sql, "{{{{ dbt_utils.safe_add([{}]) }}}}", quoted.join(", "));
            }
            false => sql.push_str(&terms.join(" + ")),
        }
        let _ = write!(
            sql,
            " as revenue, a.date\nfrom {{{{ ref('{}') }}}} as a\n",
            picked[0]
        );
        for (j, input) in picked.iter().enumerate().skip(1) {
            let _ = writeln!(
                sql,
                "left join (select user_id, date, sum(revenue) as revenue from {{{{ ref('{input}') }}}} group by user_id, date) as j{j}\n  on a.user_id = j{j}.user_id and a.date = j{j}.date"
            );
        }
        write_model(out, "intermediate", &name, &sql)?;
        let _ = write!(
            schema,
            "  - name: {name}\n    columns:\n      - {{name: user_id, data_tests: [not_null]}}\n"
        );
        names.push(name);
    }
    let group_by = match utils {
        true => "{{ dbt_utils.group_by(2) }}",
        false => "group by date, cohort",
    };
    for i in 0..marts {
        let name = format!("mart_daily_{i}");
        let input = &names[random.below(names.len() as u64) as usize];
        write_model(
            out,
            "marts",
            &name,
            &format!(
                "{partitioned}select date, cohort, sum(revenue) as revenue, count(distinct user_id) as users\n\
                 from {{{{ ref('{input}') }}}}\n{group_by}\n"
            ),
        )?;
        let _ = match flavor {
            Flavor::Dp => write!(
                schema,
                "  - name: {name}\n    data_tests:\n      - unique_combination_of_columns: {{arguments: {{combination_of_columns: [date, cohort]}}}}\n"
            ),
            Flavor::Dbt if utils => write!(
                schema,
                "  - name: {name}\n    data_tests:\n      - dbt_utils.unique_combination_of_columns: {{arguments: {{combination_of_columns: [date, cohort]}}}}\n"
            ),
            // dbt's built-in tests only: no package is installed.
            Flavor::Dbt => write!(
                schema,
                "  - name: {name}\n    columns:\n      - {{name: date, data_tests: [not_null]}}\n      - {{name: cohort, data_tests: [not_null]}}\n"
            ),
        };
    }
    std::fs::write(out.join("models/schema.yml"), schema)
}

/// dbt_project.yml, profiles.yml for dbt-duckdb (dp reads no profile), and the events seed.
fn write_dbt_files(out: &Path, random: &mut Random) -> std::io::Result<()> {
    std::fs::write(
        out.join("dbt_project.yml"),
        "name: generated\nversion: '1.0.0'\nconfig-version: 2\nprofile: generated\n\
         models:\n  generated:\n    +materialized: table\n    staging:\n      +materialized: view\n",
    )?;
    std::fs::write(
        out.join("profiles.yml"),
        "generated:\n  target: bench\n  outputs:\n    bench:\n      type: duckdb\n      path: warehouse.duckdb\n      threads: 4\n",
    )?;
    std::fs::create_dir_all(out.join("seeds"))?;
    let events = ["page_view", "click", "add_to_cart", "purchase"];
    let cohorts = ["organic", "paid_search", "social", "referral"];
    let mut csv = String::from("event_id,user_id,event,revenue,cohort,date\n");
    for id in 0..SEED_ROWS {
        let event = events[random.below(4) as usize];
        let revenue = match event {
            "purchase" => format!("{}.{:02}", random.below(200), random.below(100)),
            _ => "0.0".into(),
        };
        let _ = writeln!(
            csv,
            "{id},{},{event},{revenue},{},2024-01-{:02}",
            random.below(2000),
            cohorts[random.below(4) as usize],
            12 + id % 7
        );
    }
    std::fs::write(out.join("seeds/raw_events.csv"), csv)
}

fn write_model(out: &Path, folder: &str, name: &str, sql: &str) -> std::io::Result<()> {
    std::fs::write(
        out.join("models").join(folder).join(format!("{name}.sql")),
        sql,
    )
}

fn url_of(folder: &Path) -> String {
    format!("file://{}/", folder.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_project_passes_dp_check() {
        let dir = tempfile::tempdir().unwrap();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../example_project/data/raw");
        let data = std::path::absolute(data).unwrap();
        for (flavor, nodes) in [(Flavor::Dp, 60), (Flavor::Dbt, 61)] {
            generate(dir.path(), &data, 60, 3, flavor, None).unwrap();
            let prepared = dp_engine::prepare(&dp_engine::PrepareOptions {
                project_dir: dir.path().to_path_buf(),
                ..Default::default()
            })
            .unwrap();
            // The dbt flavor's seed is a node too.
            assert_eq!(prepared.model_count(), nodes, "{flavor:?}");
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let checked = runtime.block_on(dp_engine::check(&prepared)).unwrap();
            assert!(checked.warnings.is_empty(), "{flavor:?}");
        }
    }
}
