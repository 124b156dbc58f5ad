//! LOAD: `load` in its phases. The project file first (with the config trees and `.env`), then
//! the walk of the folders for the nodes' files (models, seeds, snapshots), the property files
//! (properties, tests, sources, unit tests, YAML snapshots), `enabled: false`, the checks of
//! what refers to what, and the singular tests, macros and docs blocks. Every problem of every
//! phase is collected; the project loads only when there is none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use miette::SourceSpan;

use super::config::{DBT_PROJECT_FILE, DbtProjectConfig, PROJECT_FILE};
use super::data_tests::{self, DataTest, DataTestKind, NodeId, parse_relation};
use super::yaml::{ColumnProperties, ModelProperties, PropertiesFile, UnitTestProperties};
use super::{
    Declared, DocBlock, FolderConfig, IgnoredKeys, LoadError, LoadWarning, ModelFile, Project,
    ProjectConfig, ProjectPaths, SourceTable, UnitTest, doc_blocks, environment, ignored,
    is_model_name, packages, parse_yaml, read, read_tree, snapshots,
};
use crate::source::SourceFile;

/// Load the project rooted at `root` (a folder holding `dp_project.yml` or `dbt_project.yml`).
pub fn load(root: &Path) -> Result<Project, LoadError> {
    let mut loader = Loader::start(root)?;
    loader.read_macros()?;
    loader.walk()?;
    loader.read_properties()?;
    loader.drop_disabled();
    loader.validate();
    loader.finish()
}

/// The config trees of the project file: what each folder gives the nodes under it.
struct Trees {
    models: FolderConfig,
    seeds: FolderConfig,
    snapshots: FolderConfig,
    /// What `data_tests:` gives the tests declared in a folder's property files.
    tests: FolderConfig,
}

/// A project being loaded: what the phases found so far, and every problem.
struct Loader<'a> {
    root: &'a Path,
    config_file: SourceFile,
    config: ProjectConfig,
    paths: ProjectPaths,
    trees: Trees,
    dotenv: BTreeMap<String, String>,
    models: BTreeMap<String, ModelFile>,
    sources: BTreeMap<String, SourceTable>,
    source_models: BTreeMap<String, String>,
    data_tests: Vec<DataTest>,
    unit_tests: Vec<UnitTest>,
    macros: Vec<SourceFile>,
    packages: Vec<super::Package>,
    packages_file: Option<super::PackagesFile>,
    generic_tests: super::GenericTests,
    warnings: Vec<LoadWarning>,
    ignored: IgnoredKeys,
    /// Where tests give their arguments beside the test's name (dbt's older layout).
    arguments_beside: Vec<(SourceFile, SourceSpan)>,
    problems: Vec<LoadError>,
}

impl<'a> Loader<'a> {
    /// Read the project file, its config trees and `.env`.
    fn start(root: &'a Path) -> Result<Self, LoadError> {
        let (config_file, config, paths, mut warnings, ignored) = read_project_file(root)?;
        let dotenv = environment::read_dotenv(root)?;
        let tree = |key: &str, value: &serde_yaml::Value| folder_tree(&config_file, key, value);
        let trees = Trees {
            models: tree("models", &config.models)?,
            seeds: tree("seeds", &config.seeds)?,
            snapshots: tree("snapshots", &config.snapshots)?,
            tests: tree("data_tests", &config.data_tests)?,
        };
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
        Ok(Self {
            root,
            config_file,
            config,
            paths,
            trees,
            dotenv,
            models: BTreeMap::new(),
            sources: BTreeMap::new(),
            source_models: BTreeMap::new(),
            data_tests: Vec::new(),
            unit_tests: Vec::new(),
            macros: Vec::new(),
            packages: Vec::new(),
            packages_file: None,
            generic_tests: Default::default(),
            warnings,
            ignored,
            arguments_beside: Vec::new(),
            problems: Vec::new(),
        })
    }

    /// Read the macros of the project and of its installed packages (a project that declares
    /// packages it has not installed stops here), and the generic tests they define.
    fn read_macros(&mut self) -> Result<(), LoadError> {
        self.macros = packages::macro_files(self.root, &self.paths.macros, &self.paths.tests)?;
        self.packages_file = packages::read_packages_file(self.root)?;
        self.packages =
            packages::installed(self.root, &self.paths.packages, self.packages_file.as_ref())?;
        // The project's configuration of a package's nodes wins over the package's own.
        for package in &mut self.packages {
            if let Some(trees) = self.config.package_trees.get(&package.name) {
                let file = &self.config_file;
                let models = folder_tree(file, &package.name, &trees.models)?;
                let seeds = folder_tree(file, &package.name, &trees.seeds)?;
                package.model_tree = std::mem::take(&mut package.model_tree).overridden_by(models);
                package.seed_tree = std::mem::take(&mut package.seed_tree).overridden_by(seeds);
            }
        }
        self.generic_tests =
            super::GenericTests::new(&self.config.name, &self.macros, &self.packages);
        Ok(())
    }

