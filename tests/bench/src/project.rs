//! A synthetic dp project of N models in layers, for benchmarks and scale tests: staging models
//! over a partitioned events source, intermediate models joining 1 to 3 earlier models, and marts
//! aggregating one; each with data tests. Deterministic from a seed.

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
}

/// Write the project: `models` models reading the events under `data` (a folder holding
/// `events/date=.../*.parquet`).
pub fn generate(out: &Path, data: &Path, models: usize, seed: u64) -> std::io::Result<()> {
    let _ = std::fs::remove_dir_all(out);
    for folder in ["staging", "intermediate", "marts"] {
        std::fs::create_dir_all(out.join("models").join(folder))?;
    }
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
    let mut random = Random(seed);
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
                "{{{{ config(materialized='partitioned', partition_by='date') }}}}\n\
                 select user_id, cohort, revenue, date\nfrom {{{{ source('raw', 'events') }}}}\n\
                 where event = '{event}'{{% if var('date', none) %}} and date = '{{{{ var(\"date\") }}}}'{{% endif %}}\n"
            ),
        )?;
        let _ = write!(
            schema,
            "  - name: {name}\n    columns:\n      - {{name: user_id, data_tests: [not_null]}}\n      - {{name: revenue, data_tests: [{{expression_is_true: {{expression: \">= 0\"}}}}]}}\n"
        );
        names.push(name);
    }
    for i in 0..intermediate {
        let name = format!("int_users_{i}");
        let inputs = 1 + random.below(3) as usize;
        let picked: Vec<&String> = (0..inputs)
            .map(|_| &names[random.below(names.len() as u64) as usize])
            .collect();
        let mut sql = String::from("select a.user_id, a.cohort, a.revenue");
        for (j, _) in picked.iter().enumerate().skip(1) {
            let _ = write!(sql, " + coalesce(j{j}.revenue, 0)");
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
    for i in 0..marts {
        let name = format!("mart_daily_{i}");
        let input = &names[random.below(names.len() as u64) as usize];
        write_model(
            out,
            "marts",
            &name,
            &format!(
                "{{{{ config(materialized='partitioned', partition_by='date') }}}}\n\
                 select date, cohort, sum(revenue) as revenue, count(distinct user_id) as users\n\
                 from {{{{ ref('{input}') }}}}\ngroup by date, cohort\n"
            ),
        )?;
        let _ = write!(
            schema,
            "  - name: {name}\n    data_tests:\n      - unique_combination_of_columns: {{combination_of_columns: [date, cohort]}}\n"
        );
    }
    std::fs::write(out.join("models/schema.yml"), schema)
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
        generate(dir.path(), &std::path::absolute(data).unwrap(), 60, 3).unwrap();
        let prepared = dp_engine::prepare(&dp_engine::PrepareOptions {
            project_dir: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(prepared.model_count(), 60);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(dp_engine::check(&prepared)).unwrap();
    }
}
