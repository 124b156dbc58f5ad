//! LOAD: find the project folder, read `dp_project.yml`, the model SQL files, the property YAML
//! files and the macros. In: a folder. Out: a [`Project`], or every problem found at once.

mod blocks;
mod config;
mod data_tests;
mod doc_blocks;
mod environment;
mod ignored;
mod model_config;
pub mod profile;
mod snapshots;
mod storage_options;
mod target;
mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use miette::SourceSpan;
use url::Url;
use walkdir::WalkDir;

pub use config::{
    DBT_PROJECT_FILE, DEFAULT_RETRIES, DEFAULT_VACUUM_RETENTION, DEFAULT_WAREHOUSE, EngineKind,
    PROJECT_FILE, ProjectConfig, ProjectPaths, TargetConfig, parse_byte_size, parse_duration,
};
pub use data_tests::{
    DataTest, DataTestKind, NodeId, Severity, TestConfig, Threshold, parse_relation,
    split_source_id,
};
pub use doc_blocks::DocBlock;
pub use ignored::IgnoredKeys;
pub use model_config::{
    DiffConfig, FolderConfig, HardDeletes, Incremental, IncrementalStrategy, InvalidConfig,
    Materialization, ModelConfig, OnSchemaChange, SnapshotColumns, SnapshotConfig,
    SnapshotStrategy,
};
pub use snapshots::SnapshotTemplate;
pub use storage_options::StorageOptions;
pub use target::{Engine, Target};
pub use yaml::{
    ColumnDiffProperties, ColumnProperties, ContractProperties, DiffProperties, MissingPartition,
    ModelConfigProperties, ModelProperties, OneOrMany, PropertiesFile, RowsFormat, SourceFormat,
    SourceProperties, SourceTableProperties, UnitTestInput, UnitTestOverrides, UnitTestProperties,
    UnitTestRows,
};

use crate::source::SourceFile;

/// A loaded project: its configuration and every file that defines a node.
#[derive(Debug, Clone)]
pub struct Project {
    /// The folder holding `dp_project.yml` (or `dbt_project.yml`).
    pub root: PathBuf,
    pub config: ProjectConfig,
    /// `dp_project.yml` (or `dbt_project.yml`) itself.
    pub config_file: SourceFile,
    /// Where the project keeps each kind of file.
    pub paths: ProjectPaths,
    /// Models and seeds by name (the file's stem), in name order.
    pub models: BTreeMap<String, ModelFile>,
    /// Source tables by `source.table`, in name order.
    pub sources: BTreeMap<String, SourceTable>,
    /// Source tables (`source.table`) that are a seed or model of the project (declared without
    /// a location of their own, named as one), each with that model: `source()` reads it.
    pub source_models: BTreeMap<String, String>,
    /// The files under `macros/`, in path order.
    pub macros: Vec<SourceFile>,
    /// Every `data_tests:` entry of models, columns and sources, by subject (then file order).
    pub data_tests: Vec<DataTest>,
    /// Every `unit_tests:` entry.
    pub unit_tests: Vec<UnitTest>,
    /// The singular tests: `tests/**/*.sql`, each a query returning the failing rows.
    pub singular_tests: Vec<SourceFile>,
    /// The `{% docs %}` blocks of `models/**/*.md`, in path order.
    pub doc_blocks: Vec<DocBlock>,
    /// What the project's files do that still works but should change (a deprecated key).
    pub warnings: Vec<LoadWarning>,
    /// The variables of the project's `.env` file that the process does not set.
    pub dotenv: BTreeMap<String, String>,
}

/// Something in a project's files that works but should change: shown, never an error.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum LoadWarning {
    #[error("`{key}` is deprecated and ignored")]
    #[diagnostic(code(dp::deprecated), severity(Warning))]
    Deprecated {
        key: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("ignored")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    #[error("data tests giving their arguments beside the test's name: {count}")]
    #[diagnostic(
        code(dp::deprecated_test_arguments),
        severity(Warning),
        help(
            "they still work; dbt 1.10 deprecates this layout: write `- accepted_values: {{arguments: {{values: [...]}}}}`"
        )
    )]
    TestArgumentsBeside {
        count: usize,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("the first")]
        at: SourceSpan,
    },

    #[error("`{key}` is ignored")]
    #[diagnostic(code(dp::ignored_key), severity(Warning))]
    IgnoredKey {
        key: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("accepted, and ignored")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    #[error("source `{source_id}` is the project's {kind} `{model}`: dp reads that table")]
    #[diagnostic(
        code(dp::source_is_model),
        severity(Warning),
        help(
            "write {{{{ ref('{model}') }}}} where it is read; a source is data the project does not build"
        )
    )]
    SourceIsModel {
        source_id: String,
        model: String,
        kind: &'static str,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("no location of its own")]
        at: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(code(dp::ignored), severity(Warning))]
    Ignored {
        message: String,
        #[help]
        help: String,
    },
}

/// A unit test and the file that declares it.
#[derive(Debug, Clone)]
pub struct UnitTest {
    pub properties: UnitTestProperties,
    /// Each `given` input, parsed.
    pub inputs: Vec<NodeId>,
    pub file: SourceFile,
    pub at: SourceSpan,
}

/// A model's SQL file (or a seed's CSV file) and the properties declared for it in YAML.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub name: String,
    pub file: SourceFile,
    /// A seed: a CSV file loaded as a table, not a template.
    pub is_seed: bool,
    /// What a `models:` entry declares for it, and the YAML file of that entry.
    pub properties: Option<ModelProperties>,
    pub properties_file: Option<SourceFile>,
    /// What `models:` (or `seeds:`, `snapshots:`) of the project file gives the model's folder.
    pub folder_config: ModelConfigProperties,
    /// A snapshot: the template it renders instead of its file's text.
    pub snapshot: Option<SnapshotTemplate>,
}

impl ModelFile {
    /// The text its template is: a snapshot's, else its file's.
    pub fn template_text(&self) -> &str {
        match &self.snapshot {
            Some(snapshot) => &snapshot.text,
            None => self.file.text(),
        }
    }

