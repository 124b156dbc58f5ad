//! COMPILE: the CTEs a model's query never reads. DataFusion plans every CTE of a `WITH`, used or
//! not, so a source read only by an unused CTE (a leftover of an edited model, common in public
//! dbt projects) would have to exist for the model to plan. DuckDB never binds such a CTE; dp
//! blanks it out of the compiled SQL (spaces of the same bytes, so every position still points
//! into the user's file), and a source only it names is not read by the model. The DAG keeps its
//! `ref()`s, as dbt's does.
//! In: a model's compiled SQL and the sources it names. Out: both without the unused CTEs.

use std::collections::BTreeSet;
use std::ops::Range;

use sqlparser::ast::{Statement, With};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::source::SourceFile;

/// `sql` with its unused CTEs blanked, and `sources` without those only they name (`None`: every
/// CTE is read, or the SQL is not one query with a `WITH`).
pub fn without_unused_ctes(
    sql: &str,
    sources: &BTreeSet<String>,
) -> Option<(String, BTreeSet<String>)> {
    if !sql.to_ascii_lowercase().contains("with") {
        return None;
    }
    let statements = Parser::parse_sql(&GenericDialect {}, sql).ok()?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return None;
    };
    let with = query.with.as_ref()?;
    let ctes = cte_ranges(sql, with)?;
    let tokens: Vec<TokenWithSpan> = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    // Each token to its CTE's part, or to the query's body after the last CTE.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(at, _)| at + 1))
        .collect();
    let offset = |l: sqlparser::tokenizer::Location| -> usize {
        let start = line_starts
            .get(l.line as usize - 1)
            .copied()
            .unwrap_or(sql.len());
        sql[start..]
            .char_indices()
            .nth(l.column as usize - 1)
            .map_or(sql.len(), |(at, _)| start + at)
    };
    let body_start = ctes.last()?.1.end;
    let mut parts: Vec<Vec<&Token>> = vec![Vec::new(); ctes.len()];
    let mut body = Vec::new();
    for token in tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
    {
        let at = offset(token.span.start);
        let part = ctes.partition_point(|(_, range)| range.end <= at);
        match ctes.get(part) {
            Some((_, range)) if range.contains(&at) => parts[part].push(&token.token),
            _ if at >= body_start => body.push(&token.token),
            _ => {}
        }
    }
    // The CTEs the query reads, through the CTEs it reads.
    let names = |part: &[&Token]| -> BTreeSet<String> {
        part.iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.value.to_ascii_lowercase()),
                _ => None,
            })
            .collect()
    };
    let mut read: BTreeSet<usize> = BTreeSet::new();
    let mut pending = vec![names(&body)];
    while let Some(named) = pending.pop() {
        for (i, (name, _)) in ctes.iter().enumerate() {
            if named.contains(name) && read.insert(i) {
                pending.push(names(&parts[i]));
            }
        }
    }
    if read.len() == ctes.len() {
        return None;
    }
    let used: Vec<&Token> = body
        .into_iter()
        .chain(read.iter().flat_map(|&i| parts[i].iter().copied()))
        .collect();
    let unused: Vec<&Token> = (0..ctes.len())
        .filter(|i| !read.contains(i))
        .flat_map(|i| parts[i].iter().copied())
        .collect();
    let kept = sources
        .iter()
        .filter(|id| names_source(&used, id) || !names_source(&unused, id))
        .cloned()
        .collect();
    let mut blanked = sql.to_string();
    for range in blank_ranges(sql, &ctes, &read) {
        let spaces: String = sql[range.clone()]
            .chars()
            .map(|c| {
                if c == '\n' {
                    "\n".to_string()
                } else {
                    " ".repeat(c.len_utf8())
                }
            })
            .collect();
        blanked.replace_range(range, &spaces);
    }
    Some((blanked, kept))
}

