//! Which PostgreSQL version a statement needs to mean what the analyzer read.
//!
//! The analyzer parses with PostgreSQL 18's grammar; the upstream server may be older. Most new
//! syntax is simply a syntax error on an older server, but some changes what a statement *is*:
//! `SYSTEM_USER` became a reserved SQL value function in PostgreSQL 16, so `SELECT system_user
//! FROM t` reads no column here and a column named `system_user` there — a masked column the
//! analysis would never see. [`of_tree`] and [`of_tokens`] find every construct newer than
//! PostgreSQL 15 and name the version it needs; the gateway refuses a statement whose
//! [`ServerNeed`] is newer than its upstream (as not understood: the two would not agree on
//! what it does).

use pg_query::NodeRef;
use pg_query::protobuf::{self, Token};

use super::children;
use super::tokens::Tok;
use crate::sql::ServerNeed;

/// The newest need of a statement's tree.
pub(super) fn of_tree(node: NodeRef<'_>) -> Option<ServerNeed> {
    let mut need = None;
    visit(node, &mut need, 0);
    need
}

/// How deep the walk goes (the classifying walk refuses deeper trees anyway).
const MAX_DEPTH: usize = 1000;

fn visit(node: NodeRef<'_>, need: &mut Option<ServerNeed>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    if let Some((major, what)) = construct(node) {
        raise(need, major, what);
    }
    children::for_each_child(node, &mut |child| visit(child, need, depth + 1));
}

/// Keeps the newest of `need` and (`major`, `what`).
fn raise(need: &mut Option<ServerNeed>, major: u32, what: &str) {
    if need.as_ref().is_none_or(|n| n.major < major) {
        *need = Some(ServerNeed {
            major,
            what: what.to_owned(),
        });
    }
}

/// A construct of PostgreSQL 16 or later, and the version that has it.
fn construct(node: NodeRef<'_>) -> Option<(u32, &'static str)> {
    Some(match node {
        NodeRef::FuncCall(f)
            if f.funcformat == protobuf::CoercionForm::CoerceSqlSyntax as i32
                && f.funcname.last().is_some_and(|n| {
                    matches!(&n.node, Some(protobuf::node::Node::String(s)) if s.sval == "system_user")
                }) =>
        {
            (16, "SYSTEM_USER (a column name before PostgreSQL 16)")
        }
        NodeRef::JsonObjectConstructor(_)
        | NodeRef::JsonArrayConstructor(_)
        | NodeRef::JsonArrayQueryConstructor(_)
        | NodeRef::JsonObjectAgg(_)
        | NodeRef::JsonArrayAgg(_) => (16, "an SQL/JSON constructor"),
        NodeRef::JsonIsPredicate(_) => (16, "IS JSON"),
        NodeRef::JsonFuncExpr(_) => (17, "JSON_EXISTS, JSON_QUERY or JSON_VALUE"),
        NodeRef::JsonTable(_) => (17, "JSON_TABLE"),
        NodeRef::JsonParseExpr(_) => (17, "JSON()"),
        NodeRef::JsonScalarExpr(_) => (17, "JSON_SCALAR"),
        NodeRef::JsonSerializeExpr(_) => (17, "JSON_SERIALIZE"),
        NodeRef::MergeSupportFunc(_) => (17, "MERGE_ACTION()"),
        NodeRef::MergeStmt(m) if m.returning_clause.is_some() => (17, "MERGE … RETURNING"),
        NodeRef::ReturningClause(r) if !r.options.is_empty() => (18, "RETURNING WITH (OLD/NEW AS …)"),
        _ => return None,
    })
}

/// The newest need of a text's tokens: numeric literals in forms PostgreSQL 16 introduced
/// (`0x1F`, `0o17`, `0b101`, `1_000`), which older servers read as something else or refuse.
pub(super) fn of_tokens(sql: &str, toks: &[Tok]) -> Option<ServerNeed> {
    let numeric = |t: &&Tok| matches!(t.kind, Some(Token::Iconst | Token::Fconst));
    toks.iter().filter(numeric).find_map(|t| {
        let text = sql.get(t.start..t.end)?;
        let prefixed = text.len() > 2
            && text.starts_with('0')
            && matches!(
                text.as_bytes().get(1),
                Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')
            );
        (prefixed || text.contains('_')).then(|| ServerNeed {
            major: 16,
            what: format!("the numeric literal {text} (a PostgreSQL 16 form)"),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(sql: &str) -> Option<u32> {
        let parsed = pg_query::parse(sql, 0).expect("parses");
        let node = parsed.protobuf.stmts[0].stmt.as_ref()?.node.as_ref()?;
        let tree = of_tree(node.to_ref()).map(|n| n.major);
        let toks = super::super::tokens::lex(sql).expect("lexes");
        tree.max(of_tokens(sql, &toks).map(|n| n.major))
    }

    #[test]
    fn newer_constructs_name_their_version() {
        assert_eq!(need("SELECT system_user FROM t"), Some(16));
        assert_eq!(need("SELECT JSON_OBJECT('a': 1)"), Some(16));
        assert_eq!(need("SELECT x IS JSON FROM t"), Some(16));
        assert_eq!(need("SELECT JSON_VALUE(j, '$.a') FROM t"), Some(17));
        assert_eq!(
            need("SELECT * FROM JSON_TABLE('[]', '$[*]' COLUMNS (a int PATH '$'))"),
            Some(17)
        );
        assert_eq!(need("SELECT 0x1F, 1"), Some(16));
        assert_eq!(need("SELECT 1_000"), Some(16));
        assert_eq!(
            need("DELETE FROM t RETURNING WITH (OLD AS o) o.a"),
            Some(18)
        );
        // What every supported version reads alike.
        for same in [
            "SELECT current_user, session_user, current_date FROM t",
            "SELECT json_object('{a,1}'), 10, 1.5e3, 0, 0.5",
            "SELECT \"system_user\" FROM t",
            "SELECT x FROM t WHERE y = '0x10'",
        ] {
            assert_eq!(need(same), None, "{same}");
        }
    }
}
