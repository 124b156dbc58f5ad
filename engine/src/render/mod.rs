//! RENDER: minijinja turns each model's template into SQL. `ref()`, `source()`, `var()`,
//! `env_var()` and `config()` record what they were called with, so dependencies come from the
//! calls the template made, not from a scan of its text. In: a [`Project`] and the run's vars.
//! Out: a [`RenderedProject`], or every model's render problem at once.

mod adapter;
mod dbt_context;
mod functions;
mod macros;
mod project_graph;
mod seed;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use miette::SourceSpan;
use minijinja::{Environment, OutputSpanKind, UndefinedBehavior, Value};
use rayon::prelude::*;

pub use crate::project::ModelConfig;
use crate::project::{ModelFile, Project};
use crate::source::{SourceFile, span};
use functions::{Problem, Recorded};

/// The run's variables, from `--vars`; they override `vars:` of `dp_project.yml`.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub vars: BTreeMap<String, serde_yaml::Value>,
    /// Values `env_var()` sees before the process environment (a unit test's overrides).
    pub env_vars: BTreeMap<String, String>,
}

impl RenderOptions {
    /// Options from `--vars` arguments: each `key=value`, or a YAML/JSON mapping such as
    /// `{date: 2024-01-15}`; later arguments win.
    pub fn from_var_args(args: &[String]) -> Result<Self, RenderError> {
        let mut vars = BTreeMap::new();
        for arg in args {
            let bad = |message: String| RenderError::InvalidVars {
                message,
                src: miette::NamedSource::new("--vars", Arc::from(arg.as_str())),
                at: (0, arg.len()).into(),
            };
            if arg.trim_start().starts_with('{') {
                let mapping: BTreeMap<String, serde_yaml::Value> =
                    serde_yaml::from_str(arg).map_err(|e| bad(e.to_string()))?;
                vars.extend(mapping);
            } else {
                let (key, value) = arg.split_once('=').ok_or_else(|| {
                    bad("expected key=value or a mapping such as {key: value}".into())
                })?;
                if key.trim().is_empty() {
                    return Err(bad("the variable name is empty".into()));
                }
                vars.insert(
                    key.trim().to_string(),
                    serde_yaml::Value::String(value.to_string()),
                );
            }
        }
        Ok(Self {
            vars,
            env_vars: BTreeMap::new(),
        })
    }
}

/// How many instructions one template may run: far more than any real model needs, few enough
/// that a loop that never ends stops within a second.
const FUEL: u64 = 20_000_000;

/// The most SQL one template may write.
const MAX_RENDERED_BYTES: usize = 16 << 20;

/// Every model of the project, rendered.
#[derive(Debug, Clone)]
pub struct RenderedProject {
    pub models: BTreeMap<String, RenderedModel>,
    /// The singular tests under `tests/`, rendered like models (named by their file's stem).
    pub singular_tests: Vec<RenderedModel>,
}

/// One model after rendering: its SQL, what it referred to, and its configuration.
#[derive(Debug, Clone)]
pub struct RenderedModel {
    pub name: String,
    pub file: SourceFile,
    pub sql: String,
    /// Maps byte offsets of `sql` back to the template.
    pub source_map: SourceMap,
    /// `ref()` calls, in call order.
    pub refs: Vec<Call>,
    /// `source()` calls (`source.table`), in call order.
    pub sources: Vec<Call>,
    pub config: ModelConfig,
    /// The template calls `run_query()`: a build renders it again, with `execute` true.
    pub runs_queries: bool,
}

/// One `ref()` or `source()` call and where it stands in the model's file.
#[derive(Debug, Clone)]
pub struct Call {
    pub target: String,
    pub at: SourceSpan,
}

/// Where each stretch of rendered SQL came from in the model's template.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    spans: Vec<MappedSpan>,
}

#[derive(Debug, Clone)]
struct MappedSpan {
    output: Range<usize>,
    /// Range in the model's file.
    source: Range<usize>,
    /// Verbatim template text: offsets map one to one.
    verbatim: bool,
}

