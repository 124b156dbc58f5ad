//! The macros a template can call, as dbt resolves them: the root project's, dp's `dbt`
//! namespace (dbt's cross-database macros) and each installed package's, each package a
//! namespace (`dbt_utils.star(...)`). A call evaluates the macro's file in a state of its own,
//! with the render's context, so a project of many macro files costs a model nothing for the
//! macros it does not call. `adapter.dispatch` searches the packages and adapter prefixes in
//! dbt's order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Error, ErrorKind, State, Value};

use super::functions::{RETURNING, render_state};
use crate::project::Project;
use crate::source::SourceFile;

/// The namespace of dbt's own macros, which dp implements.
pub(super) const DBT: &str = "dbt";

/// The adapter prefixes `adapter.dispatch` tries, in order: dp's own, then Postgres' (the SQL
/// closest to DataFusion's), then the default.
const PREFIXES: [&str; 4] = ["dp", "datafusion", "postgres", "default"];

/// How deep macro calls may nest before a render stops (a macro calling itself forever).
const MAX_DEPTH: usize = 200;

/// dp's implementations of dbt's macros: the `dbt` namespace.
pub(super) fn dbt_macro_files() -> Vec<SourceFile> {
    vec![SourceFile::new(
        "<dp>/macros/dbt.sql",
        include_str!("dbt_macros.sql"),
    )]
}

/// Where each macro is: its template, by namespace and name.
#[derive(Debug, Default)]
pub(super) struct MacroIndex {
    root: String,
    /// Namespace (package name, `dbt`, the root project's name) → macro name → template.
    namespaces: BTreeMap<String, BTreeMap<String, Arc<str>>>,
    /// `dispatch:` search orders by namespace.
    dispatch: BTreeMap<String, Vec<String>>,
    /// Packages installed (the namespaces a dispatch may search besides the root's and dbt's).
    packages: Vec<String>,
    /// Where the macros of packages and of `dbt` render (lenient with undefined names).
    package_env: std::sync::OnceLock<Arc<minijinja::Environment<'static>>>,
}

impl MacroIndex {
    /// The index of `project`'s macros; `names` gives the macros each template declares.
    pub fn new(project: &Project, names: impl Fn(&SourceFile) -> Vec<String>) -> Self {
        let mut index = MacroIndex {
            root: project.config.name.clone(),
            ..Default::default()
        };
        let mut add = |namespace: &str, files: &[SourceFile]| {
            let entry = index.namespaces.entry(namespace.to_string()).or_default();
            for file in files {
                let template: Arc<str> = Arc::from(file.path().display().to_string());
                for name in names(file) {
                    entry.entry(name).or_insert_with(|| template.clone());
                }
            }
        };
        add(DBT, &dbt_macro_files());
        for package in &project.packages {
            add(&package.name, &package.macros);
        }
        add(&project.config.name, &project.macros);
        index.packages = project.packages.iter().map(|p| p.name.clone()).collect();
        // The project's own settings last: they win.
        let settings = project.packages.iter().flat_map(|p| &p.dispatch);
        for entry in settings.chain(&project.config.dispatch) {
            index
                .dispatch
                .insert(entry.macro_namespace.clone(), entry.search_order.clone());
        }
        index
    }

    /// Render the macros of packages and of `dbt` in `env`.
    pub fn use_package_env(&self, env: minijinja::Environment<'static>) {
        let _ = self.package_env.set(Arc::new(env));
    }

