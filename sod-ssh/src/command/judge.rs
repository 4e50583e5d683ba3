//! Judging a parsed command line: walking the model in the order the shell runs it, keeping
//! what the shell keeps (its working directory, its functions, changes to its environment),
//! and adding up what each command does into a [`Verdict`].

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use sod_core::OperationKind;

use super::parse::{self, Command, LoopHead, RedirectOp, RedirectTarget, Script, Simple, Word};
use super::paths::{self, Dirs};
use super::programs::Programs;
use super::words::{self, Arg};
use super::{Context, builtins};

/// How many commands one line may make us judge: function bodies are judged at each call and
/// loop bodies twice, so a short line can ask for many.
const MAX_STEPS: usize = 10_000;

/// What a command line does, added up.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) kind: Option<OperationKind>,
    pub(crate) objects: Vec<String>,
    pub(crate) unknown_objects: Option<String>,
    pub(crate) programs: Vec<String>,
    pub(crate) note: Option<String>,
}

impl Verdict {
    pub(crate) fn raise(&mut self, kind: OperationKind) {
        self.kind = Some(self.kind.map_or(kind, |k| k.max(kind)));
    }

    fn object(&mut self, path: String) {
        if !self.objects.contains(&path) {
            self.objects.push(path);
        }
    }

    pub(crate) fn objects_unknown(&mut self, why: impl Into<String>) {
        if self.unknown_objects.is_none() {
            self.unknown_objects = Some(why.into());
        }
    }

    /// Something was not understood: the whole line is [`Unknown`](OperationKind::Unknown).
    pub(crate) fn not_understood(&mut self, why: impl Into<String>) {
        let why = why.into();
        self.raise(OperationKind::Unknown);
        self.objects_unknown(format!("not understood: {why}"));
        if self.note.is_none() {
            self.note = Some(why);
        }
    }

    fn program(&mut self, name: &str) {
        if !self.programs.iter().any(|p| p == name) {
            self.programs.push(name.to_owned());
        }
    }
}

/// What the shell keeps between commands.
#[derive(Clone, Debug)]
pub(crate) struct Shell {
    /// Where relative paths start.
    pub(crate) cwd: Dirs,
    /// Why programs may not do what their names say, if so: the environment was changed
    /// (`PATH`, `LD_PRELOAD`, `BASH_ENV`, …) or a shell variable that changes the shell itself
    /// (`HOME`, `CDPATH`, `PS4`).
    pub(crate) env: Option<String>,
    /// `set -a`: every assignment is exported.
    pub(crate) allexport: bool,
    /// Functions defined so far; a name defined twice may be either body.
    functions: HashMap<String, Vec<Rc<Command>>>,
    /// The functions being called, innermost last (to stop at recursion).
    calling: Vec<String>,
}

impl Shell {
    /// A new shell in `cwd` with the environment `env` (functions are not inherited).
    pub(crate) fn new(cwd: Dirs, env: Option<String>) -> Self {
        Shell {
            cwd,
            env,
            allexport: false,
            functions: HashMap::new(),
            calling: Vec::new(),
        }
    }

    /// Taints the environment: every later program may behave otherwise.
    pub(crate) fn taint(&mut self, why: impl Into<String>) {
        if self.env.is_none() {
            self.env = Some(why.into());
        }
    }
}

/// The working directories after a command that succeeded, and after one that failed.
pub(crate) type Outcome = (Dirs, Dirs);

fn same(sh: &Shell) -> Outcome {
    (sh.cwd.clone(), sh.cwd.clone())
}

/// Which meanings of a command name to consider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Functions, then builtins, then programs: a command typed at the shell.
    All,
    /// Builtins, then programs (`command name`).
    NoFunctions,
    /// Builtins only (`builtin name`).
    Builtin,
    /// Programs only: what `exec`, `env`, `sudo`, `xargs`, `find -exec` run.
    Program,
}