impl SourceMap {
    /// The span in the model's file that produced the rendered byte `offset`: the same character
    /// for verbatim text, the whole `{{ ... }}` for output of an expression.
    pub fn to_template(&self, offset: usize, len: usize) -> Option<Range<usize>> {
        let index = self
            .spans
            .partition_point(|mapped| mapped.output.end <= offset);
        let mapped = self.spans.get(index).or_else(|| self.spans.last())?;
        if mapped.verbatim && mapped.output.contains(&offset) {
            let start = mapped.source.start + (offset - mapped.output.start);
            let end = (start + len).min(mapped.source.end);
            Some(start..end)
        } else {
            Some(mapped.source.clone())
        }
    }
}

/// A problem found while rendering a model.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum RenderError {
    #[error("`{model}` refers to unknown model `{target}`")]
    #[diagnostic(code(dp::unknown_ref))]
    UnknownRef {
        model: String,
        target: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("no model with this name")]
        at: SourceSpan,
        #[help]
        did_you_mean: Option<String>,
    },

    #[error("`{model}` refers to `{target}`, which is disabled")]
    #[diagnostic(
        code(dp::disabled_ref),
        help("`{target}` says config(enabled=false); enable it, or stop reading it")
    )]
    DisabledRef {
        model: String,
        target: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("a disabled model")]
        at: SourceSpan,
    },

    #[error("`{model}` refers to undeclared source `{target}`")]
    #[diagnostic(code(dp::unknown_source))]
    UnknownSource {
        model: String,
        target: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("no such source table")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    #[error("var `{name}` has no value")]
    #[diagnostic(
        code(dp::missing_var),
        help(
            "pass --vars {name}=..., set `vars: {{{name}: ...}}` in dp_project.yml, or give a default: var('{name}', ...)"
        )
    )]
    MissingVar {
        name: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("used here")]
        at: SourceSpan,
    },

    #[error("environment variable `{name}` is not set")]
    #[diagnostic(
        code(dp::missing_env_var),
        help("set {name}, or give a default: env_var('{name}', ...)")
    )]
    MissingEnvVar {
        name: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("used here")]
        at: SourceSpan,
    },

    #[error("invalid config for `{model}`: {message}")]
    #[diagnostic(code(dp::invalid_config))]
    InvalidConfig {
        model: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(dp::template))]
    Template {
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(
        code(dp::template_limit),
        help(
            "a template may run {FUEL} instructions and write {} MB of SQL; look for a loop that does not end or grows too fast",
            MAX_RENDERED_BYTES >> 20
        )
    )]
    Limit {
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("in this template")]
        at: SourceSpan,
    },

    #[error("seed `{model}`: {message}")]
    #[diagnostic(
        code(dp::seed),
        help(
            "a seed is a CSV file with a header line; quote fields holding the delimiter; `column_types` in the seed's config sets a column's type"
        )
    )]
    Seed {
        model: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("invalid --vars: {message}")]
    #[diagnostic(
        code(dp::invalid_vars),
        help("pass --vars date=2024-01-15 (repeatable) or --vars '{{date: 2024-01-15}}'")
    )]
    InvalidVars {
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("{} models could not be rendered", problems.len())]
    #[diagnostic(code(dp::problems))]
    Many {
        #[related]
        problems: Vec<RenderError>,
    },
}

/// What one render of a model sees besides the project: the run's variables and its target.
#[derive(Debug, Clone, Default)]
pub struct RenderContext {
    /// `--vars` (or a unit test's overrides), over the project's `vars:`.
    pub options: RenderOptions,
    /// The target the run is for, as templates see it: `target.name`, `target.warehouse`.
    pub target: Option<TargetContext>,
    /// What `is_incremental()` returns: true when an incremental model's table exists and the
    /// run is no full refresh (decided by the build, which renders such a model again).
    pub is_incremental: bool,
    /// dbt's `execute`: set when a build renders a model again to run it, with `run_query()`
    /// answered by this runner; unset while dp loads and plans (`run_query()` is then empty).
    pub queries: Option<QueryRunner>,
}

/// Runs one query's SQL to its end: its rows, or why it failed.
pub type RunQuery = dyn Fn(&str) -> Result<QueryResult, String> + Send + Sync;

/// Runs the SQL of `run_query()` for a render at execution time.
#[derive(Clone)]
pub struct QueryRunner(pub Arc<RunQuery>);

impl std::fmt::Debug for QueryRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryRunner")
    }
}

