//! Options as GNU `getopt_long` reads them, from a one-line description of a program's options.
//!
//! The description lists every option, separated by spaces: `n|lines=` is `-n`/`--lines` with
//! a value, `v` is `-v`, `|debug` is `--debug`, `|color?` is `--color[=WHEN]` (an optional
//! value, attached only), `#` allows `-NUM` (`head -5`). An option not listed is not
//! understood: a newer version's option could write a file or run a program, so the program is
//! judged at its worst. Long options may be abbreviated to any unambiguous prefix, as
//! `getopt_long` allows (`--out` is `--output`).

use crate::command::words::Arg;

/// Whether an option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    None,
    Required,
    /// Attached only: `-w5`, `--width=5`.
    Optional,
}

#[derive(Clone, Debug)]
struct Flag {
    short: Option<char>,
    long: Option<&'static str>,
    value: Value,
}

impl Flag {
    /// The name handlers see: the long name when there is one.
    fn name(&self) -> &'static str {
        match (self.long, self.short) {
            (Some(l), _) => l,
            (None, Some(c)) => short_name(c),
            (None, None) => "",
        }
    }
}

/// A program's options.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    flags: Vec<Flag>,
    /// `-NUM` is an option (named `#`).
    digits: bool,
}

/// Where options may appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    /// Anywhere before `--` (GNU argument permutation).
    Permute,
    /// Only before the first operand (`env`, `sudo`, `xargs`, `nice`: the rest is a command).
    Posix,
}

/// One parsed argument.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// An option, by name (long name if it has one, else the letter), and its value.
    Opt(&'static str, Option<Arg>),
    /// An operand.
    Operand(Arg),
}

/// A parsed command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Parsed {
    pub(crate) items: Vec<Item>,
}

impl Parsed {
    /// Whether option `name` was given.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i, Item::Opt(n, _) if *n == name))
    }

    /// Whether any of `names` was given.
    pub(crate) fn any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.has(n))
    }

    /// The values given to option `name`, in order (an option given without its optional
    /// value yields nothing).
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Arg> + 'a {
        self.items.iter().filter_map(move |i| match i {
            Item::Opt(n, Some(v)) if *n == name => Some(v),
            _ => None,
        })
    }

    /// The operands, in order.
    pub(crate) fn operands(&self) -> Vec<&Arg> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Operand(a) => Some(a),
                Item::Opt(..) => None,
            })
            .collect()
    }
}

impl Options {
    /// Reads a description (see the module documentation). Panics on a malformed description,
    /// which is a bug in the built-in table (checked by a test).
    pub(crate) fn new(spec: &'static str) -> Self {
        let mut options = Options::default();
        for entry in spec.split_whitespace() {
            if entry == "#" {
                options.digits = true;
                continue;
            }
            let (entry, value) = match entry.as_bytes().last() {
                Some(b'=') => (&entry[..entry.len() - 1], Value::Required),
                Some(b'?') => (&entry[..entry.len() - 1], Value::Optional),
                _ => (entry, Value::None),
            };
            let (short, long) = match entry.split_once('|') {
                Some((s, l)) => (s, Some(l)),
                None => (entry, None),
            };
            let mut chars = short.chars();
            let short = chars.next();
            assert!(
                chars.next().is_none() && (short.is_some() || long.is_some_and(|l| !l.is_empty())),
                "bad option description `{entry}` in `{spec}`"
            );
            options.flags.push(Flag { short, long, value });
        }
        options
    }

    fn short(&self, c: char) -> Option<&Flag> {
        self.flags.iter().find(|f| f.short == Some(c))
    }

    /// The long option `name` stands for: an exact name, or the one option it abbreviates.
    fn long(&self, name: &str) -> Result<&Flag, String> {
        let longs = || self.flags.iter().filter(|f| f.long.is_some());
        if let Some(f) = longs().find(|f| f.long == Some(name)) {
            return Ok(f);
        }
        let mut candidates = longs().filter(|f| f.long.is_some_and(|l| l.starts_with(name)));
        match (candidates.next(), candidates.next()) {
            (Some(f), None) => Ok(f),
            (Some(_), Some(_)) => Err(format!("`--{name}` is ambiguous")),
            (None, _) => Err(format!("`--{name}` is not an option sod knows")),
        }
    }

