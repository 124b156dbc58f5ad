//! `dp deps`: install the packages of `packages.yml` (or `dependencies.yml`) under the
//! project's `packages-install-path`, as `dbt deps` does: a `local:` package as a link to its
//! folder, a `git:` package cloned with the system `git` (at its `revision:`, from its
//! `subdirectory:`), a dbt Hub package at the highest version its ranges allow. What was
//! installed is pinned in `package-lock.yml`. Every package is fetched beside the packages
//! folder first, and moved in only when all were: a failure leaves the folder as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::project::LOCK_FILE;
use crate::project::{PackageSpec, PackagesFile};

/// The dbt Hub's API, which `DP_HUB_URL` replaces (a mirror).
const HUB_URL: &str = "https://hub.getdbt.com/api/v1";

/// Why a package could not be installed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum DepsError {
    #[error("package `{package}`: {message}")]
    #[diagnostic(code(dp::deps))]
    Package {
        package: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("this package")]
        at: miette::SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("cannot write {}: {message}", path.display())]
    #[diagnostic(code(dp::write))]
    Write { path: PathBuf, message: String },
}

/// How old the folder of a `dp deps` run must be before another run takes it for a leftover.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// One package installed: its name, where it came from, and the version or commit pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub spec: PackageSpec,
    /// The Hub version or the git commit installed; none for a local package.
    pub pinned: Option<String>,
}

/// Install every package `declared` lists into `root/folder`, replacing what was there;
/// returns what was installed. Everything is fetched and laid out beside the folder first: a
/// package that cannot be fetched changes nothing, and the new folder takes the old one's
/// place by two renames (a run killed between them leaves no folder, and load says to run
/// `dp deps`; never a mix of old and new packages).
pub fn deps(
    root: &Path,
    folder: &str,
    declared: &PackagesFile,
) -> Result<Vec<Installed>, DepsError> {
    let target = root.join(folder);
    let write = |path: &Path, error: std::io::Error| DepsError::Write {
        path: path.to_path_buf(),
        message: error.to_string(),
    };
    let parent = target.parent().unwrap_or(root);
    let base = target
        .file_name()
        .map_or_else(|| "packages".into(), |n| n.to_string_lossy().into_owned());
    // Leftovers of runs that were killed go first; a younger one may be another `dp deps`
    // at work.
    let prefix = format!(".{base}.dp-deps-");
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            let abandoned = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > ABANDONED_AFTER));
            if entry.file_name().to_string_lossy().starts_with(&prefix) && abandoned {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let staging = parent.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(staging.join("fetched")).map_err(|e| write(&staging, e))?;
    let installed = install_all(root, &staging, declared).and_then(|installed| {
        swap(
            &staging.join("packages"),
            &target,
            &staging.join("replaced"),
        )
        .map_err(|e| write(&target, e))?;
        Ok(installed)
    });
    let _ = std::fs::remove_dir_all(&staging);
    let installed = installed?;
    write_lock(root, &installed)?;
    Ok(installed)
}

/// Put the folder `new` at `target`, moving what was there to `replaced`.
fn swap(new: &Path, target: &Path, replaced: &Path) -> std::io::Result<()> {
    let existed = std::fs::symlink_metadata(target).is_ok();
    if existed {
        std::fs::rename(target, replaced)?;
    }
    std::fs::rename(new, target).inspect_err(|_| {
        if existed {
            let _ = std::fs::rename(replaced, target);
        }
    })
}

