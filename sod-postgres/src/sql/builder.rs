//! Accumulates the verdict on one statement while a backend walks its tree.
//!
//! Shared by every backend so that they escalate, deduplicate and word their reasons alike;
//! a backend only decides *what* it found (a function call, a relation, a nested statement).

use std::fmt;

use sod_core::OperationKind::{self, Admin, Read, Schema, Unknown, Write};

use super::functions::{self, FunctionClass};
use super::{ObjectName, SessionEffect, Statement};

/// What a statement type is, before looking inside: each backend maps its own statement
/// types to one of these.
#[derive(Debug)]
pub(crate) struct Base {
    pub(crate) kind: OperationKind,
    pub(crate) tag: String,
    pub(crate) effect: Option<SessionEffect>,
    /// The statement changes the catalog.
    pub(crate) ddl: bool,
    /// Why the kind is what it is, when the tag alone does not say.
    pub(crate) reason: Option<String>,
}

// Some constructors are only used by the sqlparser backend.
#[cfg_attr(not(feature = "sqlparser"), allow(dead_code))]
impl Base {
    pub(crate) fn new(kind: OperationKind, tag: impl Into<String>) -> Self {
        Self {
            kind,
            tag: tag.into(),
            effect: None,
            ddl: false,
            reason: None,
        }
    }

    pub(crate) fn read(tag: impl Into<String>) -> Self {
        Self::new(Read, tag)
    }

    pub(crate) fn write(tag: impl Into<String>) -> Self {
        Self::new(Write, tag)
    }

    /// A catalog change of kind schema.
    pub(crate) fn schema(tag: impl Into<String>) -> Self {
        Self::new(Schema, tag).ddl()
    }

    /// A catalog change of kind admin.
    pub(crate) fn admin_ddl(tag: impl Into<String>) -> Self {
        Self::new(Admin, tag).ddl()
    }

    pub(crate) fn admin(tag: impl Into<String>) -> Self {
        Self::new(Admin, tag)
    }

    pub(crate) fn unknown(tag: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(Unknown, tag).reason(reason)
    }

    pub(crate) fn ddl(mut self) -> Self {
        self.ddl = true;
        self
    }

    pub(crate) fn effect(mut self, effect: SessionEffect) -> Self {
        self.effect = Some(effect);
        self
    }

    pub(crate) fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Raises a catalog change to admin because of one of its parts.
    pub(crate) fn admin_because(mut self, reason: &str) -> Self {
        self.kind = Admin;
        self.reason = Some(reason.to_owned());
        self
    }
}

/// How a backend's walk reached a nested statement, for the wording of reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Anywhere inside another statement.
    Inside,
    /// The query of a `WITH` item.
    Cte,
    /// The statement of `EXPLAIN ANALYZE`.
    ExplainAnalyze,
    /// The statement of `PREPARE`.
    Prepare,
    /// The query of `DECLARE … CURSOR`.
    #[cfg_attr(feature = "sqlparser", allow(dead_code))]
    Cursor,
    /// The query of `COPY (…) TO`.
    Copy,
    /// The query of `CREATE TABLE … AS` / `CREATE MATERIALIZED VIEW`.
    #[cfg_attr(feature = "sqlparser", allow(dead_code))]
    CreateAs,
}

/// One statement's verdict under construction.
#[derive(Debug)]
pub(crate) struct StatementBuilder {
    /// The statement type's own kind: escalations above it are explained in `reasons`.
    base: OperationKind,
    kind: OperationKind,
    /// The part of `kind` due to function, operator and `TABLESAMPLE` calls alone: what
    /// survives in a plain `EXPLAIN`, where calls may be evaluated during planning.
    call_kind: OperationKind,
    reasons: Vec<String>,
    call_reasons: Vec<String>,
    objects: Vec<ObjectName>,
    functions: Vec<String>,
    /// A catalog change was found.
    ddl: bool,
    /// A `set_config` call may change `search_path`.
    search_path: bool,
    /// `EXECUTE name` was found.
    execute: Option<String>,
}

impl StatementBuilder {
    /// A top-level statement of type `base`.
    pub(crate) fn from_base(base: &Base) -> Self {
        let mut b = Self::new(base.kind);
        if let Some(reason) = &base.reason {
            b.explain(reason.clone());
        }
        if base.ddl {
            b.ddl();
        }
        b
    }