/// Walks a parsed line.
pub(crate) struct Judge<'a> {
    pub(crate) cx: &'a Context,
    programs: &'a Programs,
    pub(crate) verdict: Verdict,
    steps: usize,
    /// How deeply nested the script being judged is (`sh -c`, `eval`, `$(…)`).
    pub(crate) depth: usize,
    /// Functions defined: judged at each call, and once more at the end if never called (a
    /// function can be called where we do not see it: `command_not_found_handle`, a trap).
    defined: Vec<Rc<Command>>,
    called: HashSet<*const Command>,
}

/// Judges a whole command line.
pub(crate) fn line(line: &str, cx: &Context, programs: &Programs) -> Verdict {
    let mut judge = Judge {
        cx,
        programs,
        verdict: Verdict::default(),
        steps: 0,
        depth: 0,
        defined: Vec::new(),
        called: HashSet::new(),
    };
    match parse::script(line, 0) {
        Err(why) => judge.verdict.not_understood(why),
        Ok(script) => {
            let mut sh = Shell::new(Dirs::one(cx.working_dir.clone()), None);
            judge.script(&mut sh, &script);
            judge.uncalled_functions();
        }
    }
    let mut verdict = judge.verdict;
    // A line that runs nothing (empty, comments, assignments) reads nothing either.
    verdict.kind.get_or_insert(OperationKind::Read);
    verdict
}