    /// The configuration its files declare: the folder tree's, overridden by its YAML
    /// `config:` (a model's `config()` call comes on top when it renders).
    pub fn declared_config(&self) -> ModelConfigProperties {
        let yaml = self.properties.as_ref().map(|p| p.config.clone());
        self.folder_config
            .clone()
            .overridden_by(yaml.unwrap_or_default())
    }
}

impl Project {
    /// The folder dp writes run results, compiled SQL, test failures and the docs into.
    pub fn target_dir(&self) -> PathBuf {
        self.root.join(&self.paths.target)
    }
}

/// One table of a declared source.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub source: String,
    pub table: String,
    /// Where the table's files are.
    pub location: Url,
    pub format: SourceFormat,
    pub partitioned_by: Vec<String>,
    pub columns: Vec<ColumnProperties>,
    pub on_missing_partition: MissingPartition,
    /// The table's description, and its source's.
    pub description: Option<String>,
    pub source_description: Option<String>,
    /// The YAML file that declares it.
    pub file: SourceFile,
    /// A Parquet table's schema, read from its files' footers the first time a session registers
    /// the table; the later sessions of the loaded project (the check's, each model's, its
    /// clones') reuse it.
    pub file_schema: Arc<OnceLock<datafusion::arrow::datatypes::SchemaRef>>,
}

impl Project {
    /// Where `model`'s configuration sets `key`: its `config()` call, else its `config:` in
    /// YAML, else the project file's tree, else the model's `config(` call (or first line).
    pub fn config_key_place(&self, model: &str, key: &str) -> (&SourceFile, SourceSpan) {
        let in_project = ignored::yaml_key(&self.config_file, key, 0);
        let Some(model) = self.models.get(model) else {
            return (&self.config_file, in_project);
        };
        // A snapshot's template holds only its own block of its file.
        if let Some(at) = sql_assignment(model.template_text(), key) {
            return (&model.file, at);
        }
        if let Some(file) = &model.properties_file {
            let entry = file.find_name(&model.name, 0).offset();
            let at = file.find(&format!("{key}:"), entry);
            if !at.is_empty() {
                return (file, at);
            }
        }
        if !in_project.is_empty() {
            return (&self.config_file, in_project);
        }
        let at = match model.template_text().find("config(") {
            Some(at) => (at, "config(".len()).into(),
            None => (0, 0).into(),
        };
        (&model.file, at)
    }

    /// The models the relationships tests of `model` read, in the order they are declared.
    pub fn related_models<'a>(&'a self, model: &str) -> impl Iterator<Item = &'a str> {
        self.data_tests_of(&NodeId::Model(model.to_string()))
            .iter()
            .filter_map(|test| match &test.kind {
                DataTestKind::Relationships {
                    to: NodeId::Model(to),
                    ..
                } => Some(to.as_str()),
                _ => None,
            })
    }

    /// The data tests of one model or source table.
    pub fn data_tests_of(&self, subject: &NodeId) -> &[DataTest] {
        let start = self.data_tests.partition_point(|t| t.subject < *subject);
        let end = self.data_tests.partition_point(|t| t.subject <= *subject);
        &self.data_tests[start..end]
    }
}

impl SourceTable {
    /// `source.table`, the id used in selectors and listings.
    pub fn id(&self) -> String {
        format!("{}.{}", self.source, self.table)
    }
}