    /// Walk the folders for the nodes' files: models' SQL, seeds' CSV (an empty one is no
    /// seed: a folder may hold placeholders), and the snapshot blocks of the snapshot folders.
    fn walk(&mut self) -> Result<(), LoadError> {
        let (root, paths) = (self.root, &self.paths);
        let mut nodes = Vec::new();
        // The project's models and seeds, then each package's, with its own folder config.
        let trees = std::iter::once((
            &paths.models,
            &self.trees.models,
            &paths.seeds,
            &self.trees.seeds,
        ))
        .chain(self.packages.iter().map(|p| {
            (
                &p.model_folders,
                &p.model_tree,
                &p.seed_folders,
                &p.seed_tree,
            )
        }));
        for (model_folders, model_tree, seed_folders, seed_tree) in trees {
            nodes.extend(files_as_nodes(root, model_folders, model_tree, false)?);
            nodes.extend(files_as_nodes(root, seed_folders, seed_tree, true)?);
        }
        for file in read_trees(root, &paths.snapshots, "sql")? {
            let folder_config = self
                .trees
                .snapshots
                .for_model(below(&file, &paths.snapshots));
            match snapshots::from_blocks(&file) {
                Ok(found) => nodes.extend(found.into_iter().map(|(name, template)| {
                    node(
                        name,
                        file.clone(),
                        folder_config.clone(),
                        false,
                        Some(template),
                    )
                })),
                Err(problem) => self.problems.push(problem),
            }
        }
        for node in nodes {
            add_node(&mut self.models, node, &mut self.problems);
        }
        let mut lowercase: BTreeMap<String, &ModelFile> = BTreeMap::new();
        for model in self.models.values() {
            if let Some(other) = lowercase.insert(model.name.to_lowercase(), model) {
                self.problems.push(LoadError::ModelNameCase {
                    name: model.name.clone(),
                    other: other.name.clone(),
                    at: (0, 0).into(),
                    src: model.file.named(),
                });
            }
        }
        Ok(())
    }

    /// Read every property file of the model, seed and snapshot folders; then say once what
    /// they ignore, and take what is declared of a source that is a model as the model's.
    fn read_properties(&mut self) -> Result<(), LoadError> {
        let folders: Vec<String> = self
            .paths
            .models
            .iter()
            .chain(&self.paths.seeds)
            .chain(&self.paths.snapshots)
            .chain(
                self.packages
                    .iter()
                    .flat_map(|p| p.model_folders.iter().chain(&p.seed_folders)),
            )
            .cloned()
            .collect();
        for file in read_trees(self.root, &folders, "yml")?
            .into_iter()
            .chain(read_trees(self.root, &folders, "yaml")?)
        {
            match parse_yaml(&file) {
                Ok(properties) => self.property_file(properties, &file, &folders),
                Err(problem) => self.problems.push(problem),
            }
        }
        if let Some((file, at)) = self.arguments_beside.first() {
            self.warnings.push(LoadWarning::TestArgumentsBeside {
                count: self.arguments_beside.len(),
                src: file.named(),
                at: *at,
            });
        }
        self.warnings
            .extend(std::mem::take(&mut self.ignored).into_warnings());
        let source_models = &self.source_models;
        let as_model = |node: &mut NodeId| {
            if let NodeId::Source(id) = node
                && let Some(model) = source_models.get(id)
            {
                *node = NodeId::Model(model.clone());
            }
        };
        for test in &mut self.data_tests {
            as_model(&mut test.subject);
            if let DataTestKind::Relationships { to, .. } = &mut test.kind {
                as_model(to);
            }
        }
        for test in &mut self.unit_tests {
            test.inputs.iter_mut().for_each(as_model);
        }
        Ok(())
    }

