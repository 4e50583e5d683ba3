//! The scope of a walk: values, the columns of derived `FROM` items, query levels, and what
//! `*` expands to.

use std::rc::Rc;

use pg_query::protobuf;

use super::string;
use crate::sql::ObjectName;
use crate::sql::lineage::{Output, Ref, absorb};

/// A value's lineage: what it may read, and whether it is computed (rather than one of them
/// passed through unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Val {
    pub(super) refs: Vec<Ref>,
    pub(super) computed: bool,
    /// Something in it cannot be traced (it reads no table data): masked as unknown.
    pub(super) unknown: bool,
}

impl Val {
    pub(super) fn output(self) -> Output {
        if self.unknown {
            Output::Unknown
        } else if self.computed {
            Output::Computed(self.refs)
        } else {
            Output::Value(self.refs)
        }
    }

    pub(super) fn absorb(&mut self, other: Val) {
        absorb(&mut self.refs, other.refs);
        self.computed |= other.computed;
        self.unknown |= other.unknown;
    }
}

/// A column of a derived `FROM` item (or of a query's result).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Col {
    /// One column; its name, when the walk is sure of it.
    One(Option<String>, Val),
    /// Every column of a relation (`*`) but those in `except` (shown by a `USING` join
    /// first). `renamed`: a column alias list renamed them, so a name says nothing about
    /// which one it is.
    Star {
        relation: ObjectName,
        renamed: bool,
        except: Vec<String>,
    },
}

impl Col {
    /// What the column (or columns) of this entry called `name` may be; `None` if none is.
    pub(super) fn lookup(&self, name: &str) -> Option<Val> {
        match self {
            Col::One(n, val) => n.as_deref().is_none_or(|n| n == name).then(|| val.clone()),
            Col::Star {
                relation,
                renamed: false,
                except,
            } => (!except.iter().any(|e| e == name)).then(|| Val {
                refs: vec![Ref::Column {
                    relation: relation.clone(),
                    column: name.to_owned(),
                    certain: false,
                }],
                computed: false,
                unknown: false,
            }),
            Col::Star {
                relation,
                renamed: true,
                ..
            } => Some(Val {
                refs: vec![Ref::Whole(relation.clone())],
                computed: false,
                unknown: false,
            }),
        }
    }

    pub(super) fn whole(&self) -> Val {
        match self {
            Col::One(_, val) => val.clone(),
            Col::Star { relation, .. } => Val {
                refs: vec![Ref::Whole(relation.clone())],
                computed: false,
                unknown: false,
            },
        }
    }

    pub(super) fn output(&self) -> Output {
        match self {
            Col::One(_, val) => val.clone().output(),
            Col::Star {
                relation, except, ..
            } => Output::Star {
                relation: relation.clone(),
                except: except.clone(),
            },
        }
    }
}

/// What a query gives its reader: its columns, in order.
#[derive(Clone, Debug, Default)]
pub(super) struct Query {
    pub(super) columns: Vec<Col>,
}

impl Query {
    /// The query's columns as a derived `FROM` item, renamed by `colnames` (an alias list).
    pub(super) fn as_item(&self, colnames: &[protobuf::Node]) -> Rc<Derived> {
        let mut columns = self.columns.clone();
        if !colnames.is_empty() {
            // Renaming is by position, which a `*` hides: from the first one on, names say
            // nothing.
            let mut positions_known = true;
            for (i, col) in columns.iter_mut().enumerate() {
                match col {
                    Col::Star { renamed, .. } => {
                        *renamed = true;
                        positions_known = false;
                    }
                    Col::One(name, _) if positions_known => {
                        if let Some(alias) = colnames.get(i).and_then(string) {
                            *name = Some(alias.to_owned());
                        }
                    }
                    Col::One(name, _) => *name = None,
                }
            }
        }
        Rc::new(Derived { columns })
    }

    /// Everything the query's columns may read, computed if any is.
    pub(super) fn whole(&self) -> Val {
        let mut v = Val::default();
        for c in &self.columns {
            v.absorb(c.whole());
        }
        v
    }
}

