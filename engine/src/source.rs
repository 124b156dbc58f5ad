//! SOURCE: the user's files and spans, the one place where byte offsets in a file become miette
//! spans; and the few helpers on SQL text every layer above shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// A file of the user's project, with its path relative to the project root and its text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    path: Arc<Path>,
    text: Arc<str>,
}

impl SourceFile {
    /// A file at `path` (relative to the project root) holding `text`.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        Self {
            path: Arc::from(path.into()),
            text: text.into(),
        }
    }

    /// The path relative to the project root, as the user sees it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole text of the file.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The file as a miette source, named by its path.
    pub fn named(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.path.display().to_string(), self.text.clone())
    }

    /// The span of the first occurrence of `needle` at or after byte `from`, or an empty span at
    /// the start of the file when it does not occur.
    pub fn find(&self, needle: &str, from: usize) -> SourceSpan {
        let from = from.min(self.text.len());
        match self.text[from..].find(needle) {
            Some(at) => (from + at, needle.len()).into(),
            None => (0, 0).into(),
        }
    }

    /// The span of `value` written after `name:` (a YAML entry's name), from byte `from` on
    /// (`from` may be that value itself, as a span this returned); else of `value` anywhere.
    pub fn find_name(&self, value: &str, from: usize) -> SourceSpan {
        let text = self.text();
        let mut from = from.min(text.len());
        let whole = |rest: &str| {
            rest.strip_prefix(value)
                .is_some_and(|next| !next.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        };
        let before = text[..from].trim_end_matches([' ', '\'', '"']);
        if before.ends_with("name:") && whole(&text[from..]) {
            return (from, value.len()).into();
        }
        while let Some(at) = text[from..].find("name:") {
            let after = from + at + "name:".len();
            let rest = text[after..].trim_start_matches([' ', '\'', '"']);
            if whole(rest) {
                let start = text.len() - rest.len();
                return (start, value.len()).into();
            }
            from = after;
        }
        self.find(value, 0)
    }

    /// `path:line` of byte `offset`, for messages that point at a definition.
    pub fn location(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line = self.text.as_bytes()[..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        format!("{}:{line}", self.path.display())
    }

    /// The byte offset of a 1-based `line` and `column` (counted in characters).
    pub fn offset_of(text: &str, line: u64, column: u64) -> usize {
        let mut offset = 0;
        for (index, text_line) in text.split_inclusive('\n').enumerate() {
            if index as u64 + 1 == line {
                let column = column.saturating_sub(1) as usize;
                return offset
                    + text_line
                        .char_indices()
                        .nth(column)
                        .map_or(text_line.len(), |(at, _)| at);
            }
            offset += text_line.len();
        }
        text.len()
    }
}

/// A span covering `range`, clamped to the length of the file.
pub fn span(range: std::ops::Range<usize>, text_len: usize) -> SourceSpan {
    let start = range.start.min(text_len);
    let end = range.end.clamp(start, text_len);
    (start, end - start).into()
}

/// The one collector of a stage's problems: none is `Ok`, one is that problem, many are
/// `many(problems)` (a diagnostic relating them all).
pub fn problems<E>(mut found: Vec<E>, many: impl FnOnce(Vec<E>) -> E) -> Result<(), E> {
    match found.len() {
        0 => Ok(()),
        1 => Err(found.remove(0)),
        _ => Err(many(found)),
    }
}

/// A SQL identifier, quoted so that DataFusion keeps its case.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The closest of `candidates` to `name`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| format!("did you mean `{candidate}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["stg_events", "daily_summary"];
        assert_eq!(
            did_you_mean("stg_event", names).as_deref(),
            Some("did you mean `stg_events`?")
        );
        assert_eq!(did_you_mean("orders", names), None);
    }

    #[test]
    fn offsets_count_lines_and_columns_from_one() {
        let text = "select a\nfrom b\n";
        assert_eq!(SourceFile::offset_of(text, 2, 6), 14);
        assert_eq!(&text[SourceFile::offset_of(text, 2, 6)..], "b\n");
    }

    #[test]
    fn a_name_is_found_as_a_whole_word_after_name_and_from_itself() {
        let file = SourceFile::new(
            "s.yml",
            "  - name: customer_revenue\n  - name: mart_10\n  - name: mart_1\n    columns:\n      - {name: revenue}\n",
        );
        let at = |value: &str, from: usize| {
            let span = file.find_name(value, from);
            (
                span.offset(),
                &file.text()[span.offset()..span.offset() + span.len()],
            )
        };
        let mart = at("mart_1", 0);
        assert_eq!(mart.1, "mart_1");
        assert_eq!(mart.0, file.text().find("mart_1\n").unwrap());
        // From the value a search returned, the same value.
        assert_eq!(at("mart_1", mart.0), mart);
        // `revenue` in `{name: revenue}`, not in `customer_revenue`.
        assert_eq!(at("revenue", 0).0, file.text().find("revenue}").unwrap());
    }
}