/// Everything that can stop a project from loading.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum LoadError {
    #[error("no {PROJECT_FILE} or {DBT_PROJECT_FILE} in {} or any folder above it", start.display())]
    #[diagnostic(
        code(dp::project_not_found),
        help("run dp inside a project folder, or pass --project-dir")
    )]
    NotFound { start: PathBuf },

    #[error("cannot read {}: {message}", path.display())]
    #[diagnostic(
        code(dp::dotenv),
        help("each line of .env is NAME=value (quotes and # comments allowed)")
    )]
    Dotenv { path: PathBuf, message: String },

    #[error(
        "secret {variable} ({origin}) is shorter than {} characters",
        crate::report::MIN_SECRET_CHARS
    )]
    #[diagnostic(
        code(dp::secret_too_short),
        help(
            "dp writes every DP_SECRET_ value as **** in all its output, and a value this short \
             would be masked inside ordinary text; give a longer value, or a name without the \
             DP_SECRET_ prefix if it is no secret"
        )
    )]
    SecretTooShort {
        variable: String,
        /// Where it is set: the process's environment, or the line of `.env`.
        origin: String,
    },

    #[error("environment variable {variable}={value:?} is not {expected}")]
    #[diagnostic(
        code(dp::environment),
        help("DP_ variables override the target's settings; unset it or give {expected}")
    )]
    BadEnvironment {
        variable: String,
        value: String,
        expected: &'static str,
    },

    #[error("cannot read {}", path.display())]
    #[diagnostic(code(dp::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{message}")]
    #[diagnostic(code(dp::invalid_yaml))]
    Yaml {
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(
        code(dp::snapshot_block),
        help(
            "a snapshot is `{{% snapshot name %}} select ... {{% endsnapshot %}}`, its name of letters, digits and `_`"
        )
    )]
    SnapshotBlock {
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("this block")]
        at: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(code(dp::doc_block))]
    DocBlock {
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("this block")]
        at: SourceSpan,
    },

    #[error("model `{name}` is defined twice")]
    #[diagnostic(
        code(dp::duplicate_model),
        help("model names must be unique; {other} defines it too")
    )]
    DuplicateModel {
        name: String,
        other: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("second definition")]
        at: SourceSpan,
    },

    #[error("`{name}` cannot be a model name")]
    #[diagnostic(
        code(dp::bad_model_name),
        help(
            "a model is named by its file; use letters, digits and `_` only, such as daily_summary.sql"
        )
    )]
    BadModelName {
        name: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("this file")]
        at: SourceSpan,
    },

    #[error("properties given for `{name}`, but no models/**/{name}.sql exists")]
    #[diagnostic(code(dp::unknown_model))]
    UnknownModel {
        name: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("no such model")]
        at: SourceSpan,
        #[help]
        did_you_mean: Option<String>,
    },

    #[error("`{name}` is declared twice")]
    #[diagnostic(code(dp::duplicate_declaration))]
    DuplicateDeclaration {
        name: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("declared again here")]
        at: SourceSpan,
    },

    #[error("`{location}` is not a valid location")]
    #[diagnostic(
        code(dp::bad_location),
        help(
            "use a folder relative to the project, a file:// URL such as file:///data/raw, or a bucket's s3://bucket/prefix; {{{{ env_var('NAME', 'default') }}}} reads the environment"
        )
    )]
    BadLocation {
        location: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(
        code(dp::storage_option),
        help(
            "storage_options take object_store's S3 settings; give secrets as {{{{ env_var('NAME') }}}}"
        )
    )]
    StorageOption {
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("this setting")]
        at: SourceSpan,
    },

    #[error("`{key}` of target `{target}` is a secret written in dp_project.yml")]
    #[diagnostic(
        code(dp::literal_secret),
        help(
            "read it from the environment: {key}: \"{{{{ env_var('NAME') }}}}\"; and take it out of the file's history"
        )
    )]
    LiteralSecret { key: String, target: String },

    #[error("{variable} makes commits unsafe: {why}")]
    #[diagnostic(
        code(dp::unsafe_environment),
        help(
            "unset {variable}: dp commits with conditional writes (If-None-Match), which S3 and the safe S3-compatible servers honour"
        )
    )]
    UnsafeEnvironment { variable: String, why: String },

    #[error("`{value}` is not a memory size")]
    #[diagnostic(
        code(dp::bad_memory_limit),
        help("a number and a unit, such as 512MB or 4GB")
    )]
    BadMemoryLimit {
        value: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(
        code(dp::invalid_config),
        help(
            "under `models:`, folders of models/ and config keys: +materialized, +partition_by, +tags, +contract"
        )
    )]
    InvalidConfig {
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("target `{target}`: {message}")]
    #[diagnostic(
        code(dp::bad_scheduler),
        help(
            "`engine: ballista` runs the queries on a Ballista cluster whose scheduler is given as `scheduler: df://host:port`, such as df://127.0.0.1:50050"
        )
    )]
    BadScheduler {
        target: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("`{value}` is not a duration")]
    #[diagnostic(
        code(dp::bad_duration),
        help("a whole number and a unit: s, m, h, d or w, such as 7d or 36h")
    )]
    BadDuration {
        value: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("{what} lies inside {other}")]
    #[diagnostic(
        code(dp::nested_location),
        help(
            "a model's table must not share a folder with a source or another target's tables: cleanup of one would reach the other's files; point the warehouse elsewhere"
        )
    )]
    NestedLocation {
        what: String,
        other: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("this warehouse")]
        at: SourceSpan,
    },

    #[error("models `{name}` and `{other}` differ only in case")]
    #[diagnostic(
        code(dp::model_name_case),
        help(
            "on a case-insensitive file system (macOS, Windows) they would share one table folder; rename one of them"
        )
    )]
    ModelNameCase {
        name: String,
        other: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("this file")]
        at: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(code(dp::invalid_test))]
    InvalidTest {
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unknown target `{name}`")]
    #[diagnostic(
        code(dp::unknown_target),
        help("targets in {PROJECT_FILE}: {available}")
    )]
    UnknownTarget {
        name: String,
        available: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("targets are declared here")]
        at: SourceSpan,
    },

    #[error("the project has {} problems", problems.len())]
    #[diagnostic(code(dp::invalid_project))]
    Many {
        #[related]
        problems: Vec<LoadError>,
    },
}

/// The JSON Schemas (draft 2020-12) of dp's YAML files, by file name: `dp_project.yml` and the
/// property files under `models/`. `schemas/` holds them, for editors.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    let pretty = |schema: schemars::Schema| {
        serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
    };
    vec![
        (
            "dp_project.schema.json",
            pretty(schemars::schema_for!(ProjectConfig)),
        ),
        (
            "properties.schema.json",
            pretty(schemars::schema_for!(PropertiesFile)),
        ),
    ]
}

/// The folder holding `dp_project.yml` or `dbt_project.yml`: `start` itself or the nearest
/// folder above it.
pub fn find_root(start: &Path) -> Result<PathBuf, LoadError> {
    let start = std::path::absolute(start).map_err(|source| LoadError::Io {
        path: start.to_path_buf(),
        source,
    })?;
    start
        .ancestors()
        .find(|dir| dir.join(PROJECT_FILE).is_file() || dir.join(DBT_PROJECT_FILE).is_file())
        .map(Path::to_path_buf)
        .ok_or(LoadError::NotFound { start })
}

/// The project file of `root`, read: `dp_project.yml`, else `dbt_project.yml` (then dp's
/// defaults for what dbt sets elsewhere); and what it says that dp ignores.
fn read_project_file(
    root: &Path,
) -> Result<
    (
        SourceFile,
        ProjectConfig,
        ProjectPaths,
        Vec<LoadWarning>,
        IgnoredKeys,
    ),
    LoadError,
> {
    let mut warnings = Vec::new();
    let mut ignored = IgnoredKeys::default();
    for name in ["packages.yml", "dependencies.yml"] {
        if root.join(name).is_file() {
            let file = read(root, Path::new(name))?;
            let why = "dp does not install dbt packages yet: a model or test that uses one fails where it does";
            ignored.add_yaml("packages", why, &file, 0);
        }
    }
    if root.join(PROJECT_FILE).is_file() {
        let file = read(root, Path::new(PROJECT_FILE))?;
        let config = parse_yaml(&file)?;
        if root.join(DBT_PROJECT_FILE).is_file() {
            warnings.push(LoadWarning::Ignored {
                message: format!("{DBT_PROJECT_FILE} is ignored: {PROJECT_FILE} is here too"),
                help: format!("dp reads {PROJECT_FILE} when a folder has both; remove it to run the dbt project as it is"),
            });
        }
        return Ok((file, config, ProjectPaths::default(), warnings, ignored));
    }
    let file = read(root, Path::new(DBT_PROJECT_FILE))?;
    let dbt: config::DbtProjectConfig = parse_yaml(&file)?;
    let (config, paths, ignored_keys) = dbt.into_dp();
    for key in ignored_keys {
        let why =
            "dp runs models, seeds, tests, macros and docs; see \"Coming from dbt\" in the README";
        ignored.add(&key, why, &file, ignored::yaml_key(&file, &key, 0));
    }
    Ok((file, config, paths, warnings, ignored))
}

