//! LOAD: find the project folder, read `dp_project.yml`, the model SQL files, the property YAML
//! files and the macros. In: a folder. Out: a [`Project`], or every problem found at once.

mod blocks;
mod config;
mod data_tests;
mod doc_blocks;
mod environment;
mod error;
mod ignored;
mod load;
mod model_config;
mod packages;
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

pub use blocks::declared_macros;
pub use config::{
    DBT_PROJECT_FILE, DEFAULT_RETRIES, DEFAULT_VACUUM_RETENTION, DEFAULT_WAREHOUSE, DispatchConfig,
    EngineKind, PROJECT_FILE, ProjectConfig, ProjectPaths, TargetConfig, parse_byte_size,
    parse_duration,
};
pub use data_tests::{
    DataTest, DataTestKind, NodeId, Severity, TestConfig, Threshold, parse_relation,
    split_source_id,
};
pub use doc_blocks::DocBlock;
pub use error::{LoadError, LoadWarning};
pub use ignored::IgnoredKeys;
pub use load::{load, project_paths};
pub use model_config::{
    DiffConfig, FolderConfig, HardDeletes, Incremental, IncrementalStrategy, InvalidConfig,
    Materialization, ModelConfig, OnSchemaChange, SnapshotColumns, SnapshotConfig,
    SnapshotStrategy,
};
pub use packages::{
    GenericTests, LOCK_FILE, PACKAGE_FILES, Package, PackageSpec, PackagesFile, TestMacro,
    read_packages_file,
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
    /// The macro files: those under `macros/`, and the files under `tests/` that declare
    /// generic tests, in path order.
    pub macros: Vec<SourceFile>,
    /// The installed packages, in name order.
    pub packages: Vec<Package>,
    /// `packages.yml` (or `dependencies.yml`), when the project has one.
    pub packages_file: Option<PackagesFile>,
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
    /// dbt's id of `node`: `model.<project>.<name>` (`seed.`, `snapshot.`), or
    /// `source.<project>.<source>.<table>`.
    pub fn unique_id(&self, node: &NodeId) -> String {
        match node {
            NodeId::Model(name) => {
                let kind = match self.models.get(name) {
                    Some(m) if m.is_seed => "seed",
                    Some(m) if m.snapshot.is_some() => "snapshot",
                    _ => "model",
                };
                format!("{kind}.{}.{name}", self.config.name)
            }
            NodeId::Source(id) => format!("source.{}.{id}", self.config.name),
        }
    }

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

    /// The models the data tests of `model` read besides it (a relationships test's parent, a
    /// generic test's `ref()` arguments), in the order they are declared.
    pub fn related_models<'a>(&'a self, model: &str) -> impl Iterator<Item = &'a str> {
        self.data_tests_of(&NodeId::Model(model.to_string()))
            .iter()
            .flat_map(DataTest::reads)
            .filter_map(|read| match read {
                NodeId::Model(to) => Some(to.as_str()),
                NodeId::Source(_) => None,
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
                            let node = &self.models[&identifier];
                            let kind = match (node.is_seed, &node.snapshot) {
                                (true, _) => "seed",
                                (false, Some(_)) => "snapshot",
                                (false, None) => "model",
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