impl Judge<'_> {
    /// Counts one more command; false (and not understood) past the limit.
    fn step(&mut self) -> bool {
        self.steps += 1;
        if self.steps == MAX_STEPS + 1 {
            self.verdict
                .not_understood(format!("it has more than {MAX_STEPS} commands to judge"));
        }
        self.steps <= MAX_STEPS
    }

    /// Judges a list in `sh`.
    pub(crate) fn script(&mut self, sh: &mut Shell, script: &Script) {
        for item in &script.items {
            if item.background {
                let mut sub = sh.clone();
                self.item(&mut sub, item);
            } else {
                self.item(sh, item);
            }
        }
    }

    /// Judges a script given as text (`eval`, `sh -c`, `trap`) in `sh`.
    pub(crate) fn script_text(&mut self, sh: &mut Shell, text: &str) {
        match parse::script(text, self.depth + 1) {
            Err(why) => self.verdict.not_understood(why),
            Ok(script) => {
                self.depth += 1;
                self.script(sh, &script);
                self.depth -= 1;
            }
        }
    }

    /// `a && b || c`: `b` runs where `a` succeeded, `c` where `a` or `b` failed.
    fn item(&mut self, sh: &mut Shell, item: &parse::Item) {
        let (mut ok, mut failed) = self.pipeline(sh, &item.first);
        for (and, pipeline) in &item.rest {
            if *and {
                sh.cwd = ok;
                let (o, f) = self.pipeline(sh, pipeline);
                ok = o;
                failed = failed.union(&f);
            } else {
                sh.cwd = failed;
                let (o, f) = self.pipeline(sh, pipeline);
                ok = ok.union(&o);
                failed = f;
            }
        }
        sh.cwd = ok.union(&failed);
    }

    /// Each command of a real pipeline runs in a subshell.
    fn pipeline(&mut self, sh: &mut Shell, pipeline: &parse::Pipeline) -> Outcome {
        match pipeline.commands.as_slice() {
            [one] => self.command(sh, one),
            many => {
                for command in many {
                    let mut sub = sh.clone();
                    self.command(&mut sub, command);
                }
                same(sh)
            }
        }
    }

    fn command(&mut self, sh: &mut Shell, command: &Command) -> Outcome {
        if !self.step() {
            return same(sh);
        }
        match command {
            Command::Simple(simple) => self.simple(sh, simple),
            Command::Subshell(script, redirects) => {
                self.redirects(sh, redirects);
                let mut sub = sh.clone();
                self.script(&mut sub, script);
                same(sh)
            }
            Command::Group(script, redirects) => {
                self.redirects(sh, redirects);
                self.script(sh, script);
                same(sh)
            }
            Command::If {
                arms,
                otherwise,
                redirects,
            } => {
                self.redirects(sh, redirects);
                let mut ends: Option<Dirs> = None;
                for (condition, body) in arms {
                    self.script(sh, condition);
                    let after_condition = sh.cwd.clone();
                    self.script(sh, body);
                    ends = Some(ends.map_or(sh.cwd.clone(), |e| e.union(&sh.cwd)));
                    // The next arm is tried where this condition left off.
                    sh.cwd = after_condition;
                }
                if let Some(otherwise) = otherwise {
                    self.script(sh, otherwise);
                }
                sh.cwd = ends.map_or(sh.cwd.clone(), |e| e.union(&sh.cwd));
                same(sh)
            }
            Command::Loop {
                head,
                body,
                redirects,
            } => {
                self.redirects(sh, redirects);
                let start = sh.cwd.clone();
                self.iteration(sh, head, body);
                if sh.cwd != start {
                    // Later iterations start where this one ended: anywhere.
                    sh.cwd = Dirs::unknown("a loop changes the working directory");
                    self.iteration(sh, head, body);
                }
                sh.cwd = start.union(&sh.cwd);
                same(sh)
            }
            Command::Case {
                subject,
                patterns,
                arms,
                redirects,
            } => {
                self.redirects(sh, redirects);
                self.expand(sh, subject);
                for p in patterns {
                    self.expand(sh, p);
                }
                let start = sh.cwd.clone();
                let mut ends = start.clone();
                for arm in arms {
                    sh.cwd = start.clone();
                    self.script(sh, arm);
                    ends = ends.union(&sh.cwd);
                }
                sh.cwd = ends;
                same(sh)
            }
            Command::Function { name, body } => {
                self.verdict.raise(OperationKind::Read);
                sh.functions
                    .entry(name.clone())
                    .or_default()
                    .push(Rc::clone(body));
                self.defined.push(Rc::clone(body));
                same(sh)
            }
            Command::Test(test, redirects) => {
                self.redirects(sh, redirects);
                self.verdict.raise(OperationKind::Read);
                for w in &test.files {
                    let arg = self.expand(sh, w);
                    self.path(&sh.cwd.clone(), &arg, OperationKind::Read);
                }
                for w in &test.numbers {
                    let arg = self.expand(sh, w);
                    if !arg.text().is_some_and(is_integer) {
                        self.verdict.not_understood(format!(
                            "`[[ … ]]` compares `{}` as a number, evaluating it as an expression that can run commands",
                            w.source
                        ));
                    }
                }
                for w in &test.names {
                    let arg = self.expand(sh, w);
                    if arg.text().is_none_or(|t| t.contains('[')) {
                        self.verdict.not_understood(format!(
                            "`[[ -v {} ]]` evaluates an array index",
                            w.source
                        ));
                    }
                }
                for w in &test.strings {
                    self.expand(sh, w);
                }
                same(sh)
            }
        }
    }

    /// One pass of a loop: its head, then its body.
    fn iteration(&mut self, sh: &mut Shell, head: &LoopHead, body: &Script) {
        match head {
            LoopHead::Condition(condition) => self.script(sh, condition),
            LoopHead::For { name, words } => {
                for w in words {
                    self.expand(sh, w);
                }
                builtins::assign(sh, name, false);
            }
            LoopHead::Arithmetic => {}
        }
        self.script(sh, body);
    }

    fn simple(&mut self, sh: &mut Shell, simple: &Simple) -> Outcome {
        let args: Vec<Arg> = simple.words.iter().map(|w| self.expand(sh, w)).collect();
        for a in &simple.assignments {
            for v in &a.values {
                self.expand(sh, v);
            }
        }
        self.redirects(sh, &simple.redirects);
        let Some((first, rest)) = args.split_first() else {
            // Only assignments and redirections: the assignments stay in the shell.
            self.verdict.raise(OperationKind::Read);
            for a in &simple.assignments {
                builtins::assign(sh, &a.name, false);
            }
            return same(sh);
        };
        let Some(name) = first.text() else {
            let source = simple.words.first().map_or("", |w| w.source.as_str());
            self.verdict.not_understood(format!(
                "`{source}` is not a literal command name: what runs is known only when it runs"
            ));
            return same(sh);
        };
        // `A=b cmd`: exported to `cmd` only.
        let mut env = None;
        for a in &simple.assignments {
            if let Some(why) = builtins::exported(&a.name) {
                env.get_or_insert(why);
            }
        }
        self.dispatch(sh, name, rest, Lookup::All, env)
    }

    /// Runs `name args` as `lookup` allows, in `sh`, with `env` changed for it alone.
    pub(crate) fn dispatch(
        &mut self,
        sh: &mut Shell,
        name: &str,
        args: &[Arg],
        lookup: Lookup,
        env: Option<String>,
    ) -> Outcome {
        self.verdict.program(name);
        let env = env.or_else(|| sh.env.clone());
        let is_function = lookup == Lookup::All && sh.functions.contains_key(name);
        let builtin = matches!(lookup, Lookup::All | Lookup::NoFunctions | Lookup::Builtin)
            && builtins::is_builtin(name);
        if let Some(why) = &env
            && (!(builtin && builtins::is_inert(name)) || is_function)
        {
            self.verdict.raise(OperationKind::Exec);
            self.verdict.objects_unknown(why.clone());
        }
        if is_function {
            return self.call(sh, name, args);
        }
        if builtin {
            return builtins::run(self, sh, name, args);
        }
        if lookup == Lookup::Builtin {
            self.verdict
                .not_understood(format!("`builtin {name}`: `{name}` is not a shell builtin"));
            return same(sh);
        }
        self.program(sh, name, args);
        same(sh)
    }

    /// Runs `words` (a command name and its arguments) as `lookup` allows: what `exec`,
    /// `command` and `builtin` do.
    pub(crate) fn run_words(&mut self, sh: &mut Shell, words: &[Arg], lookup: Lookup) -> Outcome {
        let Some((first, rest)) = words.split_first() else {
            return same(sh);
        };
        let Some(name) = first.text() else {
            let why = first.why().unwrap_or_default().to_owned();
            self.verdict
                .not_understood(format!("the command name is not literal: {why}"));
            return same(sh);
        };
        self.dispatch(sh, name, rest, lookup, None)
    }

    /// A builtin that behaves as the program of the same name (`test`, `kill`).
    pub(crate) fn program_of_builtin(&mut self, sh: &Shell, name: &str, args: &[Arg]) {
        self.program(sh, name, args);
    }

    /// Calls a function: each of its bodies is judged here, with the caller's state.
    fn call(&mut self, sh: &mut Shell, name: &str, args: &[Arg]) -> Outcome {
        // The arguments are `$1`…, known only when the body runs; their substitutions ran.
        let _ = args;
        if sh.calling.iter().any(|c| c == name) {
            // Recursion: the outer call is judging this body already.
            sh.cwd = Dirs::unknown(format!("the function `{name}` calls itself"));
            return same(sh);
        }
        let bodies = sh.functions.get(name).cloned().unwrap_or_default();
        let start = sh.cwd.clone();
        let mut ends: Option<Dirs> = None;
        sh.calling.push(name.to_owned());
        for body in bodies {
            self.called.insert(Rc::as_ptr(&body));
            sh.cwd = start.clone();
            let (ok, failed) = self.command(sh, &body);
            let end = ok.union(&failed);
            ends = Some(ends.map_or(end.clone(), |e| e.union(&end)));
        }
        sh.calling.pop();
        sh.cwd = ends.unwrap_or(start);
        same(sh)
    }

    /// Functions never called where we could see it are judged as if called from anywhere.
    fn uncalled_functions(&mut self) {
        let defined = std::mem::take(&mut self.defined);
        for body in defined {
            if !self.called.contains(&Rc::as_ptr(&body)) {
                let mut sh = Shell::new(
                    Dirs::unknown("a function can be called from any directory"),
                    None,
                );
                self.command(&mut sh, &body);
            }
        }
    }

    /// A program (not a function or builtin): looked up in the table.
    fn program(&mut self, sh: &Shell, name: &str, args: &[Arg]) {
        let mut inv = Invocation {
            judge: self,
            shell: sh,
            name,
            args,
            cwd: sh.cwd.clone(),
        };
        let Some(known) = standard_name(name) else {
            // A path to a program of its own: whatever that file is.
            inv.judge.verdict.raise(OperationKind::Exec);
            inv.read(&Arg::literal(name));
            inv.judge
                .verdict
                .objects_unknown(format!("`{name}` is a program sod cannot see into"));
            inv.operands_as_paths(args, OperationKind::Exec);
            return;
        };
        let programs = inv.judge.programs;
        programs.judge(known, &mut inv);
    }

    /// Expands a word: judges the commands it runs (in subshells), applies `${x:=…}`, and
    /// returns the argument as far as it is known.
    pub(crate) fn expand(&mut self, sh: &mut Shell, word: &Word) -> Arg {
        for script in word.scripts() {
            let mut sub = sh.clone();
            self.depth += 1;
            self.script(&mut sub, script);
            self.depth -= 1;
        }
        for part in &word.parts {
            if let parse::Part::Dynamic {
                assigns: Some(name),
                ..
            } = part
            {
                builtins::assign(sh, name, false);
            }
        }
        words::expand(word, &self.cx.home)
    }

    fn redirects(&mut self, sh: &mut Shell, redirects: &[parse::Redirect]) {
        for r in redirects {
            match &r.target {
                RedirectTarget::Descriptor => {}
                RedirectTarget::Process(script) => {
                    let mut sub = sh.clone();
                    self.script(&mut sub, script);
                }
                RedirectTarget::Data(word) => {
                    self.expand(sh, word);
                }
                RedirectTarget::File(word) => {
                    let arg = self.expand(sh, word);
                    let kind = match r.op {
                        RedirectOp::Read => OperationKind::Read,
                        RedirectOp::Write => OperationKind::Write,
                    };
                    self.path(&sh.cwd.clone(), &arg, kind);
                }
            }
        }
    }

    /// Records that `arg`, a path from `cwd`, is read or written (`kind`).
    pub(crate) fn path(&mut self, cwd: &Dirs, arg: &Arg, kind: OperationKind) {
        match arg {
            Arg::Runtime { why, .. } => {
                self.verdict.raise(kind);
                self.verdict.objects_unknown(why.clone());
            }
            Arg::Literal { text, home } => {
                let (resolved, unknown) = cwd.resolve(text, *home);
                if resolved.iter().all(|p| paths::is_stream(p)) && unknown.is_none() {
                    // `> /dev/null`, `< /dev/stdin`: not a file.
                    self.verdict.raise(OperationKind::Read);
                    return;
                }
                self.verdict.raise(kind);
                for p in resolved {
                    self.verdict.object(p);
                }
                if let Some(why) = unknown {
                    self.verdict.objects_unknown(why);
                }
            }
        }
    }
}