    /// The macro `name` of `namespace`.
    pub fn find(&self, namespace: &str, name: &str) -> Option<MacroRef> {
        let template = self.namespaces.get(namespace)?.get(name)?;
        let env = match namespace == self.root {
            true => None,
            false => self.package_env.get().cloned(),
        };
        Some(MacroRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
            template: template.clone(),
            env,
        })
    }

    /// A macro called by its bare name, as dbt finds it: the root project's, then dbt's, then
    /// the one package's that has it (when only one has).
    pub fn bare(&self, name: &str) -> Option<MacroRef> {
        if let Some(found) = self.find(&self.root, name).or_else(|| self.find(DBT, name)) {
            return Some(found);
        }
        let mut found = self.packages.iter().filter_map(|p| self.find(p, name));
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// The macro a command names: `namespace.name`, or a bare name as [`MacroIndex::bare`]
    /// finds it.
    pub fn named(&self, path: &str) -> Option<MacroRef> {
        match path.split_once('.') {
            Some((namespace, name)) => self.find(namespace, name),
            None => self.bare(path),
        }
    }

    /// Every macro, as `namespace.name`.
    pub fn names(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .flat_map(|(namespace, macros)| {
                macros.keys().map(move |name| format!("{namespace}.{name}"))
            })
            .collect()
    }

    /// Whether `name` is a namespace: a package, the root project or `dbt`.
    pub fn is_namespace(&self, name: &str) -> bool {
        self.namespaces.contains_key(name)
    }

    /// `adapter.dispatch(name, namespace)`: the first of the search order's packages (the
    /// `dispatch:` setting, else the root project then the namespace) with a macro named
    /// `<prefix>__name`, trying the prefixes in order within each package.
    pub fn dispatch(&self, name: &str, namespace: Option<&str>) -> Result<MacroRef, String> {
        let search: Vec<Option<&str>> = match namespace {
            Some(namespace) => match self.dispatch.get(namespace) {
                Some(order) => order.iter().map(|p| Some(p.as_str())).collect(),
                None if namespace == DBT || namespace == self.root => vec![None],
                None => vec![Some(self.root.as_str()), Some(namespace)],
            },
            None => vec![None],
        };
        let mut attempts = Vec::new();
        for package in search {
            for prefix in PREFIXES {
                let wanted = format!("{prefix}__{name}");
                let found = match package {
                    Some(package) => self.find(package, &wanted),
                    None => self.bare(&wanted),
                };
                if let Some(found) = found {
                    return Ok(found);
                }
                attempts.push(match package {
                    Some(package) => format!("{package}.{wanted}"),
                    None => wanted,
                });
            }
        }
        Err(format!(
            "adapter.dispatch: no macro `{name}` in namespace `{}`; searched {}",
            namespace.unwrap_or(&self.root),
            attempts.join(", ")
        ))
    }
}

/// A macro of the project or of a package, called in a state of its own with the render's
/// context.
#[derive(Debug, Clone)]
pub(super) struct MacroRef {
    namespace: String,
    name: String,
    template: Arc<str>,
    /// The environment of a package's (or dbt's) macro; the project's own render in the
    /// caller's.
    env: Option<Arc<minijinja::Environment<'static>>>,
}

impl MacroRef {
    /// Call the macro in a state of its own of `env`, whose root context is `scope`.
    fn call_in(
        &self,
        env: &minijinja::Environment<'_>,
        scope: Value,
        args: &[Value],
    ) -> Result<Value, Error> {
        env.get_template(&self.template)
            .and_then(|template| template.render_captured(scope))
            .and_then(|mut module| {
                module.with_state_mut(|inner| match inner.lookup(&self.name) {
                    Some(found) => found.call(inner, args),
                    None => Err(Error::new(
                        ErrorKind::UnknownFunction,
                        format!("macro `{}` is not defined", self.name),
                    )),
                })
            })
    }
}

impl Object for MacroRef {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "name" => Some(Value::from(self.name.clone())),
            "package_name" | "namespace" => Some(Value::from(self.namespace.clone())),
            _ => None,
        }
    }

    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let render = render_state(state)?;
        let scope = state
            .lookup(SCOPE)
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not inside a dp render"))?;
        if render.depth.fetch_add(1, Ordering::Relaxed) >= MAX_DEPTH {
            render.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "macro calls nest deeper than {MAX_DEPTH} (at `{}`): does a macro call itself?",
                    self.name
                ),
            ));
        }
        let output = match &self.env {
            Some(env) => self.call_in(env, scope, args),
            None => self.call_in(state.env(), scope, args),
        };
        render.depth.fetch_sub(1, Ordering::Relaxed);
        output
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<macro {}.{}>", self.namespace, self.name)
    }
}

