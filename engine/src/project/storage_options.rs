//! LOAD: a target's `storage_options:`, how dp reaches an S3-compatible object store: each key
//! one of object_store's S3 settings, each value text or `{{ env_var('NAME') }}`, resolved at
//! load. Settings that would make Delta commits unsafe are refused. Values are secrets: they are
//! never shown (`Debug` prints the keys only), and an error names the key, not the value.

use std::collections::BTreeMap;
use std::str::FromStr;

use object_store::aws::AmazonS3ConfigKey;

/// A target's resolved storage settings, by object_store's canonical key name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageOptions(BTreeMap<String, String>);

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl StorageOptions {
    /// The values of the secret credentials among the settings.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(key, _)| is_secret(&key.to_lowercase()))
            .map(|(_, value)| value.as_str())
    }

    /// Each setting as object_store's S3 builder takes it.
    pub fn s3_settings(&self) -> impl Iterator<Item = (AmazonS3ConfigKey, &str)> {
        self.0.iter().filter_map(|(key, value)| {
            AmazonS3ConfigKey::from_str(key)
                .ok()
                .map(|key| (key, value.as_str()))
        })
    }
}

/// Why a storage setting is refused, said without its value.
#[derive(Debug, PartialEq, Eq)]
pub enum RefusedOption {
    /// Not one of object_store's S3 settings.
    Unknown { did_you_mean: Option<String> },
    /// It would make commits unsafe.
    Unsafe { why: &'static str },
    /// Its `env_var()` names a variable that is not set.
    Unset { variable: String },
    /// A credential written in the file instead of read with `env_var()`.
    LiteralSecret,
    /// Not a value, or a template that does not render.
    Template { message: String },
}

/// Whether `key` (lower case) names a secret credential, which only `env_var()` may give.
fn is_secret(key: &str) -> bool {
    matches!(
        key.trim_start_matches("aws_"),
        "secret_access_key" | "session_token" | "token" | "sse_customer_key_base64"
    )
}

/// Reads an environment variable.
pub type Env = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The settings of `raw` (key → text), resolved: env_var() rendered, keys checked.
pub fn resolve(
    raw: &BTreeMap<String, serde_yaml::Value>,
    env: &Env,
) -> Result<StorageOptions, Vec<(String, RefusedOption)>> {
    let mut resolved = BTreeMap::new();
    let mut refused = Vec::new();
    for (key, value) in raw {
        let text = match value {
            serde_yaml::Value::String(text) => text.clone(),
            serde_yaml::Value::Bool(flag) => flag.to_string(),
            serde_yaml::Value::Number(number) => number.to_string(),
            _ => {
                let message = "a setting is text, a number or true/false".to_string();
                refused.push((key.clone(), RefusedOption::Template { message }));
                continue;
            }
        };
        let lower = key.to_ascii_lowercase();
        let templated = text.contains("{{");
        if is_secret(&lower) && !templated {
            refused.push((key.clone(), RefusedOption::LiteralSecret));
            continue;
        }
        let value = match render(&text, env) {
            Ok(value) => value,
            Err(problem) => {
                refused.push((key.clone(), problem));
                continue;
            }
        };
        // Keys dp refuses whatever object_store makes of them (delta-rs' own settings).
        if let Some(why) = unsafe_setting(&lower, &value) {
            refused.push((key.clone(), RefusedOption::Unsafe { why }));
            continue;
        }
        let Ok(parsed) = AmazonS3ConfigKey::from_str(&lower) else {
            let known = KNOWN.iter().copied();
            let did_you_mean = crate::source::did_you_mean(&lower, known);
            refused.push((key.clone(), RefusedOption::Unknown { did_you_mean }));
            continue;
        };
        if let Some(why) = unsafe_setting(parsed.as_ref(), &value) {
            refused.push((key.clone(), RefusedOption::Unsafe { why }));
        } else {
            resolved.insert(parsed.as_ref().to_string(), value);
        }
    }
    if refused.is_empty() {
        Ok(StorageOptions(resolved))
    } else {
        Err(refused)
    }
}

/// The short names of the settings a target most often needs, for "did you mean".
const KNOWN: &[&str] = &[
    "endpoint",
    "region",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "allow_http",
    "virtual_hosted_style_request",
    "skip_signature",
    "bucket",
];

/// Why a setting makes Delta commits unsafe, if it does.
pub fn unsafe_setting(key: &str, value: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    let key = key.trim_start_matches("aws_");
    match key {
        "s3_allow_unsafe_rename" | "allow_unsafe_rename"
            if !matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | ""
            ) =>
        {
            Some(
                "an unsafe rename lets two concurrent commits both write one table version: one is lost",
            )
        }
        "s3_locking_provider" | "locking_provider" => Some(
            "dp commits with conditional writes (If-None-Match); an external lock is not supported",
        ),
        "conditional_put" if value.trim() != "etag" => Some(
            "without conditional writes (conditional_put: etag, the default) two concurrent commits can both write one table version",
        ),
        "copy_if_not_exists" => Some("dp commits with conditional puts, not copies"),
        _ => None,
    }
}