/// The rows a query gave, as text (NULL as `None`).
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    /// Each column's SQL type (`bigint`, `varchar`...).
    pub types: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// `target` in a template.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetContext {
    pub name: String,
    /// dbt's `target.schema`: the target's name (a dp target is one warehouse of tables).
    pub schema: String,
    pub warehouse: String,
    /// dbt's `target.type`: `dp`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// dbt's `target.database`: DataFusion's catalog, `datafusion`.
    pub database: &'static str,
}

/// Renders the project's templates: built once per project (every template checked, parsed
/// once), then one [`Renderer::render_model`] call per model and context, from any thread.
pub struct Renderer {
    env: Environment<'static>,
    known: Arc<functions::Known>,
    index: Arc<macros::MacroIndex>,
    project_vars: BTreeMap<String, serde_yaml::Value>,
    /// Every template as rendered (dbt's syntax made minijinja's), by template name.
    templates: Arc<BTreeMap<String, macros::Prepared>>,
    /// The macro files of dbt, the packages and the project (where a macro's error is).
    macro_files: Vec<SourceFile>,
    /// What every render's context holds whatever it renders: `adapter`, `api`, dbt's
    /// `modules`, `exceptions`, `flags`...
    fixed: BTreeMap<&'static str, Value>,
    /// Templates rendered so far (a debug counter: tests check what a command renders).
    renders: AtomicUsize,
}