    /// One property file (found under one of `folders`): its YAML snapshots, the tests of its
    /// models, seeds, snapshots and sources, their properties, its sources and unit tests.
    fn property_file(
        &mut self,
        mut properties: PropertiesFile,
        file: &SourceFile,
        folders: &[String],
    ) {
        let mut entry = 0;
        for snapshot in &properties.snapshots {
            entry = file.find_name(&snapshot.name, entry).offset();
            if let Some(template) = snapshots::from_yaml(file, snapshot, entry) {
                let folder_config = self
                    .trees
                    .snapshots
                    .for_model(below(file, &self.paths.snapshots));
                let node = node(
                    snapshot.name.clone(),
                    file.clone(),
                    folder_config,
                    false,
                    Some(template),
                );
                add_node(&mut self.models, node, &mut self.problems);
            }
        }
        // A seed's or a snapshot's properties are a model's: description, config, columns and
        // their tests.
        properties.models.append(&mut properties.seeds);
        properties.models.append(&mut properties.snapshots);
        for (key, why) in properties.ignored_keys() {
            self.ignored.add_yaml(key, why, file, 0);
        }
        ignored_property_keys(&properties, file, &mut self.ignored);
        self.property_tests(&properties, file, folders);
        let unmatched = attach_model_properties(
            &mut self.models,
            properties.models,
            file,
            &mut self.problems,
        );
        for problem in unmatched {
            // dbt warns, and leaves the entry's tests out: a dbt project loads.
            match (
                self.config_file.path() == Path::new(DBT_PROJECT_FILE),
                problem,
            ) {
                (true, LoadError::UnknownModel { name, src, at, .. }) => {
                    self.data_tests
                        .retain(|test| test.subject != NodeId::Model(name.clone()));
                    self.warnings
                        .push(LoadWarning::UnmatchedProperties { name, src, at });
                }
                (_, problem) => self.problems.push(problem),
            }
        }
        for source in properties.sources {
            let declared = Declared {
                root: self.root,
                dotenv: &self.dotenv,
                models: &self.models,
                file,
            };
            declared.add_source(
                source,
                &mut self.sources,
                &mut self.source_models,
                &mut self.warnings,
                &mut self.problems,
            );
        }
        for test in properties.unit_tests {
            self.unit_tests.push(unit_test(test, file));
        }
    }