/// `text` with `{{ env_var('NAME') }}` (and `{{ env_var('NAME', 'default') }}`) read from the
/// process environment; why not, said without the text.
pub fn render_env_vars(text: &str, env: &Env) -> Result<String, String> {
    render(text, env).map_err(|problem| match problem {
        RefusedOption::Unset { variable } => {
            format!("environment variable `{variable}` is not set")
        }
        RefusedOption::Template { message } => message,
        RefusedOption::Unknown { .. }
        | RefusedOption::Unsafe { .. }
        | RefusedOption::LiteralSecret => "invalid".into(),
    })
}

/// `text` with `{{ env_var('NAME') }}` (and `{{ env_var('NAME', 'default') }}`) replaced.
fn render(text: &str, env: &Env) -> Result<String, RefusedOption> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    let unset = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let mut jinja = minijinja::Environment::new();
    jinja.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let (env, noted) = (env.clone(), unset.clone());
    jinja.add_function(
        "env_var",
        move |name: String, default: Option<String>| -> Result<String, minijinja::Error> {
            env(&name).or(default).ok_or_else(|| {
                *noted.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.clone());
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("environment variable `{name}` is not set"),
                )
            })
        },
    );
    jinja.render_str(text, ()).map_err(|error| {
        match unset.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(variable) => RefusedOption::Unset { variable },
            None => RefusedOption::Template {
                message: error.detail().unwrap_or("invalid template").to_string(),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, serde_yaml::Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_yaml::Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn values_come_from_the_environment_and_never_show() {
        let env: Env =
            std::sync::Arc::new(|name: &str| (name == "S3_SECRET").then(|| "hunter2".to_string()));
        let options = resolve(
            &raw(&[
                ("endpoint", "http://127.0.0.1:9000"),
                ("secret_access_key", "{{ env_var('S3_SECRET') }}"),
                ("region", "{{ env_var('NO_SUCH', 'us-east-1') }}"),
            ]),
            &env,
        )
        .unwrap();
        let values: Vec<&str> = options.s3_settings().map(|(_, value)| value).collect();
        assert!(values.contains(&"hunter2") && values.contains(&"us-east-1"));
        assert!(!format!("{options:?}").contains("hunter2"), "{options:?}");
        assert_eq!(options.s3_settings().count(), 3);
    }

    #[test]
    fn unsafe_unknown_and_unset_settings_are_refused_by_key() {
        let env: Env = std::sync::Arc::new(|_: &str| None);
        let refused = resolve(
            &raw(&[
                ("AWS_S3_ALLOW_UNSAFE_RENAME", "true"),
                ("conditional_put", "disabled"),
                ("endpiont", "x"),
                ("access_key_id", "{{ env_var('MISSING') }}"),
            ]),
            &env,
        )
        .unwrap_err();
        let by_key: BTreeMap<&str, &RefusedOption> =
            refused.iter().map(|(k, why)| (k.as_str(), why)).collect();
        assert!(matches!(
            by_key["AWS_S3_ALLOW_UNSAFE_RENAME"],
            RefusedOption::Unsafe { .. }
        ));
        assert!(matches!(
            by_key["conditional_put"],
            RefusedOption::Unsafe { .. }
        ));
        assert_eq!(
            by_key["endpiont"],
            &RefusedOption::Unknown {
                did_you_mean: Some("did you mean `endpoint`?".into())
            }
        );
        assert_eq!(
            by_key["access_key_id"],
            &RefusedOption::Unset {
                variable: "MISSING".into()
            }
        );
        assert!(resolve(&raw(&[("conditional_put", "etag")]), &env).is_ok());
        // Judged by the value the template gives, not by its text.
        let defaulted = raw(&[("conditional_put", "{{ env_var('NO_SUCH', 'etag') }}")]);
        assert!(resolve(&defaulted, &env).is_ok());
        let literal = raw(&[("secret_access_key", "hunter2")]);
        assert_eq!(
            resolve(&literal, &env).unwrap_err(),
            [(
                "secret_access_key".to_string(),
                RefusedOption::LiteralSecret
            )]
        );
    }
}