impl Renderer {
    /// A renderer of `project`'s models, singular tests and macros (its own, its packages' and
    /// dbt's); a macro file that does not parse is a problem here, at its line.
    pub fn new(project: &Project, _context: &RenderContext) -> Result<Self, RenderError> {
        let macro_files: Vec<SourceFile> = all_macro_files(project);
        let mut templates: BTreeMap<String, macros::Prepared> = BTreeMap::new();
        for file in &macro_files {
            templates.insert(
                file.path().display().to_string(),
                macros::prepare(file.text()),
            );
        }
        let index = Arc::new(macros::MacroIndex::new(project, |file| {
            templates
                .get(&file.path().display().to_string())
                .map(|prepared| crate::project::declared_macros(&prepared.text))
                .unwrap_or_default()
        }));
        let models = project
            .models
            .values()
            .filter(|m| !m.is_seed)
            .map(|m| (template_name(m), m.template_text()));
        let tests = project
            .singular_tests
            .iter()
            .map(|file| (file.path().display().to_string(), file.text()));
        for (name, text) in models.chain(tests) {
            templates.insert(name, macros::prepare(text));
        }
        let templates = Arc::new(templates);
        // The project's own templates are strict: an undefined name is an error at its place.
        // Packages' and dbt's macros render as Jinja2 (and dbt) does: an undefined variable
        // prints as nothing (dbt_utils relies on it); reading an attribute of one, or calling
        // it, is an error.
        let env = environment(&templates, UndefinedBehavior::Strict);
        index.use_package_env(environment(&templates, UndefinedBehavior::Lenient));
        // Every macro file parses, or each that does not is a problem at its line.
        let problems: Vec<RenderError> = macro_files
            .iter()
            .filter_map(|file| {
                let name = file.path().display().to_string();
                let error = env.get_template(&name).err()?;
                let prepared = templates.get(&name)?;
                Some(RenderError::Template {
                    message: format!(
                        "{}: {}",
                        file.path().display(),
                        error.detail().unwrap_or("invalid macro file")
                    ),
                    at: error_span(&error, file, prepared),
                    src: file.named(),
                })
            })
            .collect();
        crate::source::problems(problems, |problems| RenderError::Many { problems })?;
        let known = Arc::new(functions::Known {
            models: project.models.keys().cloned().collect(),
            sources: project.sources.keys().cloned().collect(),
            source_models: project.source_models.clone(),
        });
        // A package's vars are defaults under the project's own: `vars: {<package>: {...}}`,
        // then its global vars.
        let mut project_vars = BTreeMap::new();
        for package in &project.packages {
            project_vars.extend(package.vars.clone());
            if let Some(serde_yaml::Value::Mapping(scoped)) = project.config.vars.get(&package.name)
            {
                project_vars.extend(
                    scoped
                        .iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone()))),
                );
            }
        }
        project_vars.extend(project.config.vars.clone());
        let mut fixed: BTreeMap<&'static str, Value> = dbt_context::values().into_iter().collect();
        fixed.insert(
            "adapter",
            Value::from_object(adapter::Adapter {
                index: index.clone(),
            }),
        );
        fixed.insert("api", Value::from_object(adapter::Api));
        // Built only for a project whose templates (or packages' macros) may read it.
        if templates.values().any(|t| t.text.contains("graph")) {
            fixed.insert("graph", project_graph::graph(project));
        }
        Ok(Self {
            env,
            known,
            index,
            project_vars,
            templates,
            macro_files,
            fixed,
            renders: AtomicUsize::new(0),
        })
    }

    /// A render's state and the root of its template context: the functions' state, `target`,
    /// `this` (the model being rendered, when there is one) and the macros.
    fn root(
        &self,
        context: &RenderContext,
        this: Option<&str>,
    ) -> (Arc<functions::RenderState>, Value) {
        let mut vars = self.project_vars.clone();
        vars.extend(context.options.vars.clone());
        let state = Arc::new(functions::RenderState {
            known: self.known.clone(),
            vars,
            env_vars: context.options.env_vars.clone(),
            is_incremental: context.is_incremental,
            queries: context.queries.clone(),
            recorded: Default::default(),
            depth: Default::default(),
            tested: Default::default(),
        });
        let mut values: BTreeMap<&'static str, Value> = BTreeMap::new();
        values.insert(functions::STATE, Value::from_dyn_object(state.clone()));
        values.insert(
            "target",
            Value::from(minijinja::value::Serde(&context.target)),
        );
        values.insert(
            "this",
            this.map_or(Value::from(()), |name| {
                Value::from_object(adapter::Relation::model(name))
            }),
        );
        values.insert(
            "execute",
            Value::from_object(functions::Execute(state.clone())),
        );
        values.extend(self.fixed.iter().map(|(k, v)| (*k, v.clone())));
        let scope = macros::Scope {
            index: self.index.clone(),
            values,
        };
        (state, Value::from_object(scope))
    }

    /// Render a template written in YAML (a test's `where:` or `expression`), with the run's
    /// vars, target and macros; `at` is where it stands in `file`, for the error.
    pub fn render_text(
        &self,
        text: &str,
        context: &RenderContext,
        file: &SourceFile,
        at: SourceSpan,
    ) -> Result<String, RenderError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        self.renders.fetch_add(1, Ordering::Relaxed);
        self.env
            .render_str(&macros::prepare(text).text, self.root(context, None).1)
            .map_err(|error| RenderError::Template {
                message: format!(
                    "{}: {}",
                    file.path().display(),
                    error.detail().unwrap_or("invalid template")
                ),
                src: file.named(),
                at,
            })
    }

    /// Render a generic test macro's query of failing rows (`{% test name(model, ...) %}`):
    /// its `model` is `model` (SQL reading the rows under test, narrowed by `where:`), its
    /// `column_name` the test's column, its other arguments the test's YAML arguments (a
    /// `ref(...)` or `source(...)` given as text is that relation, as in dbt); `ref()` of the
    /// tested model reads `tested`, all its rows under test. Returns the SQL and what the macro
    /// gave `config()` (its `fail_calc`...).
    pub fn render_generic_test(
        &self,
        test: &crate::project::DataTest,
        model: &str,
        tested: &str,
        context: &RenderContext,
    ) -> Result<(String, crate::project::ModelConfigProperties), RenderError> {
        let crate::project::DataTestKind::Macro {
            test: which,
            arguments,
            ..
        } = &test.kind
        else {
            return Err(self.test_problem(test, "not a generic test macro".into()));
        };
        self.renders.fetch_add(1, Ordering::Relaxed);
        let found = self
            .index
            .find(&which.namespace, &format!("test_{}", which.name))
            .ok_or_else(|| {
                self.test_problem(
                    test,
                    format!("no test macro `{}.{}`", which.namespace, which.name),
                )
            })?;
        let (state, root) = self.root(context, None);
        // `ref()` of the tested model reads the rows under test.
        if let crate::project::NodeId::Model(name) = &test.subject {
            *state.tested.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((name.clone(), tested.to_string()));
        }
        let mut args: Vec<(String, Value)> = vec![(
            "model".into(),
            Value::from_object(adapter::Relation::tested(&test.subject.to_string(), model)),
        )];
        if let Some(column) = &test.column {
            args.push(("column_name".into(), Value::from(column.clone())));
        }
        let mut inline = String::new();
        for (key, value) in arguments {
            match value.as_str().map(str::trim) {
                Some(text) if text.starts_with("ref(") || text.starts_with("source(") => {
                    inline.push_str(&format!(", {key}={text}"));
                }
                Some(text) if text.contains("{{") || text.contains("{%") => {
                    let rendered = self.render_text(text, context, &test.file, test.at)?;
                    args.push((key.clone(), Value::from(rendered)));
                }
                // A list may be changed (`group_by_columns.append(...)`).
                _ if value.is_sequence() => args.push((
                    key.clone(),
                    macros::mutable_list(Value::from(minijinja::value::Serde(value)))
                        .unwrap_or_default(),
                )),
                _ => args.push((key.clone(), Value::from(minijinja::value::Serde(value)))),
            }
        }
        let source = format!("{{{{ __dp_test(**__dp_test_args{inline}) }}}}");
        let scope = root
            .downcast_object_ref::<macros::Scope>()
            .map(|scope| {
                scope.with([
                    ("__dp_test", Value::from_object(found)),
                    (
                        "__dp_test_args",
                        Value::from(args.into_iter().collect::<BTreeMap<_, _>>()),
                    ),
                ])
            })
            .unwrap_or(root);
        let rendered = self.env.render_str(&source, scope);
        let recorded =
            std::mem::take(&mut *state.recorded.lock().unwrap_or_else(|e| e.into_inner()));
        match rendered {
            Ok(sql) => Ok((sql, recorded.config)),
            Err(error) => Err(self.test_problem(
                test,
                error
                    .detail()
                    .map_or_else(|| error.to_string(), str::to_string),
            )),
        }
    }

    fn test_problem(&self, test: &crate::project::DataTest, message: String) -> RenderError {
        RenderError::Template {
            message: format!("test `{}`: {message}", test.name),
            src: test.file.named(),
            at: test.at,
        }
    }

    /// Whether a template can call the macro `name` (`package.name`, or a bare name).
    pub fn has_macro(&self, name: &str) -> bool {
        self.index.named(name).is_some()
    }

    /// Every macro a template can call, as `namespace.name`.
    pub fn macro_names(&self) -> Vec<String> {
        self.index.names()
    }

    /// How many templates this renderer has rendered.
    pub fn renders(&self) -> usize {
        self.renders.load(Ordering::Relaxed)
    }

    /// Render one model (or singular test) of `project` in `context`.
    pub fn render_model(
        &self,
        project: &Project,
        model: &ModelFile,
        context: &RenderContext,
    ) -> Result<RenderedModel, RenderError> {
        self.renders.fetch_add(1, Ordering::Relaxed);
        if model.is_seed {
            return render_seed(project, model);
        }
        let template = template_name(model);
        let prepared = self.templates.get(&template).cloned().unwrap_or_default();
        self.render_in(&self.env, &prepared, project, model, context)
            .0
    }

    /// Render `text`, a template given on the command line (`dp show --inline`,
    /// `dp run-operation`), as a model named `name` of `project`: what it rendered to, and
    /// what its `log(..., info=True)` and `print()` calls said.
    pub fn render_inline(
        &self,
        project: &Project,
        name: &str,
        text: &str,
        context: &RenderContext,
    ) -> (Result<RenderedModel, RenderError>, Vec<String>) {
        self.renders.fetch_add(1, Ordering::Relaxed);
        let model = ModelFile {
            name: name.to_string(),
            ..singular_test(&SourceFile::new(format!("<{name}>"), text))
        };
        let prepared = macros::prepare(text);
        let mut env = self.env.clone();
        if let Err(error) = env.add_template_owned(template_name(&model), prepared.text.clone()) {
            let at = error_span(&error, &model.file, &prepared);
            let problem = template_problem(
                project,
                &model,
                &error,
                model.file.clone(),
                at,
                Recorded::default(),
            );
            return (Err(problem), Vec::new());
        }
        self.render_in(&env, &prepared, project, &model, context)
    }

    /// Render `model`, whose template `env` holds as `prepared`, in `context`; with what its
    /// `log()` and `print()` calls said.
    fn render_in(
        &self,
        env: &Environment<'static>,
        prepared: &macros::Prepared,
        project: &Project,
        model: &ModelFile,
        context: &RenderContext,
    ) -> (Result<RenderedModel, RenderError>, Vec<String>) {
        let (state, root) = self.root(context, Some(&model.name));
        let template = match env.get_template(&template_name(model)) {
            Ok(template) => template,
            Err(error) => {
                let problem =
                    self.template_error(project, model, prepared, &error, Recorded::default());
                return (Err(problem), Vec::new());
            }
        };
        let rendered = template.render_with_spans(root);
        let mut recorded =
            std::mem::take(&mut *state.recorded.lock().unwrap_or_else(|e| e.into_inner()));
        let messages = std::mem::take(&mut recorded.messages);
        let outcome = match rendered {
            Ok((sql, _)) if sql.len() > MAX_RENDERED_BYTES => Err(RenderError::Limit {
                message: format!(
                    "{} writes {} MB of SQL",
                    model.file.path().display(),
                    sql.len() >> 20
                ),
                src: model.file.named(),
                at: (0, 0).into(),
            }),
            Ok((sql, spans)) => finish_model(project, model, sql, &spans, prepared, recorded),
            Err(error) => Err(self.template_error(project, model, prepared, &error, recorded)),
        };
        (outcome, messages)
    }
}

