//! SELECT: dbt's node selection grammar over a [`ModelGraph`].
//!
//! `name`, `stg_*`, `+name`, `name+`, `2+name`, `name+1`, `@name`, `tag:x`, `path:models/marts`,
//! `source:raw+`, `source:raw.events`; space = union, comma = intersection; `--exclude` removes.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use miette::SourceSpan;

use super::{ModelGraph, NodeId};
use crate::report::TestKind;

/// A selector that cannot be applied.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum SelectError {
    #[error("nothing matches `{pattern}`")]
    #[diagnostic(code(dp::no_match))]
    NoMatch {
        pattern: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("selects nothing")]
        at: SourceSpan,
        #[help]
        did_you_mean: Option<String>,
    },

    #[error("unknown selector method `{method}`")]
    #[diagnostic(
        code(dp::unknown_selector_method),
        help("use a model name, or one of tag:, path:, source:")
    )]
    UnknownMethod {
        method: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("unknown method")]
        at: SourceSpan,
    },

    #[error("malformed selector `{selector}`")]
    #[diagnostic(
        code(dp::bad_selector),
        help("forms: name, +name, name+, 2+name, name+1, @name, tag:x, path:models/x, source:raw")
    )]
    Malformed {
        selector: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("unknown test type `{kind}`")]
    #[diagnostic(
        code(dp::unknown_test_type),
        help("use test_type:data, test_type:singular or test_type:unit")
    )]
    UnknownTestType {
        kind: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },
}

/// `dp test`'s selectors split: the node selectors, and the kinds of test `test_type:` picks
/// (every kind when none does).
pub fn split_test_types(
    select: &[String],
) -> Result<(Vec<String>, BTreeSet<TestKind>), SelectError> {
    let all = [TestKind::Data, TestKind::Singular, TestKind::Unit];
    let mut kinds = BTreeSet::new();
    let mut nodes = Vec::new();
    for word in select.iter().flat_map(|s| s.split_whitespace()) {
        match word.strip_prefix("test_type:") {
            Some(kind) => match all.iter().find(|k| k.name() == kind) {
                Some(kind) => {
                    kinds.insert(*kind);
                }
                None => {
                    return Err(SelectError::UnknownTestType {
                        kind: kind.to_string(),
                        src: miette::NamedSource::new("--select", Arc::from(word)),
                        at: (0, word.len()).into(),
                    });
                }
            },
            None => nodes.push(word.to_string()),
        }
    }
    if kinds.is_empty() {
        kinds.extend(all);
    }
    Ok((nodes, kinds))
}

/// The nodes picked by `select` (all nodes when empty) minus those picked by `exclude`.
pub fn select(
    graph: &ModelGraph,
    select: &[String],
    exclude: &[String],
) -> Result<BTreeSet<NodeId>, SelectError> {
    let mut chosen = if select.is_empty() {
        graph.order.iter().cloned().collect()
    } else {
        union(graph, "--select", select)?
    };
    if !exclude.is_empty() {
        let excluded = union(graph, "--exclude", exclude)?;
        chosen.retain(|node| !excluded.contains(node));
    }
    Ok(chosen)
}

/// The union of the space-separated selectors in `args`, each an intersection of its
/// comma-separated parts.
fn union(graph: &ModelGraph, flag: &str, args: &[String]) -> Result<BTreeSet<NodeId>, SelectError> {
    let text: Arc<str> = Arc::from(args.join(" "));
    let src = || miette::NamedSource::new(flag, text.clone());
    let mut chosen = BTreeSet::new();
    let mut offset = 0;
    for word in text.split(' ') {
        // Runs of spaces separate selectors too.
        if !word.is_empty() {
            let mut intersection: Option<BTreeSet<NodeId>> = None;
            let mut part_offset = offset;
            for part in word.split(',') {
                let at: SourceSpan = (part_offset, part.len()).into();
                let nodes = atom(graph, part, at, &src)?;
                intersection = Some(match intersection {
                    None => nodes,
                    Some(before) => before.intersection(&nodes).cloned().collect(),
                });
                part_offset += part.len() + 1;
            }
            chosen.extend(intersection.unwrap_or_default());
        }
        offset += word.len() + 1;
    }
    Ok(chosen)
}