/// `args` for a call of macro `found`: when it takes `kwargs` (its body reads them, as a
/// Jinja2 macro may), the keyword arguments it does not name go there.
pub(super) fn with_extra_kwargs(found: &Value, args: &[Value]) -> Vec<Value> {
    let Some((last, positional)) = args.split_last() else {
        return args.to_vec();
    };
    if !last.is_kwargs() {
        return args.to_vec();
    }
    let (Ok(kwargs), Ok(names)) = (
        minijinja::value::Kwargs::try_from(last.clone()),
        found.get_attr("arguments"),
    ) else {
        return args.to_vec();
    };
    let names: Vec<String> = names
        .try_iter()
        .map(|names| names.map(|n| n.to_string()).collect())
        .unwrap_or_default();
    if !names.iter().any(|n| n == "kwargs") {
        return args.to_vec();
    }
    let (named, extra): (Vec<&str>, Vec<&str>) = kwargs
        .args()
        .partition(|key| names.iter().any(|n| n == key) || *key == "caller");
    if extra.is_empty() {
        return args.to_vec();
    }
    let value = |key: &str| kwargs.peek::<Value>(key).unwrap_or_default();
    let extra: BTreeMap<String, Value> = extra
        .iter()
        .map(|key| (key.to_string(), value(key)))
        .collect();
    let mut kept: Vec<(String, Value)> = named
        .iter()
        .map(|key| (key.to_string(), value(key)))
        .collect();
    kept.push(("kwargs".into(), Value::from(extra)));
    let mut out = positional.to_vec();
    out.push(Value::from(minijinja::value::Kwargs::from_iter(kept)));
    out
}

/// A namespace of macros: `dbt_utils` in `dbt_utils.star(...)`.
#[derive(Debug)]
pub(super) struct Namespace {
    pub index: Arc<MacroIndex>,
    pub name: String,
}

impl Object for Namespace {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let found = self.index.find(&self.name, key.as_str()?)?;
        Some(Value::from_object(found))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = self
            .index
            .namespaces
            .get(&self.name)
            .map(|macros| macros.keys().map(|k| Value::from(k.clone())).collect())
            .unwrap_or_default();
        Enumerator::Values(names)
    }
}

/// The name under which a render's [`Scope`] knows itself, so that a macro call can give the
/// macro's own state the same context.
pub(super) const SCOPE: &str = "__dp_scope";

/// The root context of a render: its fixed values (`target`, `this`, `adapter`...), then the
/// namespaces and the macros callable by their bare names.
#[derive(Debug)]
pub(super) struct Scope {
    pub index: Arc<MacroIndex>,
    pub values: BTreeMap<&'static str, Value>,
}

impl Scope {
    /// This scope with `values` added.
    pub fn with(&self, values: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
        let mut all = self.values.clone();
        all.extend(values);
        Value::from_object(Scope {
            index: self.index.clone(),
            values: all,
        })
    }
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if name == SCOPE {
            return Some(Value::from_dyn_object(self.clone()));
        }
        if let Some(value) = self.values.get(name) {
            return Some(value.clone());
        }
        if self.index.is_namespace(name) {
            return Some(Value::from_object(Namespace {
                index: self.index.clone(),
                name: name.to_string(),
            }));
        }
        self.index.bare(name).map(Value::from_object)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<&'static str> = self.values.keys().copied().collect();
        Enumerator::Values(names.into_iter().map(Value::from).collect())
    }
}

/// A template as dp renders it, and how to find its bytes in the file it came from.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub text: String,
    /// Where the text was changed: from each offset of the text on, how many bytes longer it
    /// is than the file.
    shifts: Vec<(usize, isize)>,
}

impl Prepared {
    /// The offset in the file of the template's byte `offset`.
    pub fn to_file(&self, offset: usize) -> usize {
        let grown = self
            .shifts
            .iter()
            .take_while(|(at, _)| *at <= offset)
            .last()
            .map_or(0, |(_, grown)| *grown);
        (offset as isize - grown).max(0) as usize
    }

