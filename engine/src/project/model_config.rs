//! LOAD: one model's configuration, layered: defaults, then the folder tree of `models:` in
//! `dp_project.yml` (the deeper folder winning), then `config:` in the model's property YAML,
//! then `config()` in its SQL; the most specific layer wins, key by key (tags add up).
//! [`ModelConfigProperties`] is the one list of keys: the YAML loader, `config()` and the JSON
//! Schema all read it, so a new key is one field there and its use in [`ModelConfig`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

use super::yaml::ModelConfigProperties;

/// How a model is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialization {
    /// The whole table is replaced by each build, in one commit.
    Table,
    /// Only the partitions a build produced are replaced; the others stay as they are.
    Partitioned,
    /// Not stored: inlined into the SQL of every model that refers to it.
    Ephemeral,
}

impl Materialization {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "table" => Some(Self::Table),
            "partitioned" => Some(Self::Partitioned),
            "ephemeral" | "view" => Some(Self::Ephemeral),
            _ => None,
        }
    }
}

impl std::fmt::Display for Materialization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Table => "table",
            Self::Partitioned => "partitioned",
            Self::Ephemeral => "ephemeral",
        })
    }
}

/// A model's configuration, resolved from its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    pub materialized: Materialization,
    pub partition_by: Vec<String>,
    pub tags: BTreeSet<String>,
    /// The output must have exactly the declared columns and types.
    pub contract_enforced: bool,
}

impl ModelConfig {
    /// Whether the model has no table: it is inlined into its readers.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self.materialized, Materialization::Ephemeral)
    }
}

/// A configuration that cannot be: the message, and a hint.
#[derive(Debug)]
pub struct InvalidConfig {
    pub message: String,
    pub help: String,
}

impl ModelConfigProperties {
    /// These keys, each overridden by `specific`'s where it sets it; tags add up.
    pub fn overridden_by(self, specific: ModelConfigProperties) -> ModelConfigProperties {
        let tags: Vec<String> = self
            .tags
            .map(|t| t.into_vec())
            .into_iter()
            .chain(specific.tags.map(|t| t.into_vec()))
            .flatten()
            .collect();
        ModelConfigProperties {
            materialized: specific.materialized.or(self.materialized),
            partition_by: specific.partition_by.or(self.partition_by),
            tags: (!tags.is_empty()).then_some(super::OneOrMany::Many(tags)),
            contract: specific.contract.or(self.contract),
        }
    }

    /// The configuration these keys give, over the defaults.
    pub fn resolve(self) -> Result<ModelConfig, InvalidConfig> {
        let name = self.materialized.unwrap_or_else(|| "table".to_string());
        let materialized = Materialization::parse(&name).ok_or_else(|| InvalidConfig {
            message: format!("unknown materialization `{name}`"),
            help: "use one of: table, partitioned, ephemeral (or view)".into(),
        })?;
        let partition_by = self.partition_by.map(|p| p.into_vec()).unwrap_or_default();
        match (materialized, partition_by.is_empty()) {
            (Materialization::Partitioned, true) => {
                return Err(InvalidConfig {
                    message: "a partitioned model needs partition_by".into(),
                    help: "for example: config(materialized='partitioned', partition_by='date')"
                        .into(),
                });
            }
            (Materialization::Table | Materialization::Ephemeral, false) => {
                return Err(InvalidConfig {
                    message: format!(
                        "partition_by is only used by partitioned models, not by {materialized} models"
                    ),
                    help: "set materialized='partitioned', or remove partition_by".into(),
                });
            }
            _ => {}
        }
        Ok(ModelConfig {
            materialized,
            partition_by,
            tags: self
                .tags
                .map(|t| t.into_vec())
                .unwrap_or_default()
                .into_iter()
                .collect(),
            contract_enforced: self.contract.is_some_and(|c| c.enforced),
        })
    }
}

/// `models:` of `dp_project.yml`: the configuration of every model under a folder of `models/`.
/// A key is config when it starts with `+`, or names a config key (`materialized`, `tags`...)
/// and its value reads as that key's value; else it is a folder.
#[derive(Debug, Clone, Default)]
pub struct FolderConfig {
    config: ModelConfigProperties,
    folders: BTreeMap<String, FolderConfig>,
}

