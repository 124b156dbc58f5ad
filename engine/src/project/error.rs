//! LOAD: what can stop a project from loading, and what loads with a warning.

use std::path::PathBuf;

use miette::SourceSpan;

use super::config::{DBT_PROJECT_FILE, PROJECT_FILE};

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

    #[error("properties given for `{name}`, which is no model: they and their tests are ignored")]
    #[diagnostic(
        code(dp::unmatched_properties),
        severity(Warning),
        help("dbt ignores them too; remove the entry, or add the model")
    )]
    UnmatchedProperties {
        name: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("no such model")]
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

    #[error("invalid packages file: {message}")]
    #[diagnostic(
        code(dp::invalid_packages),
        help(
            "each entry of `packages:` is `- local: ../folder`, `- git: <url>` (with `revision:` and `subdirectory:`) or `- package: dbt-labs/dbt_utils` with `version:`"
        )
    )]
    InvalidPackages {
        message: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("package `{package}` is declared but not installed under {folder}/")]
    #[diagnostic(code(dp::packages_missing), help("run `dp deps` to install it"))]
    PackagesMissing {
        package: String,
        folder: String,
        #[source_code]
        src: miette::NamedSource<std::sync::Arc<str>>,
        #[label("not installed")]
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