/// Every file ending in `.extension` under each of `folders`, in folder then path order.
fn read_trees(
    root: &Path,
    folders: &[String],
    extension: &str,
) -> Result<Vec<SourceFile>, LoadError> {
    let mut files = Vec::new();
    for folder in folders {
        files.extend(read_tree(root, folder, extension)?);
    }
    Ok(files)
}

/// `file`'s path below whichever of `folders` holds it.
fn below<'a>(file: &'a SourceFile, folders: &[String]) -> &'a Path {
    folders
        .iter()
        .find_map(|folder| file.path().strip_prefix(folder).ok())
        .unwrap_or(file.path())
}

/// Add `node` to `models`, unless its name cannot be one or is taken.
fn add_node(
    models: &mut BTreeMap<String, ModelFile>,
    node: ModelFile,
    problems: &mut Vec<LoadError>,
) {
    if !is_model_name(&node.name) {
        problems.push(LoadError::BadModelName {
            at: (0, 0).into(),
            src: node.file.named(),
            name: node.name,
        });
    } else if let Some(first) = models.get(&node.name) {
        problems.push(LoadError::DuplicateModel {
            other: first.file.path().display().to_string(),
            at: (0, 0).into(),
            src: node.file.named(),
            name: node.name,
        });
    } else {
        models.insert(node.name.clone(), node);
    }
}