    /// Note that the text up to its current end grew by `delta` bytes.
    fn shifted(&mut self, delta: isize) {
        let before = self.shifts.last().map_or(0, |(_, grown)| *grown);
        self.shifts.push((self.text.len(), before + delta));
    }
}

/// dbt's template syntax as minijinja reads it: `{% test name(...) %}` blocks become macros
/// named `test_name`, each macro is wrapped in a [`super::functions::Returning`] where it ends
/// (so that a call, from its file or another, gives what the macro's `return()` was given), list and mapping literals given to `{% set %}` become mutable (dbt's
/// `{% do cols.append(c) %}`), and `{% materialization %}` blocks (dbt's own adapters') are
/// dropped, their lines kept.
pub fn prepare(text: &str) -> Prepared {
    let mut prepared = Prepared {
        text: String::with_capacity(text.len() + 64),
        shifts: Vec::new(),
    };
    let mut rest = 0;
    // The macros open at this point, innermost last: each is wrapped when it ends.
    let mut open: Vec<String> = Vec::new();
    let name_in = |after: &str| -> String {
        after
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in text.match_indices("{%") {
        if at < rest {
            continue;
        }
        let Some(end) = text[at + 2..].find("%}").map(|n| at + 2 + n + 2) else {
            break;
        };
        let tag = &text[at..end];
        let inner = tag[2..tag.len() - 2].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let (keyword, after) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        let (replacement, until) = match keyword {
            "test" => {
                let head = &tag[..tag.find("test").unwrap_or(0)];
                let tail = &tag[head.len() + 4..];
                let tail = tail.trim_start();
                let header = format!("{head}macro test_{tail}");
                let header = with_kwargs_parameter(text, &header, end).unwrap_or(header);
                open.push(format!("test_{}", name_in(after)));
                (header, end)
            }
            "macro" => {
                open.push(name_in(after));
                match with_kwargs_parameter(text, tag, end) {
                    Some(replacement) => (replacement, end),
                    None => continue,
                }
            }
            // A macro, once defined, is wrapped so that its call gives what `return()` got.
            "endmacro" | "endtest" => {
                let close = tag.replacen("endtest", "endmacro", 1);
                match open.pop().filter(|name| !name.is_empty()) {
                    Some(name) => (
                        format!("{close}{{% set {name} = {RETURNING}({name}) %}}"),
                        end,
                    ),
                    None if keyword == "endtest" => (close, end),
                    None => continue,
                }
            }
            "materialization" => {
                let close = text[end..]
                    .find("endmaterialization")
                    .and_then(|n| text[end + n..].find("%}").map(|m| end + n + m + 2))
                    .unwrap_or(text.len());
                ("\n".repeat(text[at..close].matches('\n').count()), close)
            }
            _ => {
                let literal = match keyword {
                    "set" => mutable_literal(tag, after),
                    _ => None,
                };
                match literal.or_else(|| empty_literals(tag)) {
                    Some(replacement) => (replacement, end),
                    None => continue,
                }
            }
        };
        prepared.text.push_str(&text[rest..at]);
        prepared.text.push_str(&replacement);
        prepared.shifted(replacement.len() as isize - (until - at) as isize);
        rest = until;
    }
    prepared.text.push_str(&text[rest..]);
    prepared
}

/// `{% set name = [...] %}` or `= {...}` with the literal made mutable (`after` is what follows
/// `set`).
fn mutable_literal(tag: &str, after: &str) -> Option<String> {
    let (target, value) = after.split_once('=')?;
    if !target
        .trim()
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_')
    {
        return None;
    }
    let value = value.trim();
    let function = match value.chars().next()? {
        '[' => "__dp_list",
        '{' => "__dp_dict",
        _ => return None,
    };
    // Only a literal that is the whole value: not `{...}[key]`, not `[...] + other`.
    if closing_bracket(value) != Some(value.len() - 1) {
        return None;
    }
    let start = tag.find(value)?;
    Some(format!(
        "{}{function}({value}){}",
        &tag[..start],
        &tag[start + value.len()..]
    ))
}

/// A macro header `tag` (ending at `end` in `text`) with a `kwargs` parameter added when the
/// macro's body reads `kwargs` (Jinja2 gives such a macro the keyword arguments it does not
/// name) and its parameters do not name it.
fn with_kwargs_parameter(text: &str, tag: &str, end: usize) -> Option<String> {
    let body_end = ["endmacro", "endtest"]
        .iter()
        .filter_map(|close| text[end..].find(close))
        .min()?;
    let body = &text[end..end + body_end];
    let reads_kwargs = body.match_indices("kwargs").any(|(at, _)| {
        let before = body[..at].chars().next_back();
        let after = body[at + 6..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    });
    let close = tag.rfind(')')?;
    let open = tag.find('(')?;
    if close < open {
        return None;
    }
    let parameters = &tag[open + 1..close];
    if !reads_kwargs || parameters.contains("kwargs") {
        return None;
    }
    let separator = if parameters.trim().is_empty() {
        ""
    } else {
        ", "
    };
    Some(format!(
        "{}{separator}kwargs={{}}{}",
        &tag[..close],
        &tag[close..]
    ))
}

/// `tag` with its empty list and mapping literals (`[]`, `{}`) made mutable, so that
/// `{% do columns.update({relation: []}) %}` gives a list `append` can change.
fn empty_literals(tag: &str) -> Option<String> {
    let body = &tag[2..tag.len() - 2];
    if !body.contains("[]") && !body.contains("{}") {
        return None;
    }
    let mut out = String::with_capacity(tag.len() + 16);
    let mut quote = None;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c, chars.peek()) {
            (Some(q), c, _) if c == q => {
                quote = None;
                out.push(c);
            }
            (None, '\'' | '"', _) => {
                quote = Some(c);
                out.push(c);
            }
            (None, '[', Some(']')) => {
                chars.next();
                out.push_str("__dp_list([])");
            }
            (None, '{', Some('}')) => {
                chars.next();
                out.push_str("__dp_dict({})");
            }
            _ => out.push(c),
        }
    }
    Some(format!("{{%{out}%}}"))
}

