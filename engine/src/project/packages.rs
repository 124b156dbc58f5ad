//! LOAD: the dbt packages a project depends on. `packages.yml` (or `dependencies.yml`) lists
//! them; `dp deps` (or `dbt deps`) installs each, a dbt project, under `packages-install-path`.
//! A package gives the project its macros (generic tests included), its `vars` and its
//! `dispatch:` settings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use miette::SourceSpan;
use serde::Deserialize;

use super::config::{DBT_PROJECT_FILE, DbtProjectConfig, DispatchConfig};
use super::{LoadError, read, read_tree};
use crate::source::SourceFile;

/// The files that list a project's packages, in the order dbt reads them.
pub const PACKAGE_FILES: [&str; 2] = ["packages.yml", "dependencies.yml"];

/// An installed package: a dbt project under the project's packages folder.
#[derive(Debug, Clone)]
pub struct Package {
    /// The `name:` of its `dbt_project.yml`: the namespace of its macros.
    pub name: String,
    /// Its folder, relative to the root project.
    pub folder: PathBuf,
    /// Its macro files: those of its macro paths, and the test files declaring generic tests.
    pub macros: Vec<SourceFile>,
    /// Its `vars:`, under the root project's.
    pub vars: BTreeMap<String, serde_yaml::Value>,
    /// Its `dispatch:` settings, used for the namespaces the root project does not configure.
    pub dispatch: Vec<DispatchConfig>,
    /// Its model and seed folders, relative to the root project: built into the same
    /// warehouse as the project's own.
    pub model_folders: Vec<String>,
    pub seed_folders: Vec<String>,
    /// What its own `models:` and `seeds:` trees give its folders.
    pub model_tree: super::FolderConfig,
    pub seed_tree: super::FolderConfig,
}

/// `packages.yml`: the packages a project depends on, each where it was declared.
#[derive(Debug, Clone)]
pub struct PackagesFile {
    pub file: SourceFile,
    pub packages: Vec<(PackageSpec, SourceSpan)>,
}

/// One entry of `packages.yml`, as dbt reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageSpec {
    /// `local: ../path`: a folder, relative to the project.
    Local { path: String },
    /// `git: <url>` with an optional `revision:` (branch, tag or commit) and `subdirectory:`.
    Git {
        url: String,
        revision: Option<String>,
        subdirectory: Option<String>,
    },
    /// `package: org/name` of the dbt Hub, with `version:` ranges (`[">=1.0.0", "<2.0.0"]`).
    Hub {
        package: String,
        versions: Vec<String>,
    },
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    packages: Vec<RawSpec>,
}

/// An entry; what dp does not use (`warn-unpinned`, `install-prerelease`, `private`) is left.
#[derive(Deserialize)]
struct RawSpec {
    local: Option<String>,
    git: Option<String>,
    revision: Option<serde_yaml::Value>,
    subdirectory: Option<String>,
    package: Option<String>,
    version: Option<serde_yaml::Value>,
}