/// Load the project rooted at `root` (a folder holding `dp_project.yml` or `dbt_project.yml`).
pub fn load(root: &Path) -> Result<Project, LoadError> {
    let mut problems = Vec::new();
    let (config_file, config, paths, mut warnings, mut ignored) = read_project_file(root)?;
    let dotenv = environment::read_dotenv(root)?;

    let tree = |key: &str, value: &serde_yaml::Value| {
        FolderConfig::parse(value).map_err(|message| LoadError::InvalidConfig {
            message: format!("{key}: {message}"),
            at: config_file.find(&format!("{key}:"), 0),
            src: config_file.named(),
        })
    };
    let model_tree = tree("models", &config.models)?;
    let seed_tree = tree("seeds", &config.seeds)?;
    let test_tree = tree("data_tests", &config.data_tests)?;
    let snapshot_tree = tree("snapshots", &config.snapshots)?;
    let node = |name: String, file: SourceFile, folder_config, is_seed, snapshot| ModelFile {
        name,
        file,
        is_seed,
        properties: None,
        properties_file: None,
        folder_config,
        snapshot,
    };
    let named_by_file = |file: &SourceFile| {
        file.path()
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
    };
    let mut nodes = Vec::new();
    for file in read_trees(root, &paths.models, "sql")? {
        let folder_config = model_tree.for_model(below(&file, &paths.models));
        if let Some(name) = named_by_file(&file) {
            nodes.push(node(name, file, folder_config, false, None));
        }
    }
    // An empty CSV file is no seed (a folder may hold placeholders).
    for file in read_trees(root, &paths.seeds, "csv")? {
        let folder_config = seed_tree.for_model(below(&file, &paths.seeds));
        if let Some(name) = named_by_file(&file).filter(|_| !file.text().trim().is_empty()) {
            nodes.push(node(name, file, folder_config, true, None));
        }
    }
    for file in read_trees(root, &paths.snapshots, "sql")? {
        let folder_config = snapshot_tree.for_model(below(&file, &paths.snapshots));
        match snapshots::from_blocks(&file) {
            Ok(found) => {
                for (name, template) in found {
                    nodes.push(node(
                        name,
                        file.clone(),
                        folder_config.clone(),
                        false,
                        Some(template),
                    ));
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    let mut models: BTreeMap<String, ModelFile> = BTreeMap::new();
    for node in nodes {
        add_node(&mut models, node, &mut problems);
    }

    let mut lowercase: BTreeMap<String, &ModelFile> = BTreeMap::new();
    for model in models.values() {
        if let Some(other) = lowercase.insert(model.name.to_lowercase(), model) {
            problems.push(LoadError::ModelNameCase {
                name: model.name.clone(),
                other: other.name.clone(),
                at: (0, 0).into(),
                src: model.file.named(),
            });
        }
    }
    for (name, target) in &config.targets {
        if target.orphan_min_age_secs.is_some() {
            let at = config_file.find(
                "orphan_min_age_secs",
                config_file.find(&format!("{name}:"), 0).offset(),
            );
            warnings.push(LoadWarning::Deprecated {
                key: "orphan_min_age_secs".into(),
                src: config_file.named(),
                at,
                help: "a build no longer deletes files it did not write; `dp vacuum` removes what killed builds left once it is older than the target's `vacuum_retention` (default 7d)".into(),
            });
        }
    }
    let mut sources = BTreeMap::new();
    let mut source_models = BTreeMap::new();
    let mut data_tests = Vec::new();
    let mut unit_tests = Vec::new();
    let mut arguments_beside = Vec::new();
    let property_folders: Vec<String> = paths
        .models
        .iter()
        .chain(&paths.seeds)
        .chain(&paths.snapshots)
        .cloned()
        .collect();
    for file in read_trees(root, &property_folders, "yml")?
        .into_iter()
        .chain(read_trees(root, &property_folders, "yaml")?)
    {
        let mut properties: PropertiesFile = match parse_yaml(&file) {
            Ok(properties) => properties,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        // A snapshot defined here (with a `relation:`) is a node of its own.
        let mut entry = 0;
        for snapshot in &properties.snapshots {
            entry = file.find_name(&snapshot.name, entry).offset();
            if let Some(template) = snapshots::from_yaml(&file, snapshot, entry) {
                let folder_config = snapshot_tree.for_model(below(&file, &paths.snapshots));
                let node = node(
                    snapshot.name.clone(),
                    file.clone(),
                    folder_config,
                    false,
                    Some(template),
                );
                add_node(&mut models, node, &mut problems);
            }
        }
        // A seed's or a snapshot's properties are a model's: description, config, columns and
        // their tests.
        properties.models.append(&mut properties.seeds);
        properties.models.append(&mut properties.snapshots);
        for (key, why) in properties.ignored_keys() {
            ignored.add_yaml(key, why, &file, 0);
        }
        ignored_property_keys(&properties, &file, &mut ignored);
        // What `data_tests:` of the project file gives the tests of this file's folder.
        let defaults = test_tree
            .for_model(below(&file, &property_folders))
            .test_defaults();
        // Entries are searched for in file order, each from the one before: linear in the file.
        let mut cursor = 0;
        for model in &properties.models {
            if !model.data_tests.is_empty()
                || model.columns.iter().any(|c| !c.data_tests.is_empty())
            {
                cursor = file.find_name(&model.name, cursor).offset();
            }
            let base = data_tests::Declared {
                subject: NodeId::Model(model.name.clone()),
                column: None,
                file: &file,
                from: cursor,
                defaults: &defaults,
            };
            arguments_beside.extend(collect_tests(
                &base,
                &model.data_tests,
                &model.columns,
                &mut data_tests,
                &mut problems,
            ));
        }
        for source in &properties.sources {
            for table in &source.tables {
                let base = data_tests::Declared {
                    subject: NodeId::Source(format!("{}.{}", source.name, table.name)),
                    column: None,
                    file: &file,
                    from: 0,
                    defaults: &defaults,
                };
                arguments_beside.extend(collect_tests(
                    &base,
                    &table.data_tests,
                    &table.columns,
                    &mut data_tests,
                    &mut problems,
                ));
            }
        }
        attach_model_properties(&mut models, properties.models, &file, &mut problems);
        for source in properties.sources {
            let declared = Declared {
                root,
                dotenv: &dotenv,
                models: &models,
                file: &file,
            };
            declared.add_source(
                source,
                &mut sources,
                &mut source_models,
                &mut warnings,
                &mut problems,
            );
        }
        for test in properties.unit_tests {
            unit_tests.push(unit_test(test, &file));
        }
    }
    if let Some((file, at)) = arguments_beside.first() {
        warnings.push(LoadWarning::TestArgumentsBeside {
            count: arguments_beside.len(),
            src: file.named(),
            at: *at,
        });
    }
    warnings.extend(ignored.into_warnings());
    // What is declared of a source that is a model of the project is declared of the model.
    let as_model = |node: &mut NodeId| {
        if let NodeId::Source(id) = node
            && let Some(model) = source_models.get(id)
        {
            *node = NodeId::Model(model.clone());
        }
    };
    for test in &mut data_tests {
        as_model(&mut test.subject);
        if let DataTestKind::Relationships { to, .. } = &mut test.kind {
            as_model(to);
        }
    }
    for test in &mut unit_tests {
        test.inputs.iter_mut().for_each(as_model);
    }
    // `enabled: false` (from the folder tree or the YAML): as if the file did not exist.
    let disabled: std::collections::BTreeSet<String> = models
        .values()
        .filter(|model| model.declared_config().enabled == Some(false))
        .map(|model| model.name.clone())
        .collect();
    models.retain(|name, _| !disabled.contains(name));
    data_tests
        .retain(|test| !matches!(&test.subject, NodeId::Model(name) if disabled.contains(name)));
    unit_tests.retain(|test| !disabled.contains(&test.properties.model));
    for test in &unit_tests {
        check_unit_test(test, &models, &sources, &mut problems);
    }
    for test in &data_tests {
        if let DataTestKind::Relationships { to, .. } = &test.kind {
            let known = match to {
                NodeId::Model(name) => models.contains_key(name),
                NodeId::Source(id) => sources.contains_key(id),
            };
            if !known {
                problems.push(LoadError::InvalidTest {
                    message: match to {
                        NodeId::Model(name) => format!("test `{}` relates to unknown model `{name}`", test.name),
                        NodeId::Source(id) => format!("test `{}` relates to undeclared source `{id}`", test.name),
                    },
                    src: test.file.named(),
                    at: test.at,
                    help: Some("`to:` names a model, ref('model'), or a declared source table, source('source', 'table')".into()),
                });
            }
        }
    }
    let mut seen = BTreeMap::new();
    for test in &mut data_tests {
        let count = seen.entry(test.name.clone()).or_insert(0);
        *count += 1;
        if *count > 1 {
            test.name = format!("{}_{count}", test.name);
        }
    }
    data_tests.sort_by(|a, b| a.subject.cmp(&b.subject));
    let singular_tests = read_trees(root, &paths.tests, "sql")?;

    let macros = read_trees(root, &paths.macros, "sql")?;
    let mut doc_blocks: Vec<DocBlock> = Vec::new();
    let docs_folders: Vec<String> = paths
        .models
        .iter()
        .chain(paths.docs.iter().filter(|d| !paths.models.contains(d)))
        .cloned()
        .collect();
    for file in read_trees(root, &docs_folders, "md")? {
        match doc_blocks::parse(&file) {
            Ok(blocks) => {
                for block in blocks {
                    if let Some(first) = doc_blocks.iter().find(|b| b.name == block.name) {
                        problems.push(LoadError::DocBlock {
                            message: format!(
                                "docs block `{}` is also defined in {}",
                                block.name,
                                first.file.path().display()
                            ),
                            src: block.file.named(),
                            at: block.at,
                        });
                    } else {
                        doc_blocks.push(block);
                    }
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    crate::source::problems(problems, |problems| LoadError::Many { problems })?;
    Ok(Project {
        root: root.to_path_buf(),
        config,
        config_file,
        paths,
        models,
        sources,
        source_models,
        macros,
        data_tests,
        unit_tests,
        singular_tests,
        doc_blocks,
        warnings,
        dotenv,
    })
}

/// The keys of the models, columns, sources and tables of a property file that dp ignores, each
/// at its line.
fn ignored_property_keys(
    properties: &PropertiesFile,
    file: &SourceFile,
    ignored: &mut IgnoredKeys,
) {
    let mut cursor = 0;
    for model in &properties.models {
        let keys = model.ignored_keys();
        if !keys.is_empty() {
            cursor = file.find_name(&model.name, cursor).offset();
        }
        for (key, why) in keys {
            ignored.add_yaml(key, why, file, cursor);
        }
    }
    for source in &properties.sources {
        let at = file.find_name(&source.name, 0).offset();
        for (key, why) in source.ignored_keys() {
            ignored.add_yaml(key, why, file, at);
        }
        for table in &source.tables {
            let at = file.find_name(&table.name, at).offset();
            for (key, why) in table.ignored_keys() {
                ignored.add_yaml(key, why, file, at);
            }
        }
    }
}

fn attach_model_properties(
    models: &mut BTreeMap<String, ModelFile>,
    declared: Vec<ModelProperties>,
    file: &SourceFile,
    problems: &mut Vec<LoadError>,
) {
    for properties in declared {
        let name = properties.name.clone();
        match models.get_mut(&name) {
            None => problems.push(LoadError::UnknownModel {
                did_you_mean: crate::source::did_you_mean(&name, models.keys().map(String::as_str)),
                src: file.named(),
                at: file.find_name(&name, 0),
                name,
            }),
            Some(model) if model.properties.is_some() => {
                problems.push(LoadError::DuplicateDeclaration {
                    src: file.named(),
                    at: file.find_name(&name, 0),
                    name,
                })
            }
            Some(model) => {
                model.properties = Some(properties);
                model.properties_file = Some(file.clone());
            }
        }
    }
}

/// Read the tests of a subject and of its columns, declared as `base` says (its column unset).
/// Returns where the tests that give their arguments beside the test's name (dbt's older
/// layout) are.
fn collect_tests<'a>(
    base: &data_tests::Declared<'a>,
    tests: &'a [serde_yaml::Value],
    columns: &'a [ColumnProperties],
    found: &mut Vec<DataTest>,
    problems: &mut Vec<LoadError>,
) -> Vec<(SourceFile, SourceSpan)> {
    let mut arguments_beside = Vec::new();
    let entries = tests
        .iter()
        .map(|entry| (entry, None))
        .chain(columns.iter().flat_map(|c| {
            c.data_tests
                .iter()
                .map(|entry| (entry, Some(c.name.as_str())))
        }));
    for (entry, column) in entries {
        let declared = data_tests::Declared {
            column,
            subject: base.subject.clone(),
            ..*base
        };
        match data_tests::parse(entry, &declared) {
            Ok((test, beside)) => {
                if beside {
                    arguments_beside.push((test.file.clone(), test.at));
                }
                // `enabled: false` in its config or its folder's: left out.
                if test.config.enabled {
                    found.push(test);
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    arguments_beside
}

fn unit_test(properties: UnitTestProperties, file: &SourceFile) -> UnitTest {
    let at = file.find_name(&properties.name, 0);
    UnitTest {
        inputs: properties
            .given
            .iter()
            .filter_map(|given| parse_relation(&given.input))
            .collect(),
        properties,
        file: file.clone(),
        at,
    }
}

/// A unit test must name a model, and inputs that exist.
fn check_unit_test(
    test: &UnitTest,
    models: &BTreeMap<String, ModelFile>,
    sources: &BTreeMap<String, SourceTable>,
    problems: &mut Vec<LoadError>,
) {
    let invalid = |message: String, needle: &str, help: Option<String>| LoadError::InvalidTest {
        message,
        src: test.file.named(),
        at: test.file.find(needle, test.at.offset()),
        help,
    };
    let model = &test.properties.model;
    if !models.contains_key(model) {
        problems.push(invalid(
            format!(
                "unit test `{}` is for unknown model `{model}`",
                test.properties.name
            ),
            model,
            crate::source::did_you_mean(model, models.keys().map(String::as_str)),
        ));
    }
    for given in &test.properties.given {
        let known = match parse_relation(&given.input) {
            Some(NodeId::Model(name)) => models.contains_key(&name),
            Some(NodeId::Source(id)) => sources.contains_key(&id),
            None => false,
        };
        if !known {
            problems.push(invalid(
                format!(
                    "`{}` is not a known ref('model') or source('source', 'table')",
                    given.input
                ),
                &given.input,
                None,
            ));
        }
    }
}

/// Where a property file is, and what the project around it holds.
struct Declared<'a> {
    root: &'a Path,
    dotenv: &'a BTreeMap<String, String>,
    models: &'a BTreeMap<String, ModelFile>,
    file: &'a SourceFile,
}

impl Declared<'_> {
    /// Add the tables of `source`: each where its `location` (or dbt-duckdb's
    /// `meta.external_location`) says, or, declared without one and named as a seed or model of
    /// the project with no data folder of its own, as that model (in `source_models`).
    fn add_source(
        &self,
        source: SourceProperties,
        sources: &mut BTreeMap<String, SourceTable>,
        source_models: &mut BTreeMap<String, String>,
        warnings: &mut Vec<LoadWarning>,
        problems: &mut Vec<LoadError>,
    ) {
        let file = self.file;
        let source_external = external_location(source.meta.as_ref());
        for table in source.tables {
            let id = format!("{}.{}", source.name, table.name);
            let at = file.find_name(&table.name, file.find_name(&source.name, 0).offset());
            if sources.contains_key(&id) || source_models.contains_key(&id) {
                problems.push(LoadError::DuplicateDeclaration {
                    name: format!("source {id}"),
                    src: file.named(),
                    at,
                });
                continue;
            }
            let identifier = table
                .identifier
                .clone()
                .unwrap_or_else(|| table.name.clone());
            let table_external = external_location(table.meta.as_ref());
            let (written, format, whole) =
                match (&table.location, &table_external, &source_external) {
                    (Some(location), _, _) => (location.clone(), source.format, true),
                    (None, Some((location, format)), _)
                    | (None, None, Some((location, format))) => {
                        let location = location
                            .replace("{name}", &table.name)
                            .replace("{identifier}", &identifier);
                        (location, format.unwrap_or(source.format), true)
                    }
                    (None, None, None) => {
                        let folder = source
                            .location
                            .clone()
                            .unwrap_or_else(|| format!("data/{}", source.name));
                        let default_folder = self.root.join(&folder).join(&identifier);
                        if source.location.is_none()
                            && !default_folder.exists()
                            && self.models.contains_key(&identifier)
                        {
                            let kind = match self.models[&identifier].is_seed {
                                true => "seed",
                                false => "model",
                            };
                            warnings.push(LoadWarning::SourceIsModel {
                                source_id: id.clone(),
                                model: identifier.clone(),
                                kind,
                                src: file.named(),
                                at,
                            });
                            source_models.insert(id, identifier);
                            continue;
                        }
                        (folder, source.format, false)
                    }
                };
            // `{{ env_var('RAW_LOCATION', 'data/raw') }}`: each machine or target its own data.
            let env = environment::env(self.dotenv);
            let rendered =
                storage_options::render_env_vars(&written, &env).map(|text| match whole {
                    true => text,
                    false => format!("{}/{}", text.trim_end_matches('/'), identifier),
                });
            let location_text = match rendered {
                Ok(text) => text,
                Err(problem) => {
                    problems.push(LoadError::BadLocation {
                        at: file.find(&written, 0),
                        location: format!("{written}: {problem}"),
                        src: file.named(),
                    });
                    continue;
                }
            };
            let Some(location) = resolve_location(self.root, &location_text) else {
                problems.push(LoadError::BadLocation {
                    at: file.find(&written, 0),
                    location: location_text,
                    src: file.named(),
                });
                continue;
            };
            sources.insert(
                id,
                SourceTable {
                    source: source.name.clone(),
                    table: table.name,
                    location,
                    format,
                    partitioned_by: table.partitioned_by,
                    columns: table.columns,
                    on_missing_partition: table.on_missing_partition,
                    description: table.description,
                    source_description: source.description.clone(),
                    file: file.clone(),
                    file_schema: Arc::default(),
                },
            );
        }
    }
}

/// dbt-duckdb's `meta.external_location`: a path or URL (with `{name}` / `{identifier}`), or a
/// `read_parquet('...')` / `read_csv('...')` / `read_csv_auto('...')` call; and the format a call
/// names.
fn external_location(meta: Option<&serde_yaml::Value>) -> Option<(String, Option<SourceFormat>)> {
    let text = meta?.get("external_location")?.as_str()?.trim();
    let Some((function, rest)) = text.split_once('(') else {
        return Some((text.to_string(), None));
    };
    let format = match function.trim().to_lowercase().as_str() {
        "read_parquet" | "parquet_scan" => SourceFormat::Parquet,
        "read_csv" | "read_csv_auto" => SourceFormat::Csv,
        _ => return Some((text.to_string(), None)),
    };
    let quoted = rest.trim_start().strip_prefix('\'')?;
    let path = &quoted[..quoted.find('\'')?];
    Some((path.to_string(), Some(format)))
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the closest expected key.
fn unknown_field_suggestion(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    crate::source::did_you_mean(field, expected)
}

/// A model's name becomes its table's folder and a SQL identifier: letters, digits and `_` only.
fn is_model_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The URL of a folder given as a URL or as a path relative to the project root. Folder URLs end
/// with `/`; a local folder's path is canonical (no `..`, symbolic links resolved as far as the
/// folders exist), so that two spellings of one folder compare equal. `None` for a location that
/// is not a folder dp can store in.
pub fn resolve_location(root: &Path, location: &str) -> Option<Url> {
    let url = if location.contains("://") {
        Url::parse(location).ok()?
    } else {
        Url::from_directory_path(std::path::absolute(root.join(location)).ok()?).ok()?
    };
    // A local folder or file:// URL, or a bucket of an S3-compatible store.
    let s3 = matches!(url.scheme(), "s3" | "s3a") && url.host_str().is_some_and(|h| !h.is_empty());
    if url.cannot_be_a_base() || !(url.scheme() == "file" || s3) {
        return None;
    }
    // A bucket URL names the bucket and a folder only: credentials in it would be shown wherever
    // the location is.
    let extra = !url.username().is_empty()
        || url.password().is_some()
        || url.port().is_some()
        || url.query().is_some()
        || url.fragment().is_some();
    let segments: Vec<&str> = url.path_segments()?.collect();
    let odd =
        |i: usize, s: &&str| *s == ".." || *s == "." || (s.is_empty() && i + 1 < segments.len());
    if s3 && (extra || segments.iter().enumerate().any(|(i, s)| odd(i, s))) {
        return None;
    }
    let url = if url.scheme() == "file" && names_files(location) {
        Url::from_file_path(canonical(&url.to_file_path().ok()?)).ok()?
    } else if url.scheme() == "file" {
        Url::from_directory_path(canonical(&url.to_file_path().ok()?)).ok()?
    } else {
        url
    };
    if url.path().ends_with('/') || names_files(location) {
        Some(url)
    } else {
        Url::parse(&format!("{url}/")).ok()
    }
}

/// Whether a location names files rather than a folder: a glob (`raw/*.parquet`) or a file
/// (`exports/labels.csv`).
fn names_files(location: &str) -> bool {
    let last = location.rsplit('/').next().unwrap_or(location);
    last.contains('*')
        || [".parquet", ".csv", ".json", ".gz"]
            .iter()
            .any(|extension| last.ends_with(extension))
}

/// `path` as the operating system resolves it: each `..` applied after the symbolic links before
/// it are followed, the part that exists canonicalised; the part that does not exist yet is
/// appended as written (without `.` and `..`).
fn canonical(path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if let Ok(real) = resolved.canonicalize() {
                    resolved = real;
                }
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    let mut existing = resolved.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(parent) = existing.parent() else {
            return resolved;
        };
        rest.push(existing.file_name().unwrap_or_default().to_os_string());
        existing = parent;
    }
    let mut real = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    real.extend(rest.iter().rev());
    real
}

fn read(root: &Path, relative: &Path) -> Result<SourceFile, LoadError> {
    let path = root.join(relative);
    let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io { path, source })?;
    Ok(SourceFile::new(relative, text))
}

/// Every file ending in `.extension` under `root/folder`, in path order.
fn read_tree(root: &Path, folder: &str, extension: &str) -> Result<Vec<SourceFile>, LoadError> {
    let base = root.join(folder);
    if !base.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in WalkDir::new(&base).sort_by_file_name() {
        let entry = entry.map_err(|error| LoadError::Io {
            path: error.path().unwrap_or(&base).to_path_buf(),
            source: error.into(),
        })?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if entry.file_type().is_file()
            && !hidden
            && path.extension().is_some_and(|ext| ext == extension)
        {
            let relative = path.strip_prefix(root).unwrap_or(path);
            files.push(read(root, relative)?);
        }
    }
    Ok(files)
}

/// Parse a YAML file into `T`; an empty file reads as an empty mapping.
fn parse_yaml<T: serde::de::DeserializeOwned>(file: &SourceFile) -> Result<T, LoadError> {
    let text = match file.text().trim() {
        "" => "{}",
        _ => file.text(),
    };
    serde_yaml::from_str(text).map_err(|error| {
        let at = error.location().map_or((0, 0).into(), |l| {
            crate::source::span(l.index()..l.index() + 1, file.text().len())
        });
        let message = error.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        LoadError::Yaml {
            help: unknown_field_suggestion(&message),
            message: format!("{}: {message}", file.path().display()),
            src: file.named(),
            at,
        }
    })
}

/// The span of `key` where SQL text assigns it (`key='value'`, `key = 'value'`).
fn sql_assignment(text: &str, key: &str) -> Option<SourceSpan> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(key).find_map(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + key.len()..].trim_start();
        let assigned = after.starts_with('=') && !after.starts_with("==");
        (!before.is_some_and(word) && assigned).then(|| (at, key.len()).into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run with `DP_UPDATE_SCHEMAS=1` to rewrite `schemas/` after changing a YAML type.
    #[test]
    fn the_committed_json_schemas_match_the_yaml_types() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        for (name, schema) in json_schemas() {
            let path = folder.join(name);
            if std::env::var_os("DP_UPDATE_SCHEMAS").is_some() {
                std::fs::write(&path, &schema).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == schema,
                "{name} is out of date: run DP_UPDATE_SCHEMAS=1 cargo test -p dp-engine schemas"
            );
        }
    }

    #[test]
    fn a_model_file_name_that_could_form_a_path_or_url_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROJECT_FILE), "name: t\n").unwrap();
        std::fs::create_dir(dir.path().join("models")).unwrap();
        for name in ["%2e%2e", "http:", "file:", "a b"] {
            std::fs::write(
                dir.path().join("models").join(format!("{name}.sql")),
                "select 1",
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("models/fine_1.sql"), "select 1").unwrap();
        let Err(LoadError::Many { problems }) = load(dir.path()) else {
            panic!("the names were accepted");
        };
        assert_eq!(problems.len(), 4);
        assert!(
            problems
                .iter()
                .all(|p| matches!(p, LoadError::BadModelName { .. }))
        );
    }

    fn validator(name: &str) -> jsonschema::Validator {
        let schema = json_schemas()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1;
        jsonschema::validator_for(&serde_json::from_str(&schema).unwrap()).unwrap()
    }

    fn as_json(yaml: &str) -> serde_json::Value {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn the_example_projects_yaml_files_satisfy_the_json_schemas() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example_project");
        let project = validator("dp_project.schema.json");
        let text = std::fs::read_to_string(root.join(PROJECT_FILE)).unwrap();
        assert!(project.is_valid(&as_json(&text)), "{text}");
        let properties = validator("properties.schema.json");
        let files = read_tree(&root, "models", "yml").unwrap();
        assert!(files.len() >= 3);
        for file in files {
            let errors: Vec<String> = properties
                .iter_errors(&as_json(file.text()))
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.path().display());
        }
    }

    #[test]
    fn the_schema_and_the_loader_both_reject_an_unknown_key() {
        let yaml = "models:\n  - name: orders\n    config:\n      materialised: table\n";
        assert!(!validator("properties.schema.json").is_valid(&as_json(yaml)));
        let file = SourceFile::new("models/schema.yml", yaml);
        assert!(parse_yaml::<PropertiesFile>(&file).is_err());
        let project = "name: p\nvarz: {}\n";
        assert!(!validator("dp_project.schema.json").is_valid(&as_json(project)));
        assert!(parse_yaml::<ProjectConfig>(&SourceFile::new(PROJECT_FILE, project)).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_relative_location_follows_symbolic_links_before_going_up() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real/project");
        std::fs::create_dir_all(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let resolved = resolve_location(&link, "../wh").unwrap();
        let expected = dir.path().canonicalize().unwrap().join("real/wh");
        assert_eq!(resolved.to_file_path().unwrap(), expected);
        assert_eq!(resolve_location(&link, "x:y://z"), None);
        assert_eq!(
            resolve_location(&link, "s3://bucket/prefix")
                .unwrap()
                .as_str(),
            "s3://bucket/prefix/"
        );
        assert_eq!(resolve_location(&link, "s3:///no-bucket"), None);
        for shown in [
            "s3://key:secret@bucket/p",
            "s3://bucket:9000/p",
            "s3://bucket/p?x=1",
            "s3://bucket/a//b",
        ] {
            assert_eq!(resolve_location(&link, shown), None, "{shown}");
        }
        assert_eq!(resolve_location(&link, "gs://bucket/prefix"), None);
    }

    #[test]
    fn a_source_location_may_come_from_the_environment() {
        let env: storage_options::Env = Arc::new(|name: &str| {
            (name == "RAW_LOCATION").then(|| "s3://prod-lake/raw".to_string())
        });
        let read = |text: &str| storage_options::render_env_vars(text, &env);
        assert_eq!(
            read("{{ env_var('RAW_LOCATION', 'data/raw') }}").unwrap(),
            "s3://prod-lake/raw"
        );
        assert_eq!(
            read("{{ env_var('UNSET', 'data/raw') }}").unwrap(),
            "data/raw"
        );
        assert!(
            read("{{ env_var('UNSET') }}")
                .unwrap_err()
                .contains("`UNSET` is not set")
        );
        // In a project: the default, when the variable is not set.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROJECT_FILE), "name: t\n").unwrap();
        std::fs::create_dir(dir.path().join("models")).unwrap();
        std::fs::write(
            dir.path().join("models/s.yml"),
            "sources:\n  - name: raw\n    location: \"{{ env_var('DP_TEST_NEVER_SET', 'data/raw') }}\"\n    \
             tables:\n      - name: events\n",
        )
        .unwrap();
        let loaded = load(dir.path()).unwrap();
        assert!(
            loaded.sources["raw.events"]
                .location
                .as_str()
                .ends_with("/data/raw/events/")
        );
    }

    #[test]
    fn the_example_project_loads() {
        let project =
            load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../example_project")).unwrap();
        assert_eq!(project.models.len(), 4);
        assert_eq!(project.sources["raw.events"].partitioned_by, ["date"]);
        assert!(project.models["daily_summary"].properties.is_some());
    }
}