/// Where the bracket that opens `text` closes (skipping quoted strings).
fn closing_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote = None;
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '{' | '(') => depth += 1,
            (None, ']' | '}' | ')') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => {}
        }
    }
    None
}

/// A mapping of `entries`, as a template reads a dict.
pub(super) fn mapping<const N: usize>(entries: [(&'static str, Value); N]) -> Value {
    Value::from(BTreeMap::from(entries))
}

/// A list a template may change, as a Python list: `append`, `extend`, `insert`, `pop`,
/// `remove`; read as any sequence.
#[derive(Debug, Default)]
pub(super) struct MutableList(pub std::sync::Mutex<Vec<Value>>);

impl MutableList {
    fn items(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Object for MutableList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let items = self.items();
        let index = key.as_i64()?;
        let index = if index < 0 {
            items.len().checked_sub(index.unsigned_abs() as usize)?
        } else {
            index as usize
        };
        items.get(index).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.items().clone())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let mut items = self.items();
        match (method, args) {
            ("append", [value]) => items.push(value.clone()),
            ("extend", [values]) => items.extend(values.try_iter()?),
            ("insert", [index, value]) => {
                let index = index.as_usize().unwrap_or(0).min(items.len());
                items.insert(index, value.clone());
            }
            ("pop", []) => return Ok(items.pop().unwrap_or_default()),
            ("pop", [index]) => {
                let index = index.as_usize().filter(|i| *i < items.len());
                return Ok(index.map(|i| items.remove(i)).unwrap_or_default());
            }
            ("remove", [value]) => {
                if let Some(found) = items.iter().position(|v| v == value) {
                    items.remove(found);
                }
            }
            ("index", [value]) => {
                return items
                    .iter()
                    .position(|v| v == value)
                    .map(Value::from)
                    .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not in list"));
            }
            ("count", [value]) => {
                return Ok(Value::from(items.iter().filter(|v| *v == value).count()));
            }
            ("reverse", []) => items.reverse(),
            ("copy", []) => return Ok(Value::from(items.clone())),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }
        Ok(Value::from(()))
    }
}

/// A mapping a template may change, as a Python dict: `update`, `pop`, `setdefault`, and
/// `get`, `items`, `keys`, `values`; keys keep their order.
#[derive(Debug, Default)]
pub(super) struct MutableMap(pub std::sync::Mutex<Vec<(Value, Value)>>);

impl MutableMap {
    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<(Value, Value)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(entries: &mut Vec<(Value, Value)>, key: Value, value: Value) {
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key, value)),
        }
    }
}