/// One selector such as `2+tag:daily+` or `@stg_events`.
fn atom(
    graph: &ModelGraph,
    text: &str,
    at: SourceSpan,
    src: &dyn Fn() -> miette::NamedSource<Arc<str>>,
) -> Result<BTreeSet<NodeId>, SelectError> {
    let malformed = || SelectError::Malformed {
        selector: text.to_string(),
        src: src(),
        at,
    };
    let (with_children_and_parents, rest) = match text.strip_prefix('@') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // A depth: none written is any depth; one too large to count is a mistake.
    let depth = |written: &str| match written {
        "" => Ok(None),
        _ => written.parse::<usize>().map(Some).map_err(|_| malformed()),
    };
    // `N+` in front: parents up to N steps (no N: all); `+N` behind: children.
    let (parents, rest) = match rest.split_once('+') {
        Some((written, rest)) if digits(written) => (Some(depth(written)?), rest),
        _ => (None, rest),
    };
    let (children, pattern) = match rest.rsplit_once('+') {
        Some((pattern, written)) if digits(written) => (Some(depth(written)?), pattern),
        _ => (None, rest),
    };
    let value_is_empty = pattern
        .split_once(':')
        .is_some_and(|(_, value)| value.is_empty());
    if pattern.is_empty()
        || value_is_empty
        || pattern.contains('+')
        || (with_children_and_parents && (parents.is_some() || children.is_some()))
    {
        return Err(malformed());
    }

    let pattern_at = (at.offset() + text.len() - rest.len(), pattern.len()).into();
    let matched = matching(graph, pattern, pattern_at, src)?;
    let mut chosen = matched.clone();
    if let Some(depth) = parents {
        chosen.extend(walk(graph, &matched, depth, Direction::Parents));
    }
    if let Some(depth) = children {
        chosen.extend(walk(graph, &matched, depth, Direction::Children));
    }
    if with_children_and_parents {
        // dbt's `@`: the nodes, their descendants, and every ancestor of either.
        chosen.extend(walk(graph, &matched, None, Direction::Children));
        let ancestors = walk(graph, &chosen, None, Direction::Parents);
        chosen.extend(ancestors);
    }
    Ok(chosen)
}

/// The nodes a method pattern names (no graph operators).
fn matching(
    graph: &ModelGraph,
    pattern: &str,
    at: SourceSpan,
    src: &dyn Fn() -> miette::NamedSource<Arc<str>>,
) -> Result<BTreeSet<NodeId>, SelectError> {
    let (method, value) = pattern.split_once(':').unwrap_or(("", pattern));
    let models = graph.models.values();
    let chosen: BTreeSet<NodeId> = match method {
        "" => models
            .filter(|m| glob(value, &m.name))
            .map(|m| NodeId::Model(m.name.clone()))
            .collect(),
        "tag" => models
            .filter(|m| m.config.tags.iter().any(|tag| glob(value, tag)))
            .map(|m| NodeId::Model(m.name.clone()))
            .collect(),
        "path" => {
            let wanted = value.trim_end_matches('/');
            models
                .filter(|m| {
                    let path = m.file.path();
                    path.starts_with(wanted) || glob(wanted, &path.display().to_string())
                })
                .map(|m| NodeId::Model(m.name.clone()))
                .collect()
        }
        "source" => graph
            .sources
            .values()
            .filter(|s| glob(value, &s.source) || glob(value, &s.id()))
            .map(|s| NodeId::Source(s.id()))
            .collect(),
        // dbt's: `resource_type:seed`, `resource_type:model`, `resource_type:snapshot`,
        // `resource_type:source`.
        "resource_type" => match value {
            "source" => graph
                .sources
                .values()
                .map(|s| NodeId::Source(s.id()))
                .collect(),
            _ => models
                .filter(|m| m.config.resource_type() == value)
                .map(|m| NodeId::Model(m.name.clone()))
                .collect(),
        },
        _ => {
            return Err(SelectError::UnknownMethod {
                method: method.to_string(),
                src: src(),
                at: (at.offset(), method.len()).into(),
            });
        }
    };
    if chosen.is_empty() {
        let candidates: Vec<String> = match method {
            "tag" => graph
                .models
                .values()
                .flat_map(|m| m.config.tags.iter().cloned())
                .collect(),
            "path" => graph
                .models
                .values()
                .map(|m| m.file.path().display().to_string())
                .collect(),
            "source" => graph.sources.keys().cloned().collect(),
            "resource_type" => ["model", "seed", "source"].map(String::from).into(),
            _ => graph.models.keys().cloned().collect(),
        };
        return Err(SelectError::NoMatch {
            pattern: pattern.to_string(),
            did_you_mean: crate::source::did_you_mean(value, candidates.iter().map(String::as_str)),
            src: src(),
            at,
        });
    }
    Ok(chosen)
}

/// Whether `pattern`, that of a selector which matched nothing ([`SelectError::NoMatch`]), names
/// the model `name` at `path` by its name or its path: it was meant, and is not in the graph
/// (it did not render, or reads a model that did not).
pub fn names_model(pattern: &str, name: &str, path: &std::path::Path) -> bool {
    let (method, value) = pattern.split_once(':').unwrap_or(("", pattern));
    match method {
        "" => glob(value, name),
        "path" => {
            let wanted = value.trim_end_matches('/');
            path.starts_with(wanted) || glob(wanted, &path.display().to_string())
        }
        _ => false,
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|skip| {
                    name.is_char_boundary(head.len() + skip)
                        && glob(tail, &name[head.len() + skip..])
                })
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Parents,
    Children,
}

/// Nodes reachable from `start` in `direction`, at most `depth` steps away (`None`: any).
fn walk(
    graph: &ModelGraph,
    start: &BTreeSet<NodeId>,
    depth: Option<usize>,
    direction: Direction,
) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<(NodeId, usize)> = start.iter().map(|n| (n.clone(), 0)).collect();
    while let Some((node, distance)) = queue.pop_front() {
        if depth.is_some_and(|max| distance >= max) {
            continue;
        }
        let next: Vec<&NodeId> = match direction {
            Direction::Parents => graph.parents(&node).collect(),
            Direction::Children => graph.children(&node).collect(),
        };
        for n in next {
            if seen.insert(n.clone()) {
                queue.push_back((n.clone(), distance + 1));
            }
        }
    }
    seen
}
