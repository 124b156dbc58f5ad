//! LOAD: snapshots, as dbt defines them: `{% snapshot name %} ... {% endsnapshot %}` blocks in
//! the `.sql` files of the snapshot folders, and (dbt 1.9) `snapshots:` entries of a YAML file
//! that name a `relation:`. Each is a node of the project, rendered from a template that keeps
//! its file's positions.

use std::ops::Range;
use std::sync::Arc;

use super::LoadError;
use super::yaml::ModelProperties;
use crate::source::{SourceFile, span};

/// The template a snapshot renders instead of its file's text.
#[derive(Debug, Clone)]
pub struct SnapshotTemplate {
    /// The file's text with everything but the snapshot's own query blanked out (the same
    /// length, newlines kept, so that every position still points into the file).
    pub text: Arc<str>,
}

/// The snapshots of the `{% snapshot %}` blocks of `file`, by name.
pub(super) fn from_blocks(file: &SourceFile) -> Result<Vec<(String, SnapshotTemplate)>, LoadError> {
    let text = file.text();
    let blocks = super::blocks::named_blocks(text, "snapshot", "snapshot").map_err(|problem| {
        LoadError::SnapshotBlock {
            message: problem.message,
            src: file.named(),
            at: span(problem.at, text.len()),
        }
    })?;
    Ok(blocks
        .into_iter()
        .map(|block| {
            let template = SnapshotTemplate {
                text: blank_but(text, block.body).into(),
            };
            (block.name.to_string(), template)
        })
        .collect())
}

/// The template of a YAML snapshot whose entry starts at byte `entry` of `file`: a query of
/// its `relation:` (`ref('x')` or `source('s', 't')`), `select * from {{ ref('x') }}`, with the
/// call where it is written. `None` when the entry has no relation.
pub(super) fn from_yaml(
    file: &SourceFile,
    properties: &ModelProperties,
    entry: usize,
) -> Option<SnapshotTemplate> {
    const OPEN: &str = "select * from {{ ";
    let relation = properties.relation.as_deref()?.trim();
    let key = super::ignored::yaml_key(file, "relation", entry);
    // `snapshots:` and `relation:` are before it: room for the query's start.
    let start = file.find(relation, key.offset()).offset().max(OPEN.len());
    let mut text = blank_but(file.text(), start..start + relation.len());
    text.replace_range(start - OPEN.len()..start, OPEN);
    text.insert_str((start + relation.len()).min(text.len()), " }}");
    Some(SnapshotTemplate { text: text.into() })
}

/// `text` with every character outside `keep` but newlines made spaces (as many as its bytes).
fn blank_but(text: &str, keep: Range<usize>) -> String {
    let mut blanked = String::with_capacity(text.len());
    for (at, c) in text.char_indices() {
        if keep.contains(&at) || c == '\n' {
            blanked.push(c);
        } else {
            blanked.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    blanked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_renders_its_body_at_its_place_in_the_file() {
        let text = "{% snapshot orders_snapshot %}\n{{ config(strategy='check') }}\nselect * from {{ ref('orders') }}\n{% endsnapshot %}\n-- é\n";
        let file = SourceFile::new("snapshots/orders.sql", text);
        let found = from_blocks(&file).unwrap();
        assert_eq!(found.len(), 1);
        let (name, template) = &found[0];
        assert_eq!(name, "orders_snapshot");
        assert_eq!(template.text.len(), text.len());
        let at = text.find("select").unwrap();
        assert_eq!(&template.text[at..at + 6], "select");
        assert!(template.text.trim_start().starts_with("{{ config"));
        assert!(!template.text.contains("snapshot %}"));
        assert_eq!(template.text.lines().count(), text.lines().count());
    }

    #[test]
    fn a_yaml_relation_is_rendered_where_it_is_written() {
        let text = "snapshots:\n  - name: orders_snapshot\n    relation: ref('orders')\n    config: {unique_key: id}\n";
        let file = SourceFile::new("snapshots/orders.yml", text);
        let properties: ModelProperties = serde_yaml::from_str(
            "{name: orders_snapshot, relation: \"ref('orders')\", config: {unique_key: id}}",
        )
        .unwrap();
        let template = from_yaml(&file, &properties, 0).unwrap();
        let at = text.find("ref(").unwrap();
        assert_eq!(&template.text[at..at + 16], "ref('orders') }}");
        assert_eq!(template.text.trim(), "select * from {{ ref('orders') }}");
    }
}