/// A project's models and singular tests rendered in one context, and what could not be.
#[derive(Debug)]
pub struct Rendered {
    pub project: RenderedProject,
    /// Every model's render problem, in model order, with the name of the model (or singular
    /// test) that has it.
    pub problems: Vec<(String, RenderError)>,
}

/// Render every model and singular test of `project` in `context`, in parallel.
pub fn render(renderer: &Renderer, project: &Project, context: &RenderContext) -> Rendered {
    let singular: Vec<ModelFile> = project.singular_tests.iter().map(singular_test).collect();
    let templates: Vec<&ModelFile> = project.models.values().chain(&singular).collect();
    let outcomes: Vec<Result<RenderedModel, RenderError>> = templates
        .par_iter()
        .map(|model| renderer.render_model(project, model, context))
        .collect();
    let mut models = BTreeMap::new();
    let mut singular_tests = Vec::new();
    let mut problems = Vec::new();
    for (index, (model, outcome)) in templates.iter().zip(outcomes).enumerate() {
        match outcome {
            // `config(enabled=false)` leaves a singular test out.
            Ok(rendered) if index >= project.models.len() => {
                if rendered.config.enabled {
                    singular_tests.push(rendered);
                }
            }
            Ok(rendered) => {
                models.insert(model.name.clone(), rendered);
            }
            Err(problem) => problems.push((model.name.clone(), problem)),
        }
    }
    // `config(enabled=false)` in a model's SQL leaves it out, as the folder tree's does; a model
    // that refers to it cannot be built.
    let disabled: std::collections::BTreeSet<String> = models
        .values()
        .filter(|model: &&RenderedModel| !model.config.enabled)
        .map(|model| model.name.clone())
        .collect();
    models.retain(|name, _| !disabled.contains(name));
    let readers: Vec<(String, RenderError)> = models
        .values()
        .filter_map(|model| {
            let call = model.refs.iter().find(|c| disabled.contains(&c.target))?;
            let problem = RenderError::DisabledRef {
                model: model.name.clone(),
                target: call.target.clone(),
                src: model.file.named(),
                at: call.at,
            };
            Some((model.name.clone(), problem))
        })
        .collect();
    for (reader, _) in &readers {
        models.remove(reader);
    }
    problems.extend(readers);
    Rendered {
        project: RenderedProject {
            models,
            singular_tests,
        },
        problems,
    }
}