impl Object for MutableMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let entries = self.entries();
        entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.entries().iter().map(|(k, _)| k.clone()).collect())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let mut entries = self.entries();
        let pairs = |entries: &Vec<(Value, Value)>| -> Vec<Value> {
            entries
                .iter()
                .map(|(k, v)| Value::from(vec![k.clone(), v.clone()]))
                .collect()
        };
        match (method, args) {
            ("update", [other]) => {
                for key in other.try_iter()? {
                    let value = other.get_item(&key)?;
                    Self::set(&mut entries, key, value);
                }
            }
            ("get", [key]) | ("get", [key, _]) => {
                let found = entries
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone());
                return Ok(found
                    .or_else(|| args.get(1).cloned())
                    .unwrap_or(Value::from(())));
            }
            ("pop", [key]) | ("pop", [key, _]) => {
                let found = entries.iter().position(|(k, _)| k == key);
                return Ok(found
                    .map(|i| entries.remove(i).1)
                    .or_else(|| args.get(1).cloned())
                    .unwrap_or(Value::from(())));
            }
            ("setdefault", [key, default]) => {
                if let Some((_, v)) = entries.iter().find(|(k, _)| k == key) {
                    return Ok(v.clone());
                }
                entries.push((key.clone(), default.clone()));
                return Ok(default.clone());
            }
            ("items", []) => return Ok(Value::from(pairs(&entries))),
            ("keys", []) => return Ok(Value::from_iter(entries.iter().map(|(k, _)| k.clone()))),
            ("values", []) => return Ok(Value::from_iter(entries.iter().map(|(_, v)| v.clone()))),
            ("copy", []) => {
                return Ok(Value::from_object(MutableMap(std::sync::Mutex::new(
                    entries.clone(),
                ))));
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }
        Ok(Value::from(()))
    }
}

/// `__dp_list(value)`: a [`MutableList`] holding `value`'s items.
pub(super) fn mutable_list(value: Value) -> Result<Value, Error> {
    let items: Vec<Value> = value.try_iter()?.collect();
    Ok(Value::from_object(MutableList(std::sync::Mutex::new(
        items,
    ))))
}

/// `__dp_dict(value)`: a [`MutableMap`] holding `value`'s entries.
pub(super) fn mutable_map(value: Value) -> Result<Value, Error> {
    let mut entries = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        entries.push((key, item));
    }
    Ok(Value::from_object(MutableMap(std::sync::Mutex::new(
        entries,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbt_syntax_is_rewritten_with_offsets_mapped_back() {
        let text = "{% test positive(model, column_name) %}select 1{% endtest %}\n{% set xs = [] %}{{ bad }}";
        let prepared = prepare(text);
        assert!(
            prepared
                .text
                .contains("{% macro test_positive(model, column_name) %}")
        );
        assert!(
            prepared
                .text
                .contains("{% set test_positive = __dp_returning(test_positive) %}")
        );
        assert!(prepared.text.contains("__dp_list([])"));
        let bad = prepared.text.find("{{ bad }}").unwrap();
        assert_eq!(prepared.to_file(bad), text.find("{{ bad }}").unwrap());
    }

    #[test]
    fn a_macro_reading_kwargs_takes_them() {
        let text = "{% macro m(a) %}{{ kwargs.get('b') }}{% endmacro %}";
        assert!(
            prepare(text)
                .text
                .starts_with("{% macro m(a, kwargs={}) %}")
        );
    }

    #[test]
    fn malformed_tags_never_panic() {
        for text in [
            "{%}",
            "{% macro f) ( %}{{ kwargs }}{% endmacro %}",
            "{%",
            "{% set x = [ %}",
        ] {
            let _ = prepare(text);
        }
    }
}