/// The name to look a program up by: its own name, or the last component of a path in a
/// standard directory (`/usr/bin/cat` is `cat`). `None` for any other path (`./cat`).
fn standard_name(name: &str) -> Option<&str> {
    let Some((dir, base)) = name.rsplit_once('/') else {
        return Some(name);
    };
    if !dir.starts_with('/') {
        return None;
    }
    let dir = paths::normalize(dir)?;
    let standard = matches!(dir.as_str(), "/bin" | "/usr/bin" | "/sbin" | "/usr/sbin");
    (standard && !base.is_empty()).then_some(base)
}

fn is_integer(text: &str) -> bool {
    let t = text.trim();
    let t = t.strip_prefix(['-', '+']).unwrap_or(t);
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
}

/// One run of a program from the table: its arguments, and what the program's handler may
/// record or ask to be judged.
pub(crate) struct Invocation<'j, 'a> {
    judge: &'j mut Judge<'a>,
    shell: &'j Shell,
    /// The name it was run by (`egrep`, `sha256sum`).
    pub(crate) name: &'j str,
    pub(crate) args: &'j [Arg],
    /// Where its relative paths start (`tar -C`, `env -C` move it).
    pub(crate) cwd: Dirs,
}

impl Invocation<'_, '_> {
    /// Raises the kind to at least `kind`.
    pub(crate) fn raise(&mut self, kind: OperationKind) {
        self.judge.verdict.raise(kind);
    }