    /// The data tests a property file declares on its models and its sources' tables.
    fn property_tests(
        &mut self,
        properties: &PropertiesFile,
        file: &SourceFile,
        folders: &[String],
    ) {
        // What `data_tests:` of the project file gives the tests of this file's folder.
        let defaults = self
            .trees
            .tests
            .for_model(below(file, folders))
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
                file,
                from: cursor,
                defaults: &defaults,
                generic_tests: &self.generic_tests,
            };
            self.arguments_beside.extend(collect_tests(
                &base,
                &model.data_tests,
                &model.columns,
                &mut self.data_tests,
                &mut self.problems,
            ));
        }
        for source in &properties.sources {
            for table in &source.tables {
                let base = data_tests::Declared {
                    subject: NodeId::Source(format!("{}.{}", source.name, table.name)),
                    column: None,
                    file,
                    from: 0,
                    defaults: &defaults,
                    generic_tests: &self.generic_tests,
                };
                self.arguments_beside.extend(collect_tests(
                    &base,
                    &table.data_tests,
                    &table.columns,
                    &mut self.data_tests,
                    &mut self.problems,
                ));
            }
        }
    }

    /// `enabled: false` (from the folder tree or the YAML): as if the file did not exist, with
    /// its tests.
    fn drop_disabled(&mut self) {
        let disabled: BTreeSet<String> = self
            .models
            .values()
            .filter(|model| model.declared_config().enabled == Some(false))
            .map(|model| model.name.clone())
            .collect();
        self.models.retain(|name, _| !disabled.contains(name));
        self.data_tests.retain(
            |test| !matches!(&test.subject, NodeId::Model(name) if disabled.contains(name)),
        );
        self.unit_tests
            .retain(|test| !disabled.contains(&test.properties.model));
    }

    /// What the tests refer to exists; tests of one name are numbered apart.
    fn validate(&mut self) {
        for test in &self.unit_tests {
            check_unit_test(test, &self.models, &self.sources, &mut self.problems);
        }
        for test in &self.data_tests {
            if let DataTestKind::Relationships { to, .. } = &test.kind {
                let known = match to {
                    NodeId::Model(name) => self.models.contains_key(name),
                    NodeId::Source(id) => self.sources.contains_key(id),
                };
                if !known {
                    self.problems.push(LoadError::InvalidTest {
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
        for test in &mut self.data_tests {
            let count = seen.entry(test.name.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                test.name = format!("{}_{count}", test.name);
            }
        }
        self.data_tests.sort_by(|a, b| a.subject.cmp(&b.subject));
    }

    /// Read the singular tests, the macros and the docs blocks; the project, or every problem
    /// found.
    fn finish(mut self) -> Result<Project, LoadError> {
        let singular_tests = read_trees(self.root, &self.paths.tests, "sql")?
            .into_iter()
            .filter(|file| !packages::declares_generic_tests(file.text()))
            .collect();
        let doc_blocks = self.doc_blocks()?;
        crate::source::problems(self.problems, |problems| LoadError::Many { problems })?;
        Ok(Project {
            root: self.root.to_path_buf(),
            config: self.config,
            config_file: self.config_file,
            paths: self.paths,
            models: self.models,
            sources: self.sources,
            source_models: self.source_models,
            macros: self.macros,
            packages: self.packages,
            packages_file: self.packages_file,
            data_tests: self.data_tests,
            unit_tests: self.unit_tests,
            singular_tests,
            doc_blocks,
            warnings: self.warnings,
            dotenv: self.dotenv,
        })
    }

    /// The `{% docs %}` blocks of the Markdown files of the model and docs folders; a name
    /// defined twice is a problem.
    fn doc_blocks(&mut self) -> Result<Vec<DocBlock>, LoadError> {
        let paths = &self.paths;
        let folders: Vec<String> = paths
            .models
            .iter()
            .chain(paths.docs.iter().filter(|d| !paths.models.contains(d)))
            .cloned()
            .collect();
        let mut found: Vec<DocBlock> = Vec::new();
        for file in read_trees(self.root, &folders, "md")? {
            let blocks = match doc_blocks::parse(&file) {
                Ok(blocks) => blocks,
                Err(problem) => {
                    self.problems.push(problem);
                    continue;
                }
            };
            for block in blocks {
                match found.iter().find(|b| b.name == block.name) {
                    Some(first) => self.problems.push(LoadError::DocBlock {
                        message: format!(
                            "docs block `{}` is also defined in {}",
                            block.name,
                            first.file.path().display()
                        ),
                        src: block.file.named(),
                        at: block.at,
                    }),
                    None => found.push(block),
                }
            }
        }
        Ok(found)
    }
}

/// A node of the project, before its properties are read.
/// The models (`.sql` files) or seeds (`.csv` files; an empty one is no seed: a folder may
/// hold placeholders) under `folders`, each named by its file and configured by `tree`.
fn files_as_nodes(
    root: &Path,
    folders: &[String],
    tree: &FolderConfig,
    seeds: bool,
) -> Result<Vec<ModelFile>, LoadError> {
    let extension = if seeds { "csv" } else { "sql" };
    Ok(read_trees(root, folders, extension)?
        .into_iter()
        .filter(|file| !seeds || !file.text().trim().is_empty())
        .filter_map(|file| {
            let name = file.path().file_stem()?.to_string_lossy().into_owned();
            let config = tree.for_model(below(&file, folders));
            Some(node(name, file, config, seeds, None))
        })
        .collect())
}

/// The config tree `value` of `key` in the project file `file`; an error is at the key.
pub(super) fn folder_tree(
    file: &SourceFile,
    key: &str,
    value: &serde_yaml::Value,
) -> Result<FolderConfig, LoadError> {
    FolderConfig::parse(value).map_err(|message| LoadError::InvalidConfig {
        message: format!("{key}: {message}"),
        at: file.find(&format!("{key}:"), 0),
        src: file.named(),
    })
}

fn node(
    name: String,
    file: SourceFile,
    folder_config: super::ModelConfigProperties,
    is_seed: bool,
    snapshot: Option<snapshots::SnapshotTemplate>,
) -> ModelFile {
    ModelFile {
        name,
        file,
        is_seed,
        properties: None,
        properties_file: None,
        folder_config,
        snapshot,
    }
}

/// Where the project in `root` keeps each kind of file, from its project file alone.
pub fn project_paths(root: &Path) -> Result<ProjectPaths, LoadError> {
    read_project_file(root).map(|(_, _, paths, _, _)| paths)
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
    let dbt: DbtProjectConfig = parse_yaml(&file)?;
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

/// Give each model its `models:` entry; returns the entries of no model.
fn attach_model_properties(
    models: &mut BTreeMap<String, ModelFile>,
    declared: Vec<ModelProperties>,
    file: &SourceFile,
    problems: &mut Vec<LoadError>,
) -> Vec<LoadError> {
    let mut unmatched = Vec::new();
    for properties in declared {
        let name = properties.name.clone();
        match models.get_mut(&name) {
            None => unmatched.push(LoadError::UnknownModel {
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
    unmatched
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