/// A `FROM` item that is not a table or view: its columns.
#[derive(Debug)]
pub(super) struct Derived {
    pub(super) columns: Vec<Col>,
}

impl Derived {
    pub(super) fn lookup(&self, name: &str) -> Option<Val> {
        let mut found = None::<Val>;
        for c in &self.columns {
            if let Some(v) = c.lookup(name) {
                found.get_or_insert_with(Val::default).absorb(v);
            }
        }
        found
    }

    pub(super) fn whole(&self) -> Val {
        let mut v = Val::default();
        for c in &self.columns {
            v.absorb(c.whole());
        }
        v
    }
}

#[derive(Debug)]
pub(super) enum Source {
    Relation(ObjectName),
    Derived(Rc<Derived>),
}

#[derive(Debug)]
pub(super) struct Item {
    pub(super) alias: String,
    pub(super) source: Source,
}

impl Item {
    pub(super) fn whole(&self) -> Val {
        match &self.source {
            Source::Relation(rel) => Val {
                refs: vec![Ref::Whole(rel.clone())],
                computed: false,
                unknown: false,
            },
            Source::Derived(d) => d.whole(),
        }
    }

    /// The columns `*` expands to.
    pub(super) fn star(&self) -> Vec<Col> {
        match &self.source {
            Source::Relation(rel) => vec![Col::Star {
                relation: rel.clone(),
                renamed: false,
                except: Vec::new(),
            }],
            Source::Derived(d) => d.columns.clone(),
        }
    }
}

/// How a level's `FROM` list is put together, for `*`: items and joins, in order.
#[derive(Debug)]
pub(super) enum Entry {
    /// The item at this index of the level.
    Item(usize),
    Join {
        left: Box<Entry>,
        right: Box<Entry>,
        /// `USING (…)` columns: `*` shows them once, first.
        using: Vec<String>,
        natural: bool,
    },
}

/// One query level: its `FROM` items and how they are joined.
#[derive(Debug, Default)]
pub(super) struct Level {
    pub(super) items: Vec<Item>,
    pub(super) entries: Vec<Entry>,
}

pub(super) struct Cte {
    pub(super) name: String,
    pub(super) item: Rc<Derived>,
}

/// The columns `*` expands an entry of a `FROM` list to, as PostgreSQL orders them: a join's
/// `USING` columns once and first, then each side's other columns. Sets `natural` for a
/// NATURAL join (which columns merge, only the catalog knows).
pub(super) fn expand(entry: &Entry, items: &[Item], out: &mut Vec<Col>, natural: &mut bool) {
    match entry {
        Entry::Item(i) => {
            if let Some(item) = items.get(*i) {
                out.extend(item.star());
            }
        }
        Entry::Join {
            left,
            right,
            using,
            natural: is_natural,
        } => {
            *natural |= *is_natural;
            let mut l = Vec::new();
            let mut r = Vec::new();
            expand(left, items, &mut l, natural);
            expand(right, items, &mut r, natural);
            if using.is_empty() {
                out.extend(l);
                out.extend(r);
                return;
            }
            for name in using {
                let mut v = Val::default();
                for c in l.iter().chain(&r) {
                    if let Some(found) = c.lookup(name) {
                        v.absorb(found);
                    }
                }
                out.push(Col::One(Some(name.clone()), v));
            }
            // The other columns of each side: a named one unless USING names it, a relation's
            // `*` without the USING columns (renamed ones hide which those are).
            for c in l.into_iter().chain(r) {
                match c {
                    Col::One(Some(n), _) if using.contains(&n) => {}
                    Col::Star { renamed: true, .. } => *natural = true,
                    Col::Star {
                        relation,
                        renamed: false,
                        mut except,
                    } => {
                        except.extend(using.iter().cloned());
                        out.push(Col::Star {
                            relation,
                            renamed: false,
                            except,
                        });
                    }
                    other => out.push(other),
                }
            }
        }
    }
}