    /// The program reads `arg` (a path).
    pub(crate) fn read(&mut self, arg: &Arg) {
        let cwd = self.cwd.clone();
        self.judge.path(&cwd, arg, OperationKind::Read);
    }

    /// The program writes (creates, changes, removes) `arg`.
    pub(crate) fn write(&mut self, arg: &Arg) {
        let cwd = self.cwd.clone();
        self.judge.path(&cwd, arg, OperationKind::Write);
    }

    /// The program reads or writes everything under `arg` (`grep -r`, `rm -r`, `find`): the
    /// directory is recorded, what is under it is not known.
    pub(crate) fn tree(&mut self, arg: &Arg, kind: OperationKind) {
        let cwd = self.cwd.clone();
        self.judge.path(&cwd, arg, kind);
        let shown = arg.text().unwrap_or("…").to_owned();
        let name = self.name;
        self.objects_unknown(format!("`{name}` goes through everything under `{shown}`"));
    }

    /// Every operand is a path of `kind` (programs whose operands we cannot tell apart).
    pub(crate) fn operands_as_paths(&mut self, args: &[Arg], kind: OperationKind) {
        for a in args {
            match a.text() {
                Some(t) if t.starts_with('-') => {
                    if let Some((_, v)) = t.split_once('=') {
                        self.judge.path(&self.cwd.clone(), &Arg::literal(v), kind);
                    }
                }
                _ => {
                    let cwd = self.cwd.clone();
                    self.judge.path(&cwd, a, kind);
                }
            }
        }
    }