/// A singular test's file as the template it renders, named by its file's stem.
pub fn singular_test(file: &SourceFile) -> ModelFile {
    ModelFile {
        name: file
            .path()
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
        file: file.clone(),
        is_seed: false,
        properties: None,
        properties_file: None,
        folder_config: Default::default(),
        snapshot: None,
    }
}

fn template_name(model: &ModelFile) -> String {
    match &model.snapshot {
        // A file may hold several snapshots.
        Some(_) => format!("{}#{}", model.file.path().display(), model.name),
        None => model.file.path().display().to_string(),
    }
}

/// Render the templates in data tests' YAML, as dbt does: each test's `where:` and an
/// `expression_is_true` expression (`amount > {{ var('floor') }}`).
pub fn render_tests(
    renderer: &Renderer,
    tests: &mut [crate::project::DataTest],
    context: &RenderContext,
) -> Result<(), RenderError> {
    let mut problems = Vec::new();
    for test in tests {
        let (file, at) = (test.file.clone(), test.at);
        let mut render = |text: &mut String| match renderer.render_text(text, context, &file, at) {
            Ok(rendered) => *text = rendered,
            Err(problem) => problems.push(problem),
        };
        if let Some(filter) = &mut test.config.filter {
            render(filter);
        }
        if let crate::project::DataTestKind::ExpressionIsTrue { expression } = &mut test.kind {
            render(expression);
        }
    }
    crate::source::problems(problems, |problems| RenderError::Many { problems })
}