/// Fetch every package into `staging/fetched/`, then lay them out in `staging/packages/`.
fn install_all(
    root: &Path,
    staging: &Path,
    declared: &PackagesFile,
) -> Result<Vec<Installed>, DepsError> {
    let mut fetched = Vec::new();
    for (index, (spec, at)) in declared.packages.iter().enumerate() {
        let fail = |message: String, help: Option<String>| DepsError::Package {
            package: describe(spec),
            message,
            src: declared.file.named(),
            at: *at,
            help,
        };
        let place = staging.join("fetched").join(index.to_string());
        let (package_root, pinned) = match spec {
            PackageSpec::Local { path } => {
                let folder = root.join(path);
                let absolute = std::fs::canonicalize(&folder)
                    .map_err(|e| fail(format!("{}: {e}", folder.display()), None))?;
                (absolute, None)
            }
            PackageSpec::Git {
                url,
                revision,
                subdirectory,
            } => {
                let commit = clone(url, revision.as_deref(), &place).map_err(|message| {
                    fail(
                        message,
                        Some("check the URL and the revision; dp runs the system `git`".into()),
                    )
                })?;
                let within = subdirectory
                    .as_deref()
                    .map_or(place.clone(), |s| place.join(s));
                let plain = subdirectory.as_deref().is_none_or(|sub| {
                    Path::new(sub)
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                });
                if !plain {
                    return Err(fail(
                        "`subdirectory:` must be a folder inside the repository".into(),
                        None,
                    ));
                }
                (within, Some(commit))
            }
            PackageSpec::Hub { package, versions } => {
                let (version, tarball) = resolve_hub(package, versions).map_err(|message| {
                    fail(
                        message,
                        Some("dp resolves Hub packages at hub.getdbt.com (or DP_HUB_URL); offline, install the package with `git:` or `local:`, or copy a dbt_packages/ folder where `dbt deps` ran".into()),
                    )
                })?;
                download(&tarball, &place).map_err(|message| fail(message, None))?;
                (single_folder(&place), Some(version))
            }
        };
        let name = package_name(&package_root).map_err(|message| fail(message, None))?;
        // The name is a folder under the packages folder: a dbt project name, nothing else.
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(fail(
                format!("`{name}` cannot name a package (letters, digits, `_`)"),
                None,
            ));
        }
        if fetched.iter().any(|(_, other, _, _)| *other == name) {
            return Err(fail(format!("a second package named `{name}`"), None));
        }
        fetched.push((package_root, name, spec, pinned));
    }
    // Every package fetched: laid out as the packages folder will be.
    let packages = staging.join("packages");
    std::fs::create_dir_all(&packages).map_err(|e| DepsError::Write {
        path: packages.clone(),
        message: e.to_string(),
    })?;
    let mut installed = Vec::new();
    for (package_root, name, spec, pinned) in fetched {
        let destination = packages.join(&name);
        let moved = match spec {
            PackageSpec::Local { .. } => link(&package_root, &destination),
            _ => std::fs::rename(&package_root, &destination),
        };
        moved.map_err(|e| DepsError::Write {
            path: destination.clone(),
            message: e.to_string(),
        })?;
        installed.push(Installed {
            name,
            spec: spec.clone(),
            pinned,
        });
    }
    Ok(installed)
}

/// How a package is named in messages: its path, URL or Hub name.
fn describe(spec: &PackageSpec) -> String {
    match spec {
        PackageSpec::Local { path } => path.clone(),
        PackageSpec::Git { url, .. } => url.clone(),
        PackageSpec::Hub { package, .. } => package.clone(),
    }
}

/// The `name:` of the dbt project in `folder`.
fn package_name(folder: &Path) -> Result<String, String> {
    let file = folder.join(crate::project::DBT_PROJECT_FILE);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("no {}: {e}", file.display()))?;
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    yaml.get("name")
        .and_then(|name| name.as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("{} has no `name:`", file.display()))
}

/// Clone `url` into `place` at `revision` (a branch, tag or commit; default: the default
/// branch); returns the commit checked out.
fn clone(url: &str, revision: Option<&str>, place: &Path) -> Result<String, String> {
    let git = |args: &[&str], dir: Option<&Path>| -> Result<String, String> {
        let mut command = Command::new("git");
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        let output = command
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).trim().to_string()),
            false => Err(format!(
                "git {} failed: {}",
                args.first().unwrap_or(&""),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        }
    };
    // Neither may be read as one of git's options.
    if url.starts_with('-') || revision.is_some_and(|r| r.starts_with('-')) {
        return Err("a git URL or revision cannot start with `-`".into());
    }
    let place_text = place.display().to_string();
    git(&["clone", "--quiet", "--", url, &place_text], None)?;
    if let Some(revision) = revision {
        git(
            &["checkout", "--quiet", "--end-of-options", revision],
            Some(place),
        )?;
    }
    let commit = git(&["rev-parse", "HEAD"], Some(place))?;
    let _ = std::fs::remove_dir_all(place.join(".git"));
    Ok(commit)
}

/// The version of Hub package `package` to install, and its tarball's URL: the highest
/// release every range of `versions` allows (an exact version, or ranges such as
/// `[">=1.0.0", "<2.0.0"]`), as dbt resolves it.
fn resolve_hub(package: &str, versions: &[String]) -> Result<(String, String), String> {
    let base = std::env::var("DP_HUB_URL").unwrap_or_else(|_| HUB_URL.to_string());
    let url = format!("{}/{package}.json", base.trim_end_matches('/'));
    let index: serde_json::Value = fetch(&url)
        .and_then(|body| serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}")))?;
    let available: Vec<String> = index
        .get("versions")
        .and_then(|v| v.as_object())
        .map(|versions| versions.keys().cloned().collect())
        .unwrap_or_default();
    let version = pick_version(&available, versions)
        .ok_or_else(|| format!("no version matches {}", versions.join(", ")))?;
    let tarball = index["versions"][&version]["downloads"]["tarball"]
        .as_str()
        .ok_or_else(|| format!("{url}: version {version} has no tarball"))?
        .to_string();
    Ok((version, tarball))
}