    /// The objects are not all known.
    pub(crate) fn objects_unknown(&mut self, why: impl Into<String>) {
        self.judge.verdict.objects_unknown(why);
    }

    /// Part of the command line is not understood.
    pub(crate) fn not_understood(&mut self, why: impl Into<String>) {
        self.judge.verdict.not_understood(why);
    }

    /// Judges a command this program runs (`sudo cmd`, `xargs cmd`, `find -exec cmd`): a
    /// program, with this invocation's working directory and the shell's environment, plus
    /// `env` if the program changes it.
    pub(crate) fn run(&mut self, argv: &[Arg], env: Option<String>) {
        let Some((first, rest)) = argv.split_first() else {
            return;
        };
        let Some(name) = first.text() else {
            let why = first.why().unwrap_or_default().to_owned();
            let me = self.name;
            self.not_understood(format!(
                "`{me}` runs a command whose name is not literal: {why}"
            ));
            return;
        };
        let mut sh = Shell::new(self.cwd.clone(), self.shell.env.clone());
        self.judge
            .dispatch(&mut sh, name, rest, Lookup::Program, env);
    }

    /// Judges a shell script this program runs (`sh -c`, `su -c`, `watch`), in a new shell
    /// started here with the shell's environment. `allexport` is `sh -a`.
    pub(crate) fn run_script(&mut self, script: &Arg, allexport: bool) {
        let Some(text) = script.text() else {
            let why = script.why().unwrap_or_default().to_owned();
            let me = self.name;
            self.not_understood(format!("`{me}` runs a script built at run time: {why}"));
            return;
        };
        let mut sh = Shell::new(self.cwd.clone(), self.shell.env.clone());
        sh.allexport = allexport;
        self.judge.script_text(&mut sh, text);
    }

    /// The home directory (`~` when it is not known).
    pub(crate) fn home(&self) -> &str {
        &self.judge.cx.home
    }
}
