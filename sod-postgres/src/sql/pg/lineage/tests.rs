use super::*;

fn refs(r: &[Ref]) -> String {
    let mut v: Vec<String> = r
        .iter()
        .map(|r| match r {
            Ref::Column {
                relation,
                column,
                certain,
            } => format!("{relation}.{column}{}", if *certain { "" } else { "?" }),
            Ref::Whole(rel) => format!("{rel}.*"),
        })
        .collect();
    v.sort();
    v.join(" ")
}

/// [`of`] for the first statement of `sql`.
fn of_sql(sql: &str) -> (Option<Lineage>, bool) {
    let parsed = pg_query::parse(sql, 0).expect("parses");
    let node = parsed.protobuf.stmts[0]
        .stmt
        .as_ref()
        .and_then(|n| n.node.as_ref())
        .expect("a statement");
    of(node.to_ref())
}

fn lineage(sql: &str) -> Lineage {
    of_sql(sql).0.expect("a lineage")
}

/// Each output: `= refs` passed through, `~ refs` computed, `* rel` a star.
fn outputs(sql: &str) -> Vec<String> {
    let l = lineage(sql);
    assert_eq!(l.untraceable, None, "{sql}");
    l.outputs
        .expect("outputs")
        .iter()
        .map(|o| match o {
            Output::Value(r) => format!("= {}", refs(r)),
            Output::Computed(r) => format!("~ {}", refs(r)),
            Output::Star { relation, except } if except.is_empty() => format!("* {relation}"),
            Output::Star { relation, except } => format!("* {relation} - {}", except.join(",")),
            Output::Unknown => "?".to_owned(),
        })
        .collect()
}

/// Each use: `refs @ position`.
fn uses(sql: &str) -> Vec<String> {
    let l = lineage(sql);
    assert_eq!(l.untraceable, None, "{sql}");
    l.uses
        .iter()
        .map(|u| format!("{} @ {}", refs(&u.refs), u.position))
        .collect()
}

fn untraceable(sql: &str) -> String {
    lineage(sql)
        .untraceable
        .unwrap_or_else(|| panic!("{sql} is traceable"))
}

#[test]
fn plain_outputs_are_passed_through_and_read_nowhere_else() {
    assert_eq!(
        outputs("SELECT c.id, c.email, email AS e, c FROM customers c"),
        [
            "= customers.id",
            "= customers.email",
            "= customers.email?",
            // A bare `c` may also be a column named c.
            "= customers.* customers.c?"
        ]
    );
    assert!(uses("SELECT c.id, c.email FROM customers c").is_empty());
    // Through subqueries, CTEs and a scalar subquery, still passed through.
    assert_eq!(
        outputs("SELECT s.e FROM (SELECT email AS e FROM customers) s"),
        ["= customers.email?"]
    );
    assert_eq!(
        outputs("WITH x AS (SELECT email FROM customers) SELECT email FROM x"),
        ["= customers.email?"]
    );
    assert_eq!(
        outputs("SELECT (SELECT email FROM customers c2 WHERE c2.id = c.id) FROM customers c"),
        ["= customers.email?"]
    );
    assert_eq!(
        outputs("SELECT *, c.* FROM customers c"),
        ["* customers", "* customers"]
    );
}

