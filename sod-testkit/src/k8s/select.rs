//! Label and field selectors, and the filter a list or watch applies with them.
//!
//! Label selectors have the API server's syntax (`a=b`, `a==b`, `a!=b`, `a`, `!a`,
//! `a in (x,y)`, `a notin (x)`). Field selectors take `=`, `==` and `!=` on any dotted path of
//! the object (`metadata.name`, `status.phase`); the real server allows only a few fields per
//! resource and refuses the others, this one does not.

use serde_json::Value;

use super::status::ApiError;
use super::wire::Query;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    /// Whether `value` (the label or field, `None` when absent) satisfies the requirement.
    fn matches(&self, value: Option<&str>) -> bool {
        let listed = || value.is_some_and(|v| self.values.iter().any(|x| x == v));
        match self.op {
            Op::Eq | Op::In => listed(),
            // As in apimachinery: `!=` and `notin` also match objects without the label.
            Op::NotEq | Op::NotIn => !listed(),
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
        }
    }
}

/// A parsed selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Selector(Vec<Requirement>);

impl Selector {
    /// Parses a label selector.
    pub(super) fn labels(text: &str) -> Result<Selector, String> {
        split_terms(text)?
            .into_iter()
            .map(|term| parse_label_term(&term))
            .collect::<Result<_, _>>()
            .map(Selector)
    }

    /// Parses a field selector.
    pub(super) fn fields(text: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, op, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, Op::NotEq, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, Op::Eq, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, Op::Eq, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            requirements.push(Requirement {
                key: key.trim().to_owned(),
                op,
                values: vec![value.trim().to_owned()],
            });
        }
        Ok(Selector(requirements))
    }

    fn matches_labels(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.0
            .iter()
            .all(|r| r.matches(labels.get(&r.key).and_then(Value::as_str)))
    }

    fn matches_fields(&self, object: &Value) -> bool {
        self.0.iter().all(|r| {
            // An absent field reads as "", as a field set of a real object would have it.
            let value = field(object, &r.key).unwrap_or_default();
            r.matches(Some(&value))
        })
    }
}

/// The value at a dotted path, as text.
fn field(object: &Value, path: &str) -> Option<String> {
    let value = path
        .split('.')
        .try_fold(object, |value, key| value.get(key))?;
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
        other => Some(other.to_string()),
    }
}

/// Splits on the commas outside `( )`.
fn split_terms(text: &str) -> Result<Vec<String>, String> {
    let (mut terms, mut current, mut depth) = (Vec::new(), String::new(), 0usize);
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced parentheses in '{text}'"))?;
            }
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in '{text}'"));
    }
    terms.push(current);
    Ok(terms
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect())
}

fn parse_label_term(term: &str) -> Result<Requirement, String> {
    let requirement = |key: &str, op, values: Vec<String>| Requirement {
        key: key.trim().to_owned(),
        op,
        values,
    };
    if let Some(key) = term.strip_prefix('!') {
        return Ok(requirement(key, Op::NotExists, vec![]));
    }
    for (word, op) in [(" notin ", Op::NotIn), (" in ", Op::In)] {
        if let Some((key, set)) = term.split_once(word) {
            let set = set
                .trim()
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("unable to parse requirement: '{term}'"))?;
            let values = set.split(',').map(|v| v.trim().to_owned()).collect();
            return Ok(requirement(key, op, values));
        }
    }
    for (symbol, op) in [("!=", Op::NotEq), ("==", Op::Eq), ("=", Op::Eq)] {
        if let Some((key, value)) = term.split_once(symbol) {
            return Ok(requirement(key, op, vec![value.trim().to_owned()]));
        }
    }
    Ok(requirement(term, Op::Exists, vec![]))
}

/// Which objects a list or watch is about: a namespace (or all), and its selectors.
#[derive(Debug, Clone, Default)]
pub(super) struct Filter {
    namespace: Option<String>,
    labels: Selector,
    fields: Selector,
}

impl Filter {
    /// From the request's namespace and its `labelSelector` and `fieldSelector`.
    pub(super) fn new(namespace: Option<&str>, query: &Query) -> Result<Filter, ApiError> {
        let labels = Selector::labels(query.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        let fields = Selector::fields(query.get("fieldSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?;
        Ok(Filter {
            namespace: namespace.map(str::to_owned),
            labels,
            fields,
        })
    }

    /// Also requires `metadata.name` to be `name` (a watch at an object's path).
    pub(super) fn named(mut self, name: &str) -> Filter {
        self.fields.0.push(Requirement {
            key: "metadata.name".to_owned(),
            op: Op::Eq,
            values: vec![name.to_owned()],
        });
        self
    }

    /// Whether `object` is in the list.
    pub(super) fn matches(&self, object: &Value) -> bool {
        let in_namespace = self.namespace.as_deref().is_none_or(|namespace| {
            object["metadata"]["namespace"].as_str().unwrap_or_default() == namespace
        });
        in_namespace && self.labels.matches_labels(object) && self.fields.matches_fields(object)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(labels: Value, phase: &str) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "default", "labels": labels},
               "status": {"phase": phase}})
    }

    #[test]
    fn label_selectors() {
        let object = pod(json!({"app": "web", "tier": "front"}), "Running");
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=db",
            "app",
            "!db",
            "app in (db, web)",
            "tier notin (back),app=web",
            "missing!=x",
        ];
        for text in yes {
            let selector = Selector::labels(text).expect("parses");
            assert!(selector.matches_labels(&object), "{text}");
        }
        for text in ["app=db", "!app", "db", "app notin (web)", "app in (db)"] {
            let selector = Selector::labels(text).expect("parses");
            assert!(!selector.matches_labels(&object), "{text}");
        }
        assert!(Selector::labels("app in (web").is_err());
    }

    #[test]
    fn field_selectors() {
        let object = pod(json!({}), "Running");
        for (text, expected) in [
            ("metadata.name=web-1", true),
            ("metadata.name==web-2", false),
            ("metadata.name!=web-2,status.phase=Running", true),
            ("spec.nodeName=", true),
        ] {
            let selector = Selector::fields(text).expect("parses");
            assert_eq!(selector.matches_fields(&object), expected, "{text}");
        }
        assert!(Selector::fields("metadata.name").is_err());
    }

    #[test]
    fn filter_checks_the_namespace() {
        let query = Query::parse(Some("labelSelector=app%3Dweb"));
        let object = pod(json!({"app": "web"}), "Running");
        let in_default = Filter::new(Some("default"), &query).expect("filter");
        let in_other = Filter::new(Some("other"), &query).expect("filter");
        let everywhere = Filter::new(None, &query).expect("filter");
        assert!(in_default.matches(&object));
        assert!(!in_other.matches(&object));
        assert!(everywhere.matches(&object));
    }
}