/// The highest non-prerelease version of `available` within every range of `ranges`.
pub fn pick_version(available: &[String], ranges: &[String]) -> Option<String> {
    let requirements: Vec<semver::VersionReq> = ranges
        .iter()
        .map(|range| {
            let range = range.trim();
            // A bare version is that version exactly, as dbt reads it.
            let range = match range.starts_with(|c: char| c.is_ascii_digit()) {
                true => format!("={range}"),
                false => range.to_string(),
            };
            semver::VersionReq::parse(&range)
        })
        .collect::<Result<_, _>>()
        .ok()?;
    available
        .iter()
        .filter_map(|text| Some((semver::Version::parse(text).ok()?, text)))
        .filter(|(version, _)| version.pre.is_empty())
        .filter(|(version, _)| requirements.iter().all(|req| req.matches(version)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, text)| text.clone())
}

/// The body of `url`, fetched on a thread of its own.
fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let url = url.to_string();
    // The TLS of dp's object stores and of this client: one provider for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("{url}: {}", response.status()));
            }
            let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            Ok(body.to_vec())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the download failed".into()))
}

/// Download the tarball at `url` and unpack it into `place` (with the system `tar`).
fn download(url: &str, place: &Path) -> Result<(), String> {
    let body = fetch(url)?;
    std::fs::create_dir_all(place).map_err(|e| e.to_string())?;
    let archive = place.with_extension("tar.gz");
    std::fs::write(&archive, body).map_err(|e| e.to_string())?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(place)
        .status()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let _ = std::fs::remove_file(&archive);
    match status.success() {
        true => Ok(()),
        false => Err(format!("{url}: not a gzipped tar archive")),
    }
}

/// The one folder a tarball unpacked into (`dbt-utils-1.3.0/`), else `place` itself.
fn single_folder(place: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = std::fs::read_dir(place)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    match entries.as_slice() {
        [only] if only.is_dir() => only.clone(),
        _ => place.to_path_buf(),
    }
}

#[cfg(unix)]
fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(from, to)
}

#[cfg(not(unix))]
fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_dir(from, to)
}

/// Write `package-lock.yml` as dbt does: each package's spec, pinned.
fn write_lock(root: &Path, installed: &[Installed]) -> Result<(), DepsError> {
    let mut packages = Vec::new();
    for package in installed {
        let mut entry = serde_yaml::Mapping::new();
        let mut set = |key: &str, value: &str| {
            entry.insert(key.into(), value.into());
        };
        match &package.spec {
            PackageSpec::Local { path } => set("local", path),
            PackageSpec::Git {
                url, subdirectory, ..
            } => {
                set("git", url);
                set("revision", package.pinned.as_deref().unwrap_or_default());
                if let Some(subdirectory) = subdirectory {
                    set("subdirectory", subdirectory);
                }
            }
            PackageSpec::Hub { package: name, .. } => {
                set("package", name);
                set("version", package.pinned.as_deref().unwrap_or_default());
            }
        }
        set("name", &package.name);
        packages.push(serde_yaml::Value::Mapping(entry));
    }
    let mut lock = serde_yaml::Mapping::new();
    lock.insert("packages".into(), serde_yaml::Value::Sequence(packages));
    let text = serde_yaml::to_string(&lock).unwrap_or_default();
    let path = root.join(LOCK_FILE);
    std::fs::write(&path, text).map_err(|e| DepsError::Write {
        path,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_versions_resolve_to_the_highest_release_in_range() {
        let available: Vec<String> = ["0.9.6", "1.0.0", "1.1.1", "1.3.0", "2.0.0-b1", "2.0.0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let pick = |ranges: &[&str]| {
            pick_version(
                &available,
                &ranges.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(pick(&[">=1.0.0", "<2.0.0"]).as_deref(), Some("1.3.0"));
        assert_eq!(pick(&["1.1.1"]).as_deref(), Some("1.1.1"));
        assert_eq!(pick(&[">=0.9.0"]).as_deref(), Some("2.0.0"));
        assert_eq!(pick(&[">3.0.0"]), None);
    }
}