impl FolderConfig {
    /// The tree under `models:`; an error names the key that is wrong.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Value::Mapping(entries) = value else {
            return match value {
                Value::Null => Ok(Self::default()),
                _ => Err("`models:` is a mapping of folders and config keys".into()),
            };
        };
        let keys = config_keys();
        let mut config = serde_yaml::Mapping::new();
        let mut folders = BTreeMap::new();
        for (key, value) in entries {
            let key = key.as_str().ok_or("a key under `models:` is a string")?;
            let config_key = match key.strip_prefix('+') {
                Some(config_key) => Some(config_key),
                // A config key's name with a value that is no config of it: a folder so named.
                None if keys.contains(key) && (!value.is_mapping() || is_config(key, value)) => {
                    Some(key)
                }
                None => None,
            };
            match config_key {
                Some(config_key) => {
                    if config.insert(config_key.into(), value.clone()).is_some() {
                        return Err(format!(
                            "`{config_key}` is given twice (with and without +)"
                        ));
                    }
                }
                None => {
                    let folder = Self::parse(value).map_err(|e| format!("{key}: {e}"))?;
                    folders.insert(key.to_string(), folder);
                }
            }
        }
        let config = serde_yaml::from_value(Value::Mapping(config)).map_err(|e| {
            let message = e.to_string();
            message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string()
        })?;
        Ok(Self { config, folders })
    }

    /// The configuration the tree gives a model whose file is at `path` (`models/a/b/m.sql`):
    /// the root's, overridden by `a`'s, overridden by `a/b`'s.
    pub fn for_model(&self, path: &Path) -> ModelConfigProperties {
        let mut config = self.config.clone();
        let mut node = self;
        let folders = path.parent().into_iter().flat_map(|p| p.iter()).skip(1);
        for folder in folders {
            let Some(next) = node.folders.get(&*folder.to_string_lossy()) else {
                break;
            };
            config = config.overridden_by(next.config.clone());
            node = next;
        }
        config
    }
}

/// Whether `key: value` reads as configuration.
fn is_config(key: &str, value: &Value) -> bool {
    let mut one = serde_yaml::Mapping::new();
    one.insert(key.into(), value.clone());
    serde_yaml::from_value::<ModelConfigProperties>(Value::Mapping(one)).is_ok()
}

/// The names of the config keys: those of [`ModelConfigProperties`], from its JSON Schema.
fn config_keys() -> BTreeSet<String> {
    let schema = schemars::schema_for!(ModelConfigProperties);
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> ModelConfigProperties {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn the_most_specific_layer_wins_key_by_key_and_tags_add_up() {
        let properties = yaml("{materialized: partitioned, partition_by: date, tags: [a]}");
        let sql = yaml("{partition_by: [day], tags: b}");
        let config = properties.overridden_by(sql).resolve().unwrap();
        assert_eq!(config.materialized, Materialization::Partitioned);
        assert_eq!(config.partition_by, ["day"]);
        assert_eq!(config.tags, BTreeSet::from(["a".into(), "b".into()]));
        assert!(!config.contract_enforced);
    }

    #[test]
    fn the_folder_tree_configures_the_models_under_each_folder_the_deepest_winning() {
        let tree: Value = serde_yaml::from_str(
            "+tags: [all]\nmaterialized: table\nmarts:\n  +materialized: partitioned\n  partition_by: date\n  finance:\n    materialized: ephemeral\n    partition_by: []\n  tags:\n    +tags: [a_folder_named_tags]\n",
        )
        .unwrap();
        let tree = FolderConfig::parse(&tree).unwrap();
        let resolved = |path: &str| tree.for_model(Path::new(path)).resolve().unwrap();
        let staging = resolved("models/staging/stg.sql");
        assert_eq!(staging.materialized, Materialization::Table);
        assert_eq!(staging.tags, BTreeSet::from(["all".into()]));
        let marts = resolved("models/marts/daily.sql");
        assert_eq!(marts.materialized, Materialization::Partitioned);
        assert_eq!(marts.partition_by, ["date"]);
        assert!(resolved("models/marts/finance/eph.sql").is_ephemeral());
        assert_eq!(
            resolved("models/marts/tags/t.sql").tags,
            BTreeSet::from(["all".into(), "a_folder_named_tags".into()])
        );
        let wrong: Value = serde_yaml::from_str("marts:\n  +materialised: table\n").unwrap();
        let error = FolderConfig::parse(&wrong).unwrap_err();
        assert!(
            error.contains("marts: unknown field `materialised`"),
            "{error}"
        );
    }

    #[test]
    fn one_list_of_keys_for_yaml_and_config_calls() {
        let unknown = serde_yaml::from_str::<ModelConfigProperties>("{materialised: table}");
        assert!(unknown.unwrap_err().to_string().contains("expected one of"));
    }
}
