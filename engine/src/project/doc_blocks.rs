//! `{% docs name %} ... {% enddocs %}` blocks in the Markdown files under `models/`, as in dbt:
//! text that descriptions pull in with `{{ doc('name') }}`; `__overview__` is the docs' front page.

use miette::SourceSpan;

use super::LoadError;
use crate::source::{SourceFile, span};

/// One docs block.
#[derive(Debug, Clone)]
pub struct DocBlock {
    pub name: String,
    /// The block's Markdown, trimmed.
    pub contents: String,
    pub file: SourceFile,
    /// The block's opening tag.
    pub at: SourceSpan,
}

/// The docs blocks of one Markdown file.
pub(super) fn parse(file: &SourceFile) -> Result<Vec<DocBlock>, LoadError> {
    let text = file.text();
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some((start, after_open, name)) = next_tag(text, from, "docs") {
        let at = span(start..after_open, text.len());
        let name = name.trim();
        let valid = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !valid {
            return Err(LoadError::DocBlock {
                message: format!("`{name}` is not a docs block name"),
                src: file.named(),
                at,
            });
        }
        let Some((end, after_close, _)) = next_tag(text, after_open, "enddocs") else {
            return Err(LoadError::DocBlock {
                message: format!("docs block `{name}` has no {{% enddocs %}}"),
                src: file.named(),
                at,
            });
        };
        blocks.push(DocBlock {
            name: name.to_string(),
            contents: text[after_open..end].trim().to_string(),
            file: file.clone(),
            at,
        });
        from = after_close;
    }
    Ok(blocks)
}

/// The next `{% keyword rest %}` tag at or after `from` (whitespace control dashes allowed):
/// where it starts, where it ends, and `rest`.
fn next_tag<'t>(text: &'t str, from: usize, keyword: &str) -> Option<(usize, usize, &'t str)> {
    let mut at = from;
    while let Some(found) = text[at..].find("{%") {
        let start = at + found;
        let inner_start = start + 2;
        let close = text[inner_start..].find("%}")? + inner_start;
        let inner = text[inner_start..close]
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        if let Some(rest) = inner.strip_prefix(keyword)
            && (rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return Some((start, close + 2, rest));
        }
        at = close + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_read_with_their_names_and_trimmed_text() {
        let file = SourceFile::new(
            "models/docs.md",
            "# notes\n{% docs __overview__ %}\n# Shop\nEvents.\n{% enddocs %}\n\
             {%- docs revenue -%} Order value {%- enddocs -%}",
        );
        let blocks = parse(&file).unwrap();
        let read: Vec<(&str, &str)> = blocks
            .iter()
            .map(|b| (b.name.as_str(), b.contents.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                ("__overview__", "# Shop\nEvents."),
                ("revenue", "Order value")
            ]
        );
    }

    #[test]
    fn an_unclosed_block_is_an_error_at_its_tag() {
        let file = SourceFile::new("models/docs.md", "text\n{% docs revenue %}\nno end");
        let error = parse(&file).unwrap_err();
        assert!(
            error.to_string().contains("has no {% enddocs %}"),
            "{error}"
        );
        let LoadError::DocBlock { at, .. } = error else {
            panic!("not a docs block error")
        };
        assert_eq!(at.offset(), 5);
    }
}