    /// Parses `args`. An error says why the options are not known: an option not described,
    /// or an argument known only at run time where an option could be.
    pub(crate) fn parse(&self, args: &[Arg], style: Style) -> Result<Parsed, String> {
        let mut parsed = Parsed::default();
        let mut args = args.iter();
        let mut options_end = false;
        while let Some(arg) = args.next() {
            let text = match arg {
                _ if options_end => {
                    parsed.items.push(Item::Operand(arg.clone()));
                    continue;
                }
                // `"/var/log/$f"` is one operand; so is the first word of `/x/$f` where only
                // the first operand ends the options.
                Arg::Runtime { lead, .. }
                    if arg.surely_operand()
                        || (style == Style::Posix
                            && !lead.is_empty()
                            && !lead.starts_with('-')) =>
                {
                    parsed.items.push(Item::Operand(arg.clone()));
                    options_end = style == Style::Posix;
                    continue;
                }
                Arg::Runtime { why, .. } => {
                    return Err(format!("{why}, and could be any option"));
                }
                Arg::Literal { text, .. } => text.as_str(),
            };
            if text == "--" {
                options_end = true;
            } else if let Some(long) = text.strip_prefix("--") {
                let (name, attached) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(Arg::literal(v))),
                    None => (long, None),
                };
                let flag = self.long(name)?;
                let value = match (flag.value, attached) {
                    (Value::None, Some(_)) => {
                        return Err(format!("`--{name}` takes no value"));
                    }
                    (Value::Required, None) => Some(
                        args.next()
                            .cloned()
                            .ok_or_else(|| format!("`--{name}` needs a value"))?,
                    ),
                    (_, attached) => attached,
                };
                parsed.items.push(Item::Opt(flag.name(), value));
            } else if text.len() > 1 && text.starts_with('-') {
                self.cluster(&text[1..], &mut args, &mut parsed)?;
            } else {
                parsed.items.push(Item::Operand(arg.clone()));
                if style == Style::Posix {
                    options_end = true;
                }
            }
        }
        Ok(parsed)
    }

    /// `-abc`, `-n5`, `-n 5`, `-5`.
    fn cluster<'a>(
        &self,
        cluster: &str,
        rest: &mut impl Iterator<Item = &'a Arg>,
        parsed: &mut Parsed,
    ) -> Result<(), String> {
        if self.digits && cluster.bytes().all(|b| b.is_ascii_digit()) {
            parsed
                .items
                .push(Item::Opt("#", Some(Arg::literal(cluster))));
            return Ok(());
        }
        for (i, c) in cluster.char_indices() {
            let flag = self
                .short(c)
                .ok_or_else(|| format!("`-{c}` is not an option sod knows"))?;
            let attached = &cluster[i + c.len_utf8()..];
            match flag.value {
                Value::None => parsed.items.push(Item::Opt(flag.name(), None)),
                Value::Optional => {
                    let value = (!attached.is_empty()).then(|| Arg::literal(attached));
                    parsed.items.push(Item::Opt(flag.name(), value));
                    return Ok(());
                }
                Value::Required => {
                    let value = if attached.is_empty() {
                        rest.next()
                            .cloned()
                            .ok_or_else(|| format!("`-{c}` needs a value"))?
                    } else {
                        Arg::literal(attached)
                    };
                    parsed.items.push(Item::Opt(flag.name(), Some(value)));
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The name of a short option without a long one: `-C` is `"C"`.
fn short_name(c: char) -> &'static str {
    const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    match LETTERS.find(c) {
        Some(i) => &LETTERS[i..i + 1],
        None => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Arg> {
        line.split_whitespace().map(Arg::literal).collect()
    }

    #[test]
    fn reads_clusters_values_and_abbreviations() {
        let o = Options::new("n|lines= q|quiet v |verbose # |color? o|output=");
        let p = o
            .parse(&args("-qn5 f --lin 3 -- -v"), Style::Permute)
            .expect("parses");
        assert!(p.has("quiet"));
        assert_eq!(p.values("lines").count(), 2);
        assert_eq!(p.operands().len(), 2);
        let p = o
            .parse(&args("-10 --color --out=x"), Style::Permute)
            .expect("parses");
        assert!(p.has("#") && p.has("color"));
        assert_eq!(p.values("output").next(), Some(&Arg::literal("x")));
        assert!(o.parse(&args("-x"), Style::Permute).is_err());
        assert!(o.parse(&args("--ver"), Style::Permute).is_ok());
        assert!(o.parse(&args("--nope"), Style::Permute).is_err());
        // Ambiguous: `--o` could be `--output` only here; with two candidates it is refused.
        let two = Options::new("|output= |other");
        assert!(two.parse(&args("--o x"), Style::Permute).is_err());
        assert!(two.parse(&args("--ou x"), Style::Permute).is_ok());
    }

    #[test]
    fn posix_style_stops_at_the_first_operand() {
        let o = Options::new("n=");
        let p = o
            .parse(&args("-n 1 cmd -n 2"), Style::Posix)
            .expect("parses");
        assert_eq!(p.operands().len(), 3);
        let p = o.parse(&args("cmd -n 2"), Style::Permute).expect("parses");
        assert_eq!(p.operands().len(), 1);
    }

    #[test]
    fn runtime_words_where_options_may_be_are_refused() {
        let o = Options::new("n=");
        let mut a = args("-n");
        a.push(Arg::runtime("`$N`"));
        assert!(
            o.parse(&a, Style::Permute).is_ok(),
            "a value may be anything"
        );
        let mut a = args("--");
        a.push(Arg::runtime("`$f`"));
        assert!(
            o.parse(&a, Style::Permute).is_ok(),
            "after `--` it is an operand"
        );
        assert!(o.parse(&[Arg::runtime("`$f`")], Style::Permute).is_err());
    }
}
