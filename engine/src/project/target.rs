//! LOAD: a target of `dp_project.yml`, resolved: where its tables live and how its runs go. A
//! warehouse must not lie inside a source or inside another target's warehouse (nor hold one),
//! and no source may lie inside one of its model tables: cleanup could reach another's files.

use std::time::Duration;

use url::Url;

use super::environment;
use super::storage_options::{self, RefusedOption, StorageOptions};
use super::{
    DEFAULT_RETRIES, DEFAULT_VACUUM_RETENTION, DEFAULT_WAREHOUSE, EngineKind, LoadError, Project,
    TargetConfig, parse_byte_size, parse_duration, resolve_location,
};

/// The settings a run uses: one of the project's targets, resolved.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// Folder URL holding one Delta table per model.
    pub warehouse: Url,
    /// Models built at once, when the target sets it.
    pub threads: Option<usize>,
    /// The most memory a build's queries may hold, in bytes, when the target sets it.
    pub memory_limit: Option<usize>,
    /// How old an unneeded file must be before `dp vacuum` deletes it.
    pub vacuum_retention: Duration,
    /// How many times a model that failed transiently (the store timed out or failed) is run
    /// again, and the wait before the first retry (doubled at each).
    pub retries: u32,
    pub retry_backoff: Duration,
    /// A model that does not render or plan stops the whole run.
    pub fail_fast: bool,
    /// How the target's object stores are reached (values are secrets).
    pub storage_options: StorageOptions,
    /// Where its queries run.
    pub engine: Engine,
}

/// Where a target's queries run, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in the dp process.
    Embedded,
    /// A Ballista cluster whose scheduler listens at `host:port`.
    Ballista { host: String, port: u16 },
}

/// The port a Ballista scheduler listens on when `scheduler:` names none.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

impl Project {
    /// The target called `name`, or the project's default target (`target:`), or built-in
    /// defaults when the project declares no targets.
    pub fn target(&self, name: Option<&str>) -> Result<Target, LoadError> {
        let env = environment::env(&self.dotenv);
        let from_env = env("DP_TARGET");
        let name = name
            .or(from_env.as_deref())
            .or(self.config.target.as_deref());
        let (name, mut config) = match name {
            Some(name) => match self.config.targets.get(name) {
                Some(config) => (name.to_string(), config.clone()),
                None => {
                    return Err(LoadError::UnknownTarget {
                        name: name.to_string(),
                        available: if self.config.targets.is_empty() {
                            "none declared".into()
                        } else {
                            self.config
                                .targets
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        },
                        at: self.config_file.find("targets:", 0),
                        src: self.config_file.named(),
                    });
                }
            },
            None => match self.config.targets.first_key_value() {
                Some((name, config)) => (name.clone(), config.clone()),
                None => ("default".to_string(), TargetConfig::default()),
            },
        };
        self.apply_environment(&name, &mut config, &env)?;
        let warehouse = self.warehouse_of(&name, &config)?;
        self.check_nesting(&name, &config, &warehouse)?;
        let memory_limit = match &config.memory_limit {
            None => None,
            Some(text) => Some(
                parse_byte_size(text).ok_or_else(|| LoadError::BadMemoryLimit {
                    value: text.clone(),
                    at: self.target_value_span(&name, "memory_limit", text),
                    src: self.config_file.named(),
                })?,
            ),
        };
        let vacuum_retention = match &config.vacuum_retention {
            None => DEFAULT_VACUUM_RETENTION,
            Some(text) => parse_duration(text).ok_or_else(|| LoadError::BadDuration {
                value: text.clone(),
                at: self.target_value_span(&name, "vacuum_retention", text),
                src: self.config_file.named(),
            })?,
        };
        let storage_options =
            storage_options::resolve(&config.storage_options, &env).map_err(|refused| {
                // A secret written in the file is named without a snippet of the file, which
                // would show it.
                let literal: Vec<LoadError> = refused
                    .iter()
                    .filter(|(_, why)| *why == RefusedOption::LiteralSecret)
                    .map(|(key, _)| LoadError::LiteralSecret {
                        key: key.clone(),
                        target: name.clone(),
                    })
                    .collect();
                if !literal.is_empty() {
                    return LoadError::Many { problems: literal };
                }
                let problems = refused
                    .into_iter()
                    .map(|(key, why)| LoadError::StorageOption {
                        at: self.target_value_span(&name, "storage_options", &key),
                        message: match why {
                            RefusedOption::Unknown { did_you_mean } => format!(
                                "`{key}` is not an S3 storage setting{}",
                                did_you_mean.map(|d| format!(" ({d})")).unwrap_or_default()
                            ),
                            RefusedOption::Unsafe { why } => format!("`{key}` is refused: {why}"),
                            RefusedOption::Unset { variable } => format!(
                                "`{key}` reads environment variable `{variable}`, which is not set"
                            ),
                            RefusedOption::Template { message } => {
                                format!("`{key}`: {message}")
                            }
                            RefusedOption::LiteralSecret => unreachable!("reported apart"),
                        },
                        src: self.config_file.named(),
                    })
                    .collect();
                LoadError::Many { problems }
            })?;
        for secret in storage_options.secrets() {
            crate::report::register_secret(secret);
        }
        // The environment can turn conditional writes off behind the YAML's back.
        let on_s3 = std::iter::once(&warehouse)
            .chain(self.sources.values().map(|source| &source.location))
            .any(|url| matches!(url.scheme(), "s3" | "s3a"));
        if on_s3 {
            for variable in ["AWS_CONDITIONAL_PUT", "AWS_S3_ALLOW_UNSAFE_RENAME"] {
                if let Ok(value) = std::env::var(variable)
                    && let Some(why) = storage_options::unsafe_setting(variable, &value)
                {
                    return Err(LoadError::UnsafeEnvironment {
                        variable: variable.to_string(),
                        why: why.to_string(),
                    });
                }
            }
        }
        let engine = self.engine_of(&name, &config)?;
        Ok(Target {
            engine,
            name,
            warehouse,
            threads: config.threads,
            memory_limit,
            vacuum_retention,
            retries: config.retries.unwrap_or(DEFAULT_RETRIES),
            fail_fast: config.fail_fast.unwrap_or(false),
            retry_backoff: Duration::from_millis(config.retry_backoff_ms.unwrap_or(1000)),
            storage_options,
        })
    }