fn finish_model(
    project: &Project,
    model: &ModelFile,
    sql: String,
    spans: &[minijinja::OutputSpan],
    prepared: &macros::Prepared,
    recorded: Recorded,
) -> Result<RenderedModel, RenderError> {
    let template = template_name(model);
    let text_len = model.file.text().len();
    let to_file = |range: Range<usize>| {
        prepared.to_file(range.start).min(text_len)..prepared.to_file(range.end).min(text_len)
    };
    let mapped: Vec<MappedSpan> = spans
        .iter()
        .filter(|s| s.name() == template)
        .map(|s| MappedSpan {
            output: s.output_range(),
            source: to_file(s.source_range()),
            verbatim: s.kind() == OutputSpanKind::Raw,
        })
        .collect();
    // A call's span is the expression whose output is the call's result, in call order; a call
    // made inside a macro (or a filter) gets the span of the expression that output it.
    let expressions: Vec<&minijinja::OutputSpan> = spans
        .iter()
        .filter(|s| s.kind() == OutputSpanKind::Expression && s.name() == template)
        .collect();
    let mut next = 0;
    let mut locate = |output: &str| -> SourceSpan {
        let text_of = |s: &minijinja::OutputSpan| sql.get(s.output_range()).unwrap_or_default();
        let found = expressions[next..]
            .iter()
            .position(|s| text_of(s) == output)
            .map(|i| (next + i, next + i + 1))
            .or_else(|| {
                let i = expressions[next..]
                    .iter()
                    .position(|s| text_of(s).contains(output))?;
                Some((next + i, next + i))
            });
        match found {
            Some((index, after)) => {
                next = after;
                span(to_file(expressions[index].source_range()), text_len)
            }
            None => (0, 0).into(),
        }
    };
    let mut refs = Vec::new();
    let mut sources = Vec::new();
    for call in recorded.calls {
        let at = locate(&call.output);
        let call_record = Call {
            target: call.target,
            at,
        };
        if call.is_source {
            sources.push(call_record);
        } else {
            refs.push(call_record);
        }
    }
    let config = merge_config(project, model, recorded.config)?;
    Ok(RenderedModel {
        name: model.name.clone(),
        file: model.file.clone(),
        sql,
        source_map: SourceMap { spans: mapped },
        refs,
        sources,
        config,
        runs_queries: recorded.ran_query,
    })
}

/// A seed as a model: the query over its CSV file's values.
fn render_seed(project: &Project, model: &ModelFile) -> Result<RenderedModel, RenderError> {
    let mut config = merge_config(project, model, Default::default())?;
    config.materialized = crate::project::Materialization::Seed;
    let sql = seed::seed_sql(&model.file, &config).map_err(|bad| RenderError::Seed {
        model: model.name.clone(),
        message: bad.message,
        at: span(bad.at..bad.at + 1, model.file.text().len()),
        src: model.file.named(),
    })?;
    Ok(RenderedModel {
        name: model.name.clone(),
        file: model.file.clone(),
        sql,
        source_map: SourceMap::default(),
        refs: Vec::new(),
        sources: Vec::new(),
        config,
        runs_queries: false,
    })
}

/// The model's configuration: its properties' `config:`, overridden by what its SQL gave
/// `config()`.
/// A configuration that cannot be points at the line that sets the key at fault (the model's
/// SQL, its YAML or the project file).
fn merge_config(
    project: &Project,
    model: &ModelFile,
    called: crate::project::ModelConfigProperties,
) -> Result<ModelConfig, RenderError> {
    let config = model.declared_config().overridden_by(called);
    let resolved = match model.snapshot {
        Some(_) => config.resolve_snapshot(),
        None => config.resolve(),
    };
    resolved.map_err(|invalid| {
        let (file, at) = project.config_key_place(&model.name, invalid.key);
        RenderError::InvalidConfig {
            model: model.name.clone(),
            at,
            src: file.named(),
            message: invalid.message,
            help: Some(invalid.help),
        }
    })
}

