//! LOAD: one model's configuration, layered: defaults, then `config:` in the model's property
//! YAML, then `config()` in its SQL; the most specific layer wins, key by key (tags add up).
//! [`ModelConfigProperties`] is the one list of keys: the YAML loader, `config()` and the JSON
//! Schema all read it, so a new key is one field there and its use in [`ModelConfig`].

use std::collections::BTreeSet;

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
    fn one_list_of_keys_for_yaml_and_config_calls() {
        let unknown = serde_yaml::from_str::<ModelConfigProperties>("{materialised: table}");
        assert!(unknown.unwrap_err().to_string().contains("expected one of"));
    }
}