#[test]
fn computation_is_a_use_wherever_it_stands() {
    assert_eq!(
        outputs("SELECT lower(email), 1, $1 FROM customers"),
        ["~ customers.email?", "~ ", "~ "]
    );
    assert_eq!(
        uses("SELECT lower(email) FROM customers"),
        ["customers.email? @ in a computed output (in lower())"]
    );
    for (sql, at) in [
        (
            "SELECT id FROM customers WHERE email LIKE 'a%'",
            "in WHERE (in operator ~~)",
        ),
        (
            "SELECT email::int FROM customers",
            "in a computed output (in a cast to int4)",
        ),
        (
            "SELECT CASE WHEN ssn > '5' THEN 1/0 END FROM customers",
            "in a computed output (in operator >)",
        ),
        (
            "SELECT generate_series(1, length(email)) FROM customers",
            "in a computed output (in length())",
        ),
        ("SELECT id FROM customers ORDER BY email", "in ORDER BY"),
        ("SELECT id FROM customers GROUP BY email", "in GROUP BY"),
        (
            "SELECT count(*) FROM customers HAVING max(ssn) > '1'",
            "in HAVING (in max())",
        ),
        ("SELECT DISTINCT ON (ssn) id FROM customers", "in DISTINCT"),
        (
            "SELECT row_number() OVER (ORDER BY email) FROM customers",
            "in a window's PARTITION BY or ORDER BY",
        ),
        (
            "SELECT id FROM customers c JOIN orders o ON o.note = c.email",
            "in a join condition (in operator =)",
        ),
        (
            "SELECT id FROM customers LIMIT (SELECT length(ssn) FROM customers LIMIT 1)",
            "in a computed output (in length())",
        ),
        (
            "SELECT x FROM customers c, generate_series(1, length(c.email)) x",
            "as the argument of a function in FROM (in length())",
        ),
        (
            "SELECT string_agg(name, ',' ORDER BY email) FROM customers",
            "in a computed output (in the ORDER BY of string_agg())",
        ),
        (
            "SELECT count(DISTINCT email) FROM customers",
            "in a computed output (in count())",
        ),
    ] {
        let found = uses(sql);
        assert!(
            found
                .iter()
                .any(|u| u.ends_with(at) && (u.contains("email") || u.contains("ssn"))),
            "{sql}: {found:?}"
        );
    }
}

#[test]
fn outputs_named_by_position_or_name_are_uses() {
    // ORDER BY 2 and ROLLUP (2) name the second output.
    for sql in [
        "SELECT id, email FROM customers ORDER BY 2",
        "SELECT id, email FROM customers GROUP BY ROLLUP (2), 1",
        "SELECT id, email FROM customers GROUP BY GROUPING SETS ((1), (1, 2))",
        "SELECT id, email FROM customers GROUP BY CUBE (1, 2)",
        "SELECT DISTINCT id, email FROM customers",
        "SELECT email AS e FROM customers ORDER BY e",
    ] {
        let found = uses(sql);
        assert!(
            found.iter().any(|u| u.starts_with("customers.email")),
            "{sql}: {found:?}"
        );
        assert!(
            of_sql(sql).1 || !sql.contains(" 2"),
            "{sql} names an output by position"
        );
    }
}

#[test]
fn set_operations_and_values() {
    // UNION ALL compares nothing; UNION, INTERSECT and EXCEPT do.
    assert!(uses("SELECT email FROM customers UNION ALL SELECT 'x'").is_empty());
    for sql in [
        "SELECT email FROM customers UNION SELECT 'x'",
        "SELECT email FROM customers INTERSECT ALL SELECT 'x'",
        "SELECT email FROM customers EXCEPT SELECT 'x'",
    ] {
        assert_eq!(
            uses(sql),
            ["customers.email? @ in a set operation that compares rows"],
            "{sql}"
        );
    }
    assert_eq!(
        outputs("SELECT email FROM customers UNION ALL SELECT name FROM orders"),
        ["= customers.email? orders.name?"]
    );
    assert!(
        uses("SELECT email FROM customers UNION ALL SELECT 'x' ORDER BY 1")
            .iter()
            .any(|u| u.contains("in ORDER BY"))
    );
    assert!(
        uses("VALUES ((SELECT ssn FROM customers LIMIT 1), 1), ('5', 2) ORDER BY 1 LIMIT 1")
            .iter()
            .any(|u| u.contains("customers.ssn") && u.contains("in ORDER BY"))
    );
}

#[test]
fn subqueries_feed_what_surrounds_them() {
    assert_eq!(
        uses("SELECT id FROM orders WHERE note IN (SELECT email FROM customers)"),
        [
            "orders.note? @ in WHERE (in IN or ANY (subquery))",
            // Unqualified inside the subquery: the outer query's relation may have it too.
            "customers.email? orders.email? @ in WHERE (in IN or ANY (subquery))"
        ]
    );
    // EXISTS looks only at whether there are rows: its select list is no use.
    assert_eq!(
        uses(
            "SELECT id FROM orders o WHERE EXISTS (SELECT * FROM customers c WHERE c.id = o.customer_id)"
        ),
        [
            "customers.id @ in WHERE (in operator =)",
            "orders.customer_id @ in WHERE (in operator =)"
        ]
    );
    // A subquery's filter is a use at its own level.
    assert_eq!(
        uses("SELECT n FROM (SELECT name AS n FROM customers WHERE ssn = '1') s"),
        ["customers.ssn? @ in WHERE (in operator =)"]
    );
}