/// A YAML scalar or list of scalars, as text.
fn strings(value: Option<serde_yaml::Value>) -> Vec<String> {
    let scalar = |value: &serde_yaml::Value| match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Some(serde_yaml::Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
        Some(value) => scalar(&value).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Read the project's `packages.yml` (or `dependencies.yml`), if it has one.
pub fn read_packages_file(root: &Path) -> Result<Option<PackagesFile>, LoadError> {
    let Some(name) = PACKAGE_FILES.iter().find(|name| root.join(name).is_file()) else {
        return Ok(None);
    };
    let file = read(root, Path::new(name))?;
    let raw: RawFile = super::parse_yaml(&file)?;
    let mut packages = Vec::new();
    let mut cursor = 0;
    for spec in raw.packages {
        let key = |value: &str| file.find(value, cursor);
        let (parsed, at) = match spec {
            RawSpec {
                local: Some(path), ..
            } => (PackageSpec::Local { path: path.clone() }, key(&path)),
            RawSpec {
                git: Some(url),
                revision,
                subdirectory,
                ..
            } => (
                PackageSpec::Git {
                    revision: strings(revision).into_iter().next(),
                    subdirectory,
                    url: url.clone(),
                },
                key(&url),
            ),
            RawSpec {
                package: Some(package),
                version,
                ..
            } => (
                PackageSpec::Hub {
                    versions: strings(version),
                    package: package.clone(),
                },
                key(&package),
            ),
            _ => {
                return Err(LoadError::InvalidPackages {
                    message:
                        "a package is `local: <folder>`, `git: <url>` or `package: <org/name>`"
                            .into(),
                    at: file.find("-", cursor),
                    src: file.named(),
                });
            }
        };
        cursor = at.offset() + at.len();
        packages.push((parsed, at));
    }
    Ok(Some(PackagesFile { file, packages }))
}

/// The packages installed under `folder` (relative to `root`), in name order. A project that
/// declares more packages than are installed must run `dp deps` first.
pub fn installed(
    root: &Path,
    folder: &str,
    declared: Option<&PackagesFile>,
) -> Result<Vec<Package>, LoadError> {
    let mut packages = Vec::new();
    let base = root.join(folder);
    if base.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&base)
            .map_err(|source| LoadError::Io {
                path: base.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.join(DBT_PROJECT_FILE).is_file())
            .collect();
        entries.sort();
        for path in entries {
            let folder = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            packages.push(read_package(root, folder)?);
        }
    }
    let Some(declared) = declared else {
        return Ok(packages);
    };
    // By name when the lock file pins what each entry installed, else by count.
    let locked = locked_names(root);
    let missing = match locked.len() == declared.packages.len() {
        true => locked
            .iter()
            .position(|name| !packages.iter().any(|p| &p.name == name)),
        false => (declared.packages.len() > packages.len()).then_some(packages.len()),
    };
    if let Some(index) = missing {
        let at = declared.packages[index].1;
        let text = declared.file.text();
        return Err(LoadError::PackagesMissing {
            package: text[at.offset()..at.offset() + at.len()].to_string(),
            folder: folder.to_string(),
            at,
            src: declared.file.named(),
        });
    }
    Ok(packages)
}

/// The file `dp deps` (and `dbt deps`) pins what each entry of packages.yml installed in.
pub const LOCK_FILE: &str = "package-lock.yml";

/// The name of each package `package-lock.yml` pins, in the order of packages.yml; empty
/// without a readable lock file.
fn locked_names(root: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(root.join(LOCK_FILE)) else {
        return Vec::new();
    };
    let Ok(lock) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
        return Vec::new();
    };
    lock.get("packages")
        .and_then(|p| p.as_sequence())
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| Some(entry.get("name")?.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Read the package installed in `folder` (relative to `root`).
fn read_package(root: &Path, folder: PathBuf) -> Result<Package, LoadError> {
    let file = read(root, &folder.join(DBT_PROJECT_FILE))?;
    let config: DbtProjectConfig = super::parse_yaml(&file)?;
    let (dp, paths, _) = config.into_dp();
    let within = |folders: &[String]| -> Vec<String> {
        folders
            .iter()
            .map(|f| folder.join(f).display().to_string())
            .collect()
    };
    let macros = macro_files(root, &within(&paths.macros), &within(&paths.tests))?;
    let tree = |key: &str, value: &serde_yaml::Value| super::load::folder_tree(&file, key, value);
    Ok(Package {
        model_tree: tree("models", &dp.models)?,
        seed_tree: tree("seeds", &dp.seeds)?,
        name: dp.name,
        macros,
        vars: dp.vars,
        dispatch: dp.dispatch,
        model_folders: within(&paths.models),
        seed_folders: within(&paths.seeds),
        folder,
    })
}

/// The macro files of a project: every `.sql` file of its macro folders, and the files of its
/// test folders that declare generic tests (`{% test name(...) %}`).
pub fn macro_files(
    root: &Path,
    macro_folders: &[String],
    test_folders: &[String],
) -> Result<Vec<SourceFile>, LoadError> {
    let mut files = Vec::new();
    for folder in macro_folders {
        files.extend(read_tree(root, folder, "sql")?);
    }
    for folder in test_folders {
        files.extend(
            read_tree(root, folder, "sql")?
                .into_iter()
                .filter(|file| declares_generic_tests(file.text())),
        );
    }
    Ok(files)
}

/// Whether a template declares a generic test: a `{% test name(...) %}` block.
pub fn declares_generic_tests(text: &str) -> bool {
    text.match_indices("{%").any(|(at, _)| {
        let rest = text[at + 2..].trim_start_matches('-').trim_start();
        rest.strip_prefix("test")
            .is_some_and(|rest| rest.starts_with(char::is_whitespace))
    })
}

/// The generic tests the macros of a project and its packages define (`{% test name %}`, or
/// `{% macro test_name %}`), by namespace: what a YAML test's name can mean.
#[derive(Debug, Clone, Default)]
pub struct GenericTests {
    root: String,
    by_namespace: BTreeMap<String, BTreeSet<String>>,
}

/// A YAML test's generic test macro: its namespace and its name (without `test_`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestMacro {
    pub namespace: String,
    pub name: String,
}

impl GenericTests {
    /// The generic tests of the root project `root` (its macro files `macros`) and `packages`.
    pub fn new(root: &str, macros: &[SourceFile], packages: &[Package]) -> Self {
        let names = |files: &[SourceFile]| -> BTreeSet<String> {
            files
                .iter()
                .flat_map(|file| super::blocks::declared_macros(file.text()))
                .filter_map(|name| name.strip_prefix("test_").map(str::to_string))
                .collect()
        };
        let mut by_namespace = BTreeMap::new();
        for package in packages {
            by_namespace.insert(package.name.clone(), names(&package.macros));
        }
        by_namespace.insert(root.to_string(), names(macros));
        Self {
            root: root.to_string(),
            by_namespace,
        }
    }

    /// The macro a test named `name` runs, as dbt finds it: `package.test` in that package;
    /// a bare name in the root project, else (unless dp has it built in) in the one package
    /// that defines it. `None`: dp's built-in test of that name, or no such test.
    pub fn resolve(&self, name: &str, built_in: bool) -> Option<TestMacro> {
        let found = |namespace: &str, test: &str| {
            self.by_namespace
                .get(namespace)
                .is_some_and(|tests| tests.contains(test))
                .then(|| TestMacro {
                    namespace: namespace.to_string(),
                    name: test.to_string(),
                })
        };
        if let Some((namespace, test)) = name.split_once('.') {
            return found(namespace, test);
        }
        if let Some(own) = found(&self.root, name) {
            return Some(own);
        }
        if built_in {
            return None;
        }
        let mut packages = self
            .by_namespace
            .keys()
            .filter(|namespace| **namespace != self.root)
            .filter_map(|namespace| found(namespace, name));
        match (packages.next(), packages.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// Every test name a YAML test may use: `name` for the root's, `package.name` for the
    /// packages'.
    pub fn names(&self) -> Vec<String> {
        self.by_namespace
            .iter()
            .flat_map(|(namespace, tests)| {
                tests.iter().map(move |test| match namespace == &self.root {
                    true => test.clone(),
                    false => format!("{namespace}.{test}"),
                })
            })
            .collect()
    }
}