/// Each CTE's lower-cased name and byte range (from its name to its closing parenthesis).
fn cte_ranges(sql: &str, with: &With) -> Option<Vec<(String, Range<usize>)>> {
    let at = |l: sqlparser::tokenizer::Location| SourceFile::offset_of(sql, l.line, l.column);
    with.cte_tables
        .iter()
        .map(|cte| {
            let start = at(cte.alias.name.span.start);
            let end = at(cte.closing_paren_token.0.span.end);
            (start < end && end <= sql.len())
                .then(|| (cte.alias.name.value.to_ascii_lowercase(), start..end))
        })
        .collect()
}

/// The text to blank: each unused CTE with the comma that separates it from the next (or, for
/// the last, from the one before); the whole `WITH` when none is read.
fn blank_ranges(
    sql: &str,
    ctes: &[(String, Range<usize>)],
    read: &BTreeSet<usize>,
) -> Vec<Range<usize>> {
    if read.is_empty() {
        let start = sql[..ctes[0].1.start]
            .to_ascii_lowercase()
            .rfind("with")
            .unwrap_or(ctes[0].1.start);
        return std::iter::once(start..ctes[ctes.len() - 1].1.end).collect();
    }
    let last_read = *read.iter().next_back().expect("one CTE is read");
    ctes.iter()
        .enumerate()
        .filter(|(i, _)| !read.contains(i))
        .map(|(i, (_, range))| {
            if i < last_read {
                // Through the comma after it.
                let comma = sql[range.end..]
                    .find(',')
                    .map_or(range.end, |c| range.end + c + 1);
                range.start..comma
            } else {
                // From the comma before it.
                let comma = sql[..range.start].rfind(',').unwrap_or(range.start);
                comma..range.end
            }
        })
        .collect()
}

/// Whether `tokens` name source `id` (`source.table`) as `source . table`.
fn names_source(tokens: &[&Token], id: &str) -> bool {
    let Some((source, table)) = id.split_once('.') else {
        return false;
    };
    let word =
        |t: &Token, name: &str| matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case(name));
    tokens
        .windows(3)
        .any(|w| word(w[0], source) && *w[1] == Token::Period && word(w[2], table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// `sql` with each run of whitespace one space.
    fn words(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn an_unused_cte_is_blanked_in_place_and_its_source_is_not_read() {
        let sql = "with gone as (select * from \"raw\".\"old\"),\n  kept as (select * from \"raw\".\"new\")\nselect * from kept";
        let (blanked, kept) = without_unused_ctes(sql, &sources(&["raw.old", "raw.new"])).unwrap();
        assert_eq!(blanked.len(), sql.len());
        assert_eq!(blanked.lines().count(), sql.lines().count());
        assert_eq!(
            words(&blanked),
            "with kept as (select * from \"raw\".\"new\") select * from kept"
        );
        assert_eq!(kept, sources(&["raw.new"]));
    }

    #[test]
    fn ctes_read_through_other_ctes_stay_and_a_source_read_elsewhere_too() {
        let sql = "with a as (select * from raw.x), b as (select * from a), c as (select * from raw.x) select * from b";
        let (blanked, kept) = without_unused_ctes(sql, &sources(&["raw.x"])).unwrap();
        assert_eq!(blanked.len(), sql.len());
        assert_eq!(
            words(&blanked),
            "with a as (select * from raw.x), b as (select * from a) select * from b"
        );
        assert_eq!(kept, sources(&["raw.x"]));
        // Every CTE read: nothing to change.
        assert!(
            without_unused_ctes("with a as (select 1 as x) select x from a", &sources(&[]))
                .is_none()
        );
        assert!(without_unused_ctes("select 1 as x", &sources(&[])).is_none());
    }

    #[test]
    fn a_with_of_only_unused_ctes_goes_whole() {
        let sql = "with gone as (select * from raw.old) select 1 as x";
        let (blanked, kept) = without_unused_ctes(sql, &sources(&["raw.old"])).unwrap();
        assert_eq!(words(&blanked), "select 1 as x");
        assert!(kept.is_empty());
    }
}
