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
    let blocks = super::blocks::named_blocks(text, "docs", "docs block").map_err(|problem| {
        LoadError::DocBlock {
            message: problem.message,
            src: file.named(),
            at: span(problem.at, text.len()),
        }
    })?;
    Ok(blocks
        .into_iter()
        .map(|block| DocBlock {
            name: block.name.to_string(),
            contents: text[block.body].trim().to_string(),
            file: file.clone(),
            at: span(block.open, text.len()),
        })
        .collect())
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