    /// The target's settings from the environment: `{{ env_var('NAME', 'default') }}` in its
    /// text values rendered, then the `DP_` variables over them (`DP_WAREHOUSE`, `DP_THREADS`,
    /// `DP_MEMORY_LIMIT`, `DP_VACUUM_RETENTION`, `DP_RETRIES`).
    fn apply_environment(
        &self,
        name: &str,
        config: &mut TargetConfig,
        env: &storage_options::Env,
    ) -> Result<(), LoadError> {
        let texts = [
            ("warehouse", "DP_WAREHOUSE", &mut config.warehouse),
            ("memory_limit", "DP_MEMORY_LIMIT", &mut config.memory_limit),
            (
                "vacuum_retention",
                "DP_VACUUM_RETENTION",
                &mut config.vacuum_retention,
            ),
        ];
        for (key, variable, value) in texts {
            if let Some(text) = value.as_mut()
                && text.contains("{{")
            {
                *text = storage_options::render_env_vars(text, env).map_err(|message| {
                    LoadError::InvalidConfig {
                        message: format!("target `{name}`, {key}: {message}"),
                        at: self.target_value_span(name, key, text),
                        src: self.config_file.named(),
                    }
                })?;
            }
            if let Some(text) = env(variable) {
                *value = Some(text);
            }
        }
        let number = |variable: &str| -> Result<Option<u64>, LoadError> {
            env(variable)
                .map(|text| {
                    text.trim()
                        .parse()
                        .ok()
                        .filter(|n| *n > 0 || variable == "DP_RETRIES")
                        .ok_or_else(|| LoadError::BadEnvironment {
                            variable: variable.to_string(),
                            value: text.clone(),
                            expected: "a whole number (above 0 for threads)",
                        })
                })
                .transpose()
        };
        if let Some(threads) = number("DP_THREADS")? {
            config.threads = Some(threads as usize);
        }
        if let Some(retries) = number("DP_RETRIES")? {
            config.retries = Some(retries as u32);
        }
        Ok(())
    }

    /// The target's engine; a cluster's scheduler must be a `df://host:port` address.
    fn engine_of(&self, name: &str, config: &TargetConfig) -> Result<Engine, LoadError> {
        let scheduler = config.scheduler.as_deref();
        let bad = |message: String, value: &str, key: &str| LoadError::BadScheduler {
            target: name.to_string(),
            message,
            at: self.target_value_span(name, key, value),
            src: self.config_file.named(),
        };
        match (config.engine, scheduler) {
            (EngineKind::Embedded, None) => Ok(Engine::Embedded),
            (EngineKind::Embedded, Some(text)) => Err(bad(
                "`scheduler` is set, but the engine is the embedded one".into(),
                text,
                "scheduler",
            )),
            (EngineKind::Ballista, None) => Err(bad(
                "`engine: ballista` needs a `scheduler`".into(),
                "ballista",
                "engine",
            )),
            (EngineKind::Ballista, Some(text)) => {
                let parsed = Url::parse(text)
                    .ok()
                    .filter(|url| url.scheme() == "df" && matches!(url.path(), "" | "/"))
                    .and_then(|url| {
                        // An IPv6 address without its brackets, as a socket address takes it.
                        let host = match url.host()? {
                            url::Host::Domain(name) => name.to_string(),
                            url::Host::Ipv4(address) => address.to_string(),
                            url::Host::Ipv6(address) => address.to_string(),
                        };
                        Some((host, url.port()))
                    });
                match parsed {
                    Some((host, port)) if !host.is_empty() => Ok(Engine::Ballista {
                        host,
                        port: port.unwrap_or(DEFAULT_SCHEDULER_PORT),
                    }),
                    _ => Err(bad(
                        format!("`{text}` is not a scheduler address"),
                        text,
                        "scheduler",
                    )),
                }
            }
        }
    }

