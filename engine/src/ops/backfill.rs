//! BACKFILL's var: whether the var a backfill gives each date is one its models read. In: the
//! selected models, their renderer and the run's vars. Out: nothing, or why the backfill would
//! build nothing that depends on its dates.

use crate::project::{ModelFile, Project};
use crate::render::{RenderContext, RenderError, RenderedModel, Renderer};

use super::OpsError;

/// A value no date is: a template that renders it as it renders the backfill's dates does not
/// depend on the var.
const PROBE: &str = "dp-backfill-probe";

/// Refuse a backfill whose templates could not render because a var other than `var` (the one
/// it gives each date) has no value: the backfill names the wrong var. `problems`: the render
/// problems of its first date.
pub fn check_missing_vars<'a>(
    var: &str,
    problems: impl IntoIterator<Item = &'a RenderError>,
) -> Result<(), OpsError> {
    let missing: Vec<RenderError> = problems
        .into_iter()
        .filter(|problem| matches!(problem, RenderError::MissingVar { name, .. } if name != var))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut reads: Vec<String> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for problem in &missing {
        if let RenderError::MissingVar { name, src, .. } = problem {
            reads.push(format!("{} reads var `{name}`", src.name()));
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    reads.dedup();
    Err(OpsError::BackfillVar {
        var: var.to_string(),
        reads: format!("{}, which has no value", reads.join(", ")),
        help: format!(
            "give each date as the var the models read: --var {}; or set {} with --vars",
            names[0],
            names.join(", ")
        ),
        problems: missing,
    })
}

/// Refuse a backfill none of whose `models` depends on `var`: each is rendered with `var` set
/// to each of `values` (the first and last are enough) and to a value no date is; when every
/// model renders the same SQL and config whatever the value, every date would build the same
/// tables. A model that runs queries while it renders may depend on it through them: it counts
/// as reading it.
pub fn check_var_read(
    renderer: &Renderer,
    project: &Project,
    models: &[&ModelFile],
    context: &RenderContext,
    var: &str,
    values: &[String],
) -> Result<(), OpsError> {
    let mut probes: Vec<&str> = values.first().into_iter().map(String::as_str).collect();
    probes.extend(values.last().map(String::as_str));
    probes.push(PROBE);
    probes.dedup();
    let read = |model: &ModelFile, name: &str, probes: &[&str]| -> bool {
        let outcomes: Vec<Outcome> = probes
            .iter()
            .map(|value| {
                let mut context = context.clone();
                context
                    .options
                    .vars
                    .insert(name.to_string(), serde_yaml::Value::from(*value));
                outcome(renderer.render_model(project, model, &context))
            })
            .collect();
        outcomes.iter().any(|o| o.runs_queries) || outcomes.windows(2).any(|w| w[0] != w[1])
    };
    if models.is_empty() || models.iter().any(|model| read(model, var, &probes)) {
        return Ok(());
    }
    // Which of the vars set (in dp_project.yml or --vars) each model reads.
    let mut known: Vec<&String> = project.config.vars.keys().collect();
    known.extend(context.options.vars.keys());
    known.sort();
    known.dedup();
    known.retain(|name| name.as_str() != var);
    let other = format!("{PROBE}-2");
    let reads: Vec<String> = models
        .iter()
        .map(|model| {
            let names: Vec<&str> = known
                .iter()
                .filter(|name| read(model, name, &[PROBE, other.as_str()]))
                .map(|name| name.as_str())
                .collect();
            match names.as_slice() {
                [] => format!("`{}` reads none of the vars set", model.name),
                _ => format!("`{}` reads {}", model.name, names.join(", ")),
            }
        })
        .collect();
    Err(OpsError::BackfillVar {
        var: var.to_string(),
        reads: format!("no model it builds reads it ({})", reads.join("; ")),
        help: "--var names the var each date is given (date by default): the one the models read with var('...'), so that each date builds its own data".into(),
        problems: Vec::new(),
    })
}

/// What a render made, to compare.
#[derive(PartialEq)]
struct Outcome {
    rendered: Result<(String, String), String>,
    runs_queries: bool,
}

fn outcome(rendered: Result<RenderedModel, RenderError>) -> Outcome {
    match rendered {
        Ok(model) => Outcome {
            runs_queries: model.runs_queries,
            rendered: Ok((model.sql, format!("{:?}", model.config))),
        },
        Err(error) => Outcome {
            rendered: Err(error.to_string()),
            runs_queries: false,
        },
    }
}