#[test]
fn counting_a_masked_column_reveals_nothing() {
    assert_eq!(
        outputs("SELECT count(email), count(*) FROM customers"),
        ["~ ", "~ "]
    );
    assert!(
        uses("SELECT count(email) FROM customers GROUP BY name")
            .iter()
            .all(|u| !u.contains("email"))
    );
    for sql in [
        "SELECT count(DISTINCT email) FROM customers",
        "SELECT count(email) FILTER (WHERE ssn > '1') FROM customers",
        "SELECT count(lower(email)) FROM customers",
        "SELECT public.count(email) FROM customers",
    ] {
        let l = lineage(sql);
        assert!(
            !l.uses.is_empty() || l.untraceable.is_some(),
            "{sql}: {l:?}"
        );
    }
}

#[test]
fn star_expansion_follows_joins_and_refuses_row_values() {
    assert_eq!(
        outputs("SELECT * FROM customers JOIN orders USING (id)"),
        [
            "= customers.id? orders.id?",
            "* customers - id",
            "* orders - id"
        ]
    );
    assert!(
        untraceable("SELECT (c).* FROM (SELECT c FROM customers c) s").contains("star expansion")
    );
    assert!(untraceable("SELECT * FROM customers NATURAL JOIN orders").contains("NATURAL"));
    assert!(
        untraceable("SELECT * FROM customers UNION SELECT * FROM archive")
            .contains("set operation")
    );
    // A sort key naming an output of `*` is that relation's column of the name, not all of
    // them (the name is both an output and an input column: recorded once).
    assert_eq!(
        uses("SELECT * FROM customers ORDER BY id"),
        ["customers.id? @ in ORDER BY"]
    );
    assert_eq!(
        uses("SELECT * FROM customers AS x(a, b) ORDER BY a"),
        ["customers.* @ in ORDER BY"]
    );
    // Renamed columns: a name says nothing about which column it is.
    assert_eq!(
        uses("SELECT a FROM customers AS x(a, b, c) WHERE c = 'x'"),
        ["customers.* @ in WHERE (in operator =)"]
    );
}

#[test]
fn what_cannot_be_placed_is_untraceable() {
    for (sql, why) in [
        ("SELECT public.f(id) FROM customers", "calls public.f"),
        ("SELECT my_func(id) FROM customers", "calls my_func"),
        (
            "SELECT query FROM pg_stat_get_activity(NULL)",
            "calls pg_stat_get_activity",
        ),
        ("SELECT id::mytype FROM customers", "casts to mytype"),
        (
            "SELECT id OPERATOR(public.===) 1 FROM customers",
            "uses operator ===",
        ),
        ("SELECT x.email FROM customers c", "not found in scope"),
        ("SELECT nope FROM (SELECT 1 AS one) s", "not found in scope"),
        (
            "SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int)",
            "in FROM is not followed",
        ),
        (
            "MERGE INTO t USING customers c ON t.id = c.id WHEN MATCHED THEN DELETE",
            "MERGE",
        ),
    ] {
        assert!(
            untraceable(sql).contains(why),
            "{sql}: {}",
            untraceable(sql)
        );
    }
}

