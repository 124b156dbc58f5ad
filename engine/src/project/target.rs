//! LOAD: a target of `dp_project.yml`, resolved: where its tables live and how its runs go. A
//! warehouse must not lie inside a source, a model table of another target, or hold a source
//! inside one of its own model tables: cleanup could then reach another table's files.

use std::time::Duration;

use url::Url;

use super::{
    DEFAULT_VACUUM_RETENTION, DEFAULT_WAREHOUSE, LoadError, Project, TargetConfig, parse_byte_size,
    parse_duration, resolve_location,
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
}

impl Project {
    /// The target called `name`, or the project's default target (`target:`), or built-in
    /// defaults when the project declares no targets.
    pub fn target(&self, name: Option<&str>) -> Result<Target, LoadError> {
        let name = name.or(self.config.target.as_deref());
        let (name, config) = match name {
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
        Ok(Target {
            name,
            warehouse,
            threads: config.threads,
            memory_limit,
            vacuum_retention,
        })
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
    /// tables.
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
            let into_other = tables(&other_warehouse)
                .into_iter()
                .find(|t| inside(warehouse, t));
            let from_other = own_tables.iter().find(|t| inside(&other_warehouse, t));
            if let Some(table) = into_other {
                return Err(nested(
                    format!("the warehouse {warehouse}"),
                    format!("the model table {table} of target `{other}`"),
                ));
            }
            if let Some(table) = from_other {
                return Err(nested(
                    format!("the warehouse {other_warehouse} of target `{other}`"),
                    format!("the model table {table}"),
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