    /// A statement of type `base` found inside this one, reached as `via`: it runs as part of
    /// it (a CTE, `EXPLAIN ANALYZE`, `COPY (…)`, `CREATE TABLE AS`, …) or is stored by it (a
    /// rule action, a function body, `PREPARE`); either way this one is at least as risky.
    pub(crate) fn nested(&mut self, base: Base, via: Via) {
        if base.ddl {
            self.ddl();
        }
        if base.kind > Read {
            let tag = &base.tag;
            let reason = match via {
                Via::Cte => format!("data-modifying CTE ({tag})"),
                Via::ExplainAnalyze => format!("EXPLAIN ANALYZE runs {tag}"),
                Via::Prepare => format!("prepares {tag}"),
                Via::Cursor => format!("cursor runs {tag}"),
                Via::Copy => format!("COPY runs {tag}"),
                Via::CreateAs => format!("runs {tag}"),
                Via::Inside => format!("contains {tag}"),
            };
            self.escalate(base.kind, reason);
            if let Some(reason) = base.reason {
                self.escalate(base.kind, reason);
            }
        }
    }

    /// A statement whose type has kind `base`.
    pub(crate) fn new(base: OperationKind) -> Self {
        Self {
            base,
            kind: base,
            call_kind: OperationKind::Read,
            reasons: Vec::new(),
            call_reasons: Vec::new(),
            objects: Vec::new(),
            functions: Vec::new(),
            ddl: false,
            search_path: false,
            execute: None,
        }
    }

    /// Raises the kind to at least `kind`, explaining why if that is above the base kind.
    pub(crate) fn escalate(&mut self, kind: OperationKind, reason: impl Into<String>) {
        self.kind = self.kind.max(kind);
        if kind > self.base {
            push_unique(&mut self.reasons, reason.into());
        }
    }

    /// Adds an explanation even though the kind is the statement type's own (for statements
    /// whose type alone is not self-explanatory, such as `SET role`).
    pub(crate) fn explain(&mut self, reason: impl Into<String>) {
        push_unique(&mut self.reasons, reason.into());
    }

    /// Marks the statement as changing the catalog.
    pub(crate) fn ddl(&mut self) {
        self.ddl = true;
    }

    /// Marks the statement as (possibly) changing `search_path` through `set_config`.
    pub(crate) fn sets_search_path(&mut self) {
        self.search_path = true;
    }

    /// Records `EXECUTE name` (the first one counts).
    pub(crate) fn execute(&mut self, name: &str) {
        if self.execute.is_none() {
            self.execute = Some(name.to_owned());
        }
    }

    /// Records a call of function `name`, qualified with `schema` when written so, and
    /// escalates by its verdict.
    pub(crate) fn call_function(&mut self, schema: Option<&str>, name: &str) -> FunctionClass {
        let display = match schema {
            Some(schema) => format!("{schema}.{name}"),
            None => name.to_owned(),
        };
        let class = functions::classify_function(schema, name);
        if let Some(reason) = class.reason(&display) {
            self.escalate_call(class.kind, reason);
        }
        push_unique(&mut self.functions, display);
        class
    }

    /// Records a call of the built-in `set_config` (`schema`: `None` or `pg_catalog`) that
    /// [`settings::harmless_set_config`](crate::sql::settings::harmless_set_config) finds
    /// harmless: a read; one that changes the search path (`search_path`), which the gateway
    /// then tracks.
    pub(crate) fn call_set_config(&mut self, schema: Option<&str>, search_path: bool) {
        let display = match schema {
            Some(schema) => format!("{schema}.set_config"),
            None => "set_config".to_owned(),
        };
        push_unique(&mut self.functions, display);
        self.search_path |= search_path;
    }

    /// Records the use of operator `symbol`, qualified with `schema` when written as
    /// `OPERATOR(schema.symbol)`.
    pub(crate) fn call_operator(&mut self, schema: Option<&str>, symbol: &str) {
        let class = functions::classify_operator(schema, symbol);
        if class.kind > OperationKind::Read {
            let display = match schema {
                Some(schema) => format!("OPERATOR({schema}.{symbol})"),
                None => symbol.to_owned(),
            };
            self.escalate_call(
                class.kind,
                format!("uses unknown operator {display}, treated as a write"),
            );
        }
    }

    /// Records a `TABLESAMPLE` method.
    pub(crate) fn tablesample(&mut self, schema: Option<&str>, method: &str) {
        let class = functions::classify_tablesample(schema, method);
        if class.kind > OperationKind::Read {
            let display = match schema {
                Some(schema) => format!("{schema}.{method}"),
                None => method.to_owned(),
            };
            self.escalate_call(
                class.kind,
                format!("uses unknown TABLESAMPLE method {display}, treated as a write"),
            );
        }
    }

    fn escalate_call(&mut self, kind: OperationKind, reason: String) {
        self.call_kind = self.call_kind.max(kind);
        push_unique(&mut self.call_reasons, reason.clone());
        self.escalate(kind, reason);
    }

    /// Records a touched relation.
    pub(crate) fn object(&mut self, schema: Option<&str>, name: &str) {
        if name.is_empty() {
            return;
        }
        let object = ObjectName::new(schema.filter(|s| !s.is_empty()), name);
        if !self.objects.contains(&object) {
            self.objects.push(object);
        }
    }

