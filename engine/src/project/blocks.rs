//! LOAD: the named Jinja blocks dbt reads out of a file before it renders anything:
//! `{% docs name %} ... {% enddocs %}` in Markdown, `{% snapshot name %} ... {% endsnapshot %}`
//! in a snapshot's SQL file.

use std::ops::Range;

/// One `{% keyword name %} ... {% endkeyword %}` block, by byte ranges of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block<'t> {
    pub name: &'t str,
    /// The opening tag.
    pub open: Range<usize>,
    /// Between the tags.
    pub body: Range<usize>,
    /// The closing tag.
    pub close: Range<usize>,
}

/// Why a file's blocks cannot be read: the message, and the opening tag it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BlockProblem {
    pub message: String,
    pub at: Range<usize>,
}

/// The `{% keyword name %}` blocks of `text`, in order; what is `kind` in a message.
pub(super) fn named_blocks<'t>(
    text: &'t str,
    keyword: &str,
    kind: &str,
) -> Result<Vec<Block<'t>>, BlockProblem> {
    let end_keyword = format!("end{keyword}");
    let mut blocks = Vec::new();
    let mut from = 0;
    while let Some((start, after_open, name)) = next_tag(text, from, keyword) {
        let open = start..after_open;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(BlockProblem {
                message: format!("`{name}` is not a {kind} name"),
                at: open,
            });
        }
        let Some((end, after_close, _)) = next_tag(text, after_open, &end_keyword) else {
            return Err(BlockProblem {
                message: format!("{kind} `{name}` has no {{% {end_keyword} %}}"),
                at: open,
            });
        };
        blocks.push(Block {
            name,
            open,
            body: after_open..end,
            close: end..after_close,
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

/// The names of the macros a template declares (`{% macro name(...) %}`, and a generic test
/// `{% test name(...) %}` as `test_name`), read from its text.
pub fn declared_macros(text: &str) -> Vec<String> {
    text.match_indices("{%")
        .filter_map(|(at, _)| {
            let rest = text[at + 2..].trim_start_matches('-').trim_start();
            let (rest, prefix) = match rest.strip_prefix("macro") {
                Some(rest) => (rest, ""),
                None => (rest.strip_prefix("test")?, "test_"),
            };
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && rest.starts_with(char::is_whitespace))
                .then(|| format!("{prefix}{name}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_found_with_their_tags_and_bodies() {
        let text = "-- head\n{% snapshot a %}select 1{% endsnapshot %}\n{%- snapshot b -%} x {%- endsnapshot -%}";
        let blocks = named_blocks(text, "snapshot", "snapshot").unwrap();
        let read: Vec<(&str, &str, &str)> = blocks
            .iter()
            .map(|b| (b.name, &text[b.open.clone()], &text[b.body.clone()]))
            .collect();
        assert_eq!(
            read,
            [
                ("a", "{% snapshot a %}", "select 1"),
                ("b", "{%- snapshot b -%}", " x ")
            ]
        );
        assert_eq!(&text[blocks[1].close.clone()], "{%- endsnapshot -%}");
    }

    #[test]
    fn an_unclosed_block_or_a_bad_name_is_a_problem_at_its_tag() {
        let unclosed = named_blocks("x\n{% docs a %}", "docs", "docs block").unwrap_err();
        assert_eq!(unclosed.message, "docs block `a` has no {% enddocs %}");
        assert_eq!(unclosed.at, 2..14);
        let bad = named_blocks(
            "{% snapshot a-b %}{% endsnapshot %}",
            "snapshot",
            "snapshot",
        );
        assert_eq!(bad.unwrap_err().message, "`a-b` is not a snapshot name");
    }
}