    fn warehouse_of(&self, name: &str, config: &TargetConfig) -> Result<Url, LoadError> {
        let text = config.warehouse.as_deref().unwrap_or(DEFAULT_WAREHOUSE);
        resolve_location(&self.root, text).ok_or_else(|| LoadError::BadLocation {
            location: text.to_string(),
            at: self.target_value_span(name, "warehouse", text),
            src: self.config_file.named(),
        })
    }

    /// Refuse a warehouse whose tables could share files with a source or another target's
    /// warehouse.
    fn check_nesting(
        &self,
        name: &str,
        config: &TargetConfig,
        warehouse: &Url,
    ) -> Result<(), LoadError> {
        let tables = |warehouse: &Url| -> Vec<Url> {
            self.models
                .keys()
                .filter_map(|model| warehouse.join(&format!("{model}/")).ok())
                .collect()
        };
        let inside = |inner: &Url, outer: &Url| inner.as_str().starts_with(outer.as_str());
        let nested = |what: String, other: String| LoadError::NestedLocation {
            what,
            other,
            at: self.target_value_span(
                name,
                "warehouse",
                config.warehouse.as_deref().unwrap_or(DEFAULT_WAREHOUSE),
            ),
            src: self.config_file.named(),
        };
        let own_tables = tables(warehouse);
        for source in self.sources.values() {
            if inside(warehouse, &source.location) {
                return Err(nested(
                    format!("the warehouse {warehouse}"),
                    format!("source `{}` at {}", source.id(), source.location),
                ));
            }
            if let Some(table) = own_tables.iter().find(|t| inside(&source.location, t)) {
                return Err(nested(
                    format!("source `{}` at {}", source.id(), source.location),
                    format!("the model table {table}"),
                ));
            }
        }
        for (other, other_config) in &self.config.targets {
            let Ok(other_warehouse) = self.warehouse_of(other, other_config) else {
                continue;
            };
            if other_warehouse == *warehouse {
                continue;
            }
            if inside(warehouse, &other_warehouse) || inside(&other_warehouse, warehouse) {
                return Err(nested(
                    format!("the warehouse {warehouse}"),
                    format!("the warehouse {other_warehouse} of target `{other}` (or holds it)"),
                ));
            }
        }
        Ok(())
    }

    /// The span of `value` after `key:` in the target `name`'s block of `dp_project.yml`.
    fn target_value_span(&self, name: &str, key: &str, value: &str) -> miette::SourceSpan {
        let file = &self.config_file;
        let target = file.find(&format!("{name}:"), 0);
        let key = file.find(&format!("{key}:"), target.offset());
        file.find(value, key.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(config: &str) -> (tempfile::TempDir, Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dp_project.yml"), config).unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        std::fs::write(dir.path().join("models/m.sql"), "select 1 as x").unwrap();
        std::fs::write(
            dir.path().join("models/sources.yml"),
            "sources:\n  - name: raw\n    location: data/raw\n    tables: [{name: events}]\n",
        )
        .unwrap();
        let project = crate::project::load(dir.path()).unwrap();
        (dir, project)
    }

    fn nested(config: &str, target: &str) -> bool {
        let (_dir, project) = project(config);
        matches!(
            project.target(Some(target)),
            Err(LoadError::NestedLocation { .. })
        )
    }

    #[test]
    fn warehouses_that_could_reach_another_tables_files_are_refused() {
        let targets = "name: t\ntargets:\n  dev: {warehouse: wh}\n  prod: {warehouse: wh/prod}\n  side: {warehouse: other}\n";
        assert!(nested(targets, "dev"), "a warehouse around another");
        assert!(nested(targets, "prod"), "a warehouse inside another");
        assert!(!nested(targets, "side"));
        // Spelled with `..`, the same folder as `wh`: the same warehouse, not a nested one.
        let same = "name: t\ntargets:\n  a: {warehouse: wh}\n  b: {warehouse: x/../wh}\n";
        assert!(!nested(same, "a"));
        let (_dir, project) = project(same);
        assert_eq!(
            project.target(Some("a")).unwrap().warehouse,
            project.target(Some("b")).unwrap().warehouse
        );
        // Inside a source; around one is fine while no model's table holds it (tests/e2e has
        // the model whose table would).
        assert!(nested(
            "name: t\ntargets:\n  dev: {warehouse: data/raw/events/wh}\n",
            "dev"
        ));
        assert!(!nested(
            "name: t\ntargets:\n  dev: {warehouse: data/raw/events/../..}\n",
            "dev"
        ));
    }
}