#[test]
fn writes_and_stored_values() {
    let l =
        lineage("UPDATE orders SET status = (SELECT email FROM customers LIMIT 1) WHERE id = 1");
    assert_eq!(l.writes, [ObjectName::new(None, "orders")]);
    assert!(
        l.uses
            .iter()
            .any(|u| refs(&u.refs).contains("customers.email")
                && u.position.clause == Clause::Stored)
    );
    let l = lineage("INSERT INTO orders (note) SELECT email FROM customers");
    assert!(l.uses.iter().any(|u| u.position.clause == Clause::Stored));
    let l = lineage("SELECT ssn INTO t FROM customers");
    assert!(l.outputs.is_none());
    assert!(l.uses.iter().any(|u| u.position.clause == Clause::Stored));
    // RETURNING shows the target's columns.
    assert_eq!(
        outputs("DELETE FROM orders WHERE id = 1 RETURNING status"),
        ["= orders.status?"]
    );
    // The target of UPDATE is the table, even when a CTE has its name.
    let l = lineage(
        "WITH customers AS (SELECT 1 AS ssn) UPDATE customers SET name = 'x' RETURNING lower(ssn)",
    );
    assert!(l.uses.iter().any(|u| refs(&u.refs) == "customers.ssn?"));
}

#[test]
fn settings_are_untraceable_values_not_untraceable_statements() {
    assert_eq!(
        outputs(
            "SELECT current_setting('search_path'), CASE WHEN amname != current_setting('default_table_access_method') THEN amname END FROM pg_am"
        ),
        ["?", "?"]
    );
    assert_eq!(
        outputs("SELECT s FROM (SELECT current_setting('x') AS s) q"),
        ["?"]
    );
    // Still no way around a masked column.
    assert!(!uses("SELECT current_setting(email) FROM customers").is_empty());
}

#[test]
fn recursive_ctes_reach_a_fixed_point() {
    assert_eq!(
        outputs(
            "WITH RECURSIVE r(n, e) AS (SELECT 1, email FROM customers UNION ALL SELECT n + 1, e FROM r WHERE n < 3) SELECT e FROM r"
        ),
        ["= customers.email?"]
    );
}

#[test]
fn plans_and_settings_show_no_table_data() {
    assert_eq!(outputs("EXPLAIN SELECT id FROM customers"), ["~ "]);
    assert_eq!(
        uses("EXPLAIN SELECT id FROM customers WHERE email = 'x'"),
        ["customers.email? @ in WHERE (in operator =)"]
    );
    assert_eq!(outputs("SHOW search_path"), ["~ "]);
    assert_eq!(outputs("SHOW ALL"), ["~ ", "~ ", "~ "]);
    assert!(of_sql("SHOW app.secret").0.is_none());
    // A cursor: what it reads is judged now, what it shows later has no lineage.
    let l = lineage("DECLARE k CURSOR FOR SELECT id FROM customers WHERE ssn = '1'");
    assert!(l.outputs.is_none());
    assert_eq!(l.uses.len(), 1);
}

/// Review (red team): a column alias list on a parenthesized join renames its columns; the
/// renamed names must still lead to what they are.
#[test]
fn a_join_alias_list_renames_the_join_columns() {
    for sql in [
        "SELECT count(*) FROM (customers c JOIN orders o ON o.customer_id = c.id) AS j(n, nm, e, p, s) WHERE j.s LIKE '1%'",
        "SELECT c2.id FROM customers c2, (customers c CROSS JOIN (SELECT 1) z) AS j(n, nm, e, p, s, cc) WHERE ascii(substr(j.s, 1, 1)) = 49",
        "SELECT count(*) FROM (customers c JOIN orders o USING (id)) AS j(a, b, c) GROUP BY j.c",
        "SELECT count(*) FROM (customers c NATURAL JOIN orders o) AS j(a, b) WHERE j.b = 'x'",
    ] {
        let l = lineage(sql);
        assert!(
            l.uses.iter().any(|u| refs(&u.refs).contains("customers.*")),
            "{sql}: {:?}",
            l.uses
        );
    }
    // Named columns keep their place: `e` is the subquery's e-mail.
    assert!(
        uses("SELECT j.x FROM ((SELECT id, email FROM customers) s JOIN orders o ON o.customer_id = s.id) AS j(x, e) WHERE j.e = 'a'")
            .iter()
            .any(|u| u.starts_with("customers.email?"))
    );
    // `USING (id) AS u` names the merged column.
    assert_eq!(
        uses("SELECT 1 FROM customers c JOIN orders o USING (id) AS u WHERE u.id = 1"),
        [
            "customers.id? orders.id? @ in a join condition (in USING)",
            "customers.id? orders.id? @ in WHERE (in operator =)"
        ]
    );
}