    /// Takes over what a statement that is planned but not run (the body of a plain
    /// `EXPLAIN`) contributes: its objects and functions, the escalations due to its calls,
    /// `set_config` and `EXECUTE`, but not the kind of the statement itself.
    pub(crate) fn absorb_planned(&mut self, planned: StatementBuilder) {
        for o in planned.objects {
            if !self.objects.contains(&o) {
                self.objects.push(o);
            }
        }
        for f in planned.functions {
            push_unique(&mut self.functions, f);
        }
        for r in planned.call_reasons {
            self.escalate_call(planned.call_kind, r);
        }
        self.search_path |= planned.search_path;
        if let Some(name) = planned.execute {
            self.execute(&name);
        }
    }

    /// The finished statement. `effect` is the statement type's own effect, if any.
    pub(crate) fn finish(
        mut self,
        tag: impl Into<String>,
        normalized: String,
        effect: Option<SessionEffect>,
    ) -> Statement {
        let effect = if let Some(name) = self.execute.take() {
            // Only the prepared statement may remain to be judged: the gateway substitutes its
            // kind. Arguments or an enclosing statement that are riskier than a read would be
            // lost in that substitution, so such a statement stays unknown.
            let rest = std::mem::replace(&mut self.kind, OperationKind::Unknown);
            if rest <= OperationKind::Read {
                self.reasons.push(format!(
                    "runs prepared statement {name}: its kind is that of its PREPARE"
                ));
                SessionEffect::Execute { name }
            } else {
                self.reasons.push(format!(
                    "runs prepared statement {name} in a statement that is itself a {rest}: not supported"
                ));
                SessionEffect::None
            }
        } else if let Some(effect) = effect {
            effect
        } else if self.search_path {
            SessionEffect::SetSearchPath
        } else if self.ddl {
            SessionEffect::Ddl
        } else {
            SessionEffect::None
        };
        Statement {
            kind: self.kind,
            tag: tag.into(),
            normalized,
            objects: self.objects,
            functions: self.functions,
            reasons: self.reasons,
            effect,
            secrets: Vec::new(),
            lineage: None,
            needs: None,
        }
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Parses a relation name given as a string constant, as `nextval('s')` or `'s'::regclass`
/// take it: dot-separated identifiers, unquoted ones folded to lower case, quoted ones kept
/// with `""` unescaped. `None` if the string is not such a name.
///
/// ```text
/// "s"            → (None, "s")
/// "Public.\"Seq\"" → (Some("public"), "Seq")
/// ```
pub(crate) fn parse_qualified_name(text: &str) -> Option<(Option<String>, String)> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c.is_whitespace() {
                    break;
                }
                part.extend(c.to_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some('.') => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some(_) => return None,
        }
    }
    let name = parts.pop()?;
    match parts.len() {
        0 => Some((None, name)),
        // A catalog-qualified name must name the current database; keep the schema.
        1 | 2 => Some((parts.pop(), name)),
        _ => None,
    }
}

/// The name of the enum variant `value` is (`CreateTable`), for messages.
pub(super) fn variant_name(value: &impl fmt::Debug) -> String {
    /// Keeps what is written up to the first `(`, ` ` or `{`, then refuses more, so
    /// formatting a large tree stops right away.
    struct UpToParen(String);
    impl fmt::Write for UpToParen {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match s.find(['(', ' ', '{']) {
                Some(i) => {
                    self.0.push_str(&s[..i]);
                    Err(fmt::Error)
                }
                None => {
                    self.0.push_str(s);
                    Ok(())
                }
            }
        }
    }
    let mut name = UpToParen(String::new());
    let _ = fmt::Write::write_fmt(&mut name, format_args!("{value:?}"));
    if name.0.is_empty() {
        "statement".to_owned()
    } else {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        let p = |s| parse_qualified_name(s);
        assert_eq!(p("s"), Some((None, "s".into())));
        assert_eq!(p("Seq"), Some((None, "seq".into())));
        assert_eq!(
            p("Public.\"My\"\"Seq\""),
            Some((Some("public".into()), "My\"Seq".into()))
        );
        assert_eq!(p(" a . b "), Some((Some("a".into()), "b".into())));
        assert_eq!(p("db.a.b"), Some((Some("a".into()), "b".into())));
        assert_eq!(p(""), None);
        assert_eq!(p("a."), None);
        assert_eq!(p("\"unterminated"), None);
        assert_eq!(p("a b"), None);
        assert_eq!(p("a.b.c.d"), None);
    }

    #[test]
    fn reasons_only_above_base() {
        let mut b = StatementBuilder::new(OperationKind::Write);
        b.call_function(None, "nextval");
        b.call_function(None, "pg_read_file");
        let s = b.finish("DELETE", String::new(), None);
        assert_eq!(s.kind, OperationKind::Admin);
        assert_eq!(s.reasons, ["calls pg_read_file (server file access)"]);
        assert_eq!(s.functions, ["nextval", "pg_read_file"]);
    }
}