/// The environment templates render in: dp's functions, dbt's context, `templates` (by name),
/// with `undefined` for names nothing defines.
fn environment(
    templates: &Arc<BTreeMap<String, macros::Prepared>>,
    undefined: UndefinedBehavior,
) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(true);
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(FUEL));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    functions::register(&mut env);
    dbt_context::register(&mut env);
    let loader = templates.clone();
    env.set_loader(move |name| Ok(loader.get(name).map(|t| t.text.clone())));
    env
}

/// Every macro file a render may call: dbt's (dp's own), the packages', the project's.
fn all_macro_files(project: &Project) -> Vec<SourceFile> {
    let mut files = macros::dbt_macro_files();
    for package in &project.packages {
        files.extend(package.macros.iter().cloned());
    }
    files.extend(project.macros.iter().cloned());
    files
}

/// Where `error` stands in `file`, whose template is `prepared`: its bytes, else its line.
fn error_span(
    error: &minijinja::Error,
    file: &SourceFile,
    prepared: &macros::Prepared,
) -> SourceSpan {
    match (error.range(), error.line()) {
        (Some(range), _) => span(
            prepared.to_file(range.start)..prepared.to_file(range.end),
            file.text().len(),
        ),
        (None, Some(line)) => {
            let start = SourceFile::offset_of(file.text(), line as u64, 1);
            let end = file.text()[start..]
                .find('\n')
                .map_or(file.text().len(), |n| start + n);
            span(start..end, file.text().len())
        }
        (None, None) => (0, 0).into(),
    }
}

impl Renderer {
    /// Turn a minijinja error into a diagnostic in the file it happened in (the model's, or a
    /// macro's of the project or a package), typed by what the template's calls recorded.
    fn template_error(
        &self,
        project: &Project,
        model: &ModelFile,
        model_template: &macros::Prepared,
        error: &minijinja::Error,
        recorded: Recorded,
    ) -> RenderError {
        let name = error.name().unwrap_or_default();
        let (file, prepared) = if name == template_name(model) {
            (model.file.clone(), model_template.clone())
        } else {
            let file = self
                .macro_files
                .iter()
                .find(|m| m.path().display().to_string() == name)
                .cloned()
                .unwrap_or_else(|| model.file.clone());
            (file, self.templates.get(name).cloned().unwrap_or_default())
        };
        let at = error_span(error, &file, &prepared);
        template_problem(project, model, error, file, at, recorded)
    }
}

/// The diagnostic of a render's `error` at `at` in `file`, typed by what the template's
/// function calls recorded.
fn template_problem(
    project: &Project,
    model: &ModelFile,
    error: &minijinja::Error,
    file: SourceFile,
    at: SourceSpan,
    recorded: Recorded,
) -> RenderError {
    let src = file.named();
    if error.kind() == minijinja::ErrorKind::OutOfFuel {
        return RenderError::Limit {
            message: format!("{} runs too long to render", file.path().display()),
            src,
            at,
        };
    }
    match recorded.problem {
        Some(Problem::UnknownRef(target)) => RenderError::UnknownRef {
            model: model.name.clone(),
            did_you_mean: crate::source::did_you_mean(
                &target,
                project.models.keys().map(String::as_str),
            ),
            target,
            src,
            at,
        },
        Some(Problem::UnknownSource(target)) => RenderError::UnknownSource {
            model: model.name.clone(),
            help: crate::source::did_you_mean(&target, project.sources.keys().map(String::as_str))
                .unwrap_or_else(|| "declare it under `sources:` in a models/*.yml file".into()),
            target,
            src,
            at,
        },
        Some(Problem::MissingVar(name)) => RenderError::MissingVar { name, src, at },
        Some(Problem::MissingEnvVar(name)) => RenderError::MissingEnvVar { name, src, at },
        Some(Problem::InvalidConfig(message)) => RenderError::InvalidConfig {
            model: model.name.clone(),
            message,
            src,
            at,
            help: Some("config() takes the keys of `config:` in YAML: materialized, partition_by, tags, contract".into()),
        },
        None => RenderError::Template {
            message: format!(
                "{}: {}",
                file.path().display(),
                error.detail().map_or_else(
                    || error.kind().to_string(),
                    |detail| functions::readable(detail).to_string()
                )
            ),
            src,
            at,
        },
    }
}
