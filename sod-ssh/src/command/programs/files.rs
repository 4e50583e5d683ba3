//! Programs that read, list, compare and change files: coreutils and their neighbours.

use sod_core::OperationKind::{Admin, Exec, Read, Write};

use super::{
    Invocation, Known, Parsed, Syntax, info, read_operand, reads, reads_list, reads_or_here, writes,
};
use crate::command::words::Arg;

pub(super) const TABLE: &[Known] = &[
    // --- Readers: operands are files read. ---
    Known {
        names: &["cat"],
        syntax: Syntax::Gnu(
            "A|show-all b|number-nonblank e E|show-ends n|number s|squeeze-blank t T|show-tabs u v|show-nonprinting |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["tac"],
        syntax: Syntax::Gnu("b|before r|regex s|separator= |help |version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["head"],
        syntax: Syntax::Gnu(
            "c|bytes= n|lines= q|quiet |silent v|verbose z|zero-terminated # |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["tail"],
        syntax: Syntax::Gnu(
            "c|bytes= f|follow? F n|lines= |max-unchanged-stats= |pid= q|quiet |silent |retry s|sleep-interval= v|verbose z|zero-terminated # |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["wc"],
        syntax: Syntax::Gnu(
            "c|bytes m|chars l|lines |files0-from= L|max-line-length w|words |total= |help |version",
        ),
        worst: Read,
        run: with_file_lists,
    },
    Known {
        names: &["nl"],
        syntax: Syntax::Gnu(
            "b|body-numbering= d|section-delimiter= f|footer-numbering= h|header-numbering= i|line-increment= l|join-blank-lines= n|number-format= p|no-renumber s|number-separator= v|starting-line-number= w|number-width= |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["od"],
        syntax: Syntax::Gnu(
            "A|address-radix= |endian= j|skip-bytes= N|read-bytes= S|strings? t|format= v|output-duplicates w|width? |traditional a b c d f i l o s x |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["base64", "base32"],
        syntax: Syntax::Gnu("d|decode i|ignore-garbage w|wrap= |help |version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["basenc"],
        syntax: Syntax::Gnu(
            "|base64 |base64url |base32 |base32hex |base16 |base2msbf |base2lsbf |z85 d|decode i|ignore-garbage w|wrap= |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &[
            "md5sum",
            "sha1sum",
            "sha224sum",
            "sha256sum",
            "sha384sum",
            "sha512sum",
            "b2sum",
            "cksum",
        ],
        syntax: Syntax::Gnu(
            "a|algorithm= b|binary c|check |tag |untagged t|text z|zero l|length= |ignore-missing |quiet |status |strict w|warn |debug |base64 |raw |help |version",
        ),
        worst: Read,
        run: checksums,
    },
    Known {
        names: &["sum"],
        syntax: Syntax::Gnu("r s|sysv |help |version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["cut"],
        syntax: Syntax::Gnu(
            "b|bytes= c|characters= d|delimiter= f|fields= n |complement s|only-delimited |output-delimiter= z|zero-terminated |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["paste"],
        syntax: Syntax::Gnu("d|delimiters= s|serial z|zero-terminated |help |version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["join"],
        syntax: Syntax::Gnu(
            "a= e= i|ignore-case j= o= t= v= 1= 2= |check-order |nocheck-order |header z|zero-terminated |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["comm"],
        syntax: Syntax::Gnu(
            "1 2 3 |check-order |nocheck-order |output-delimiter= |total z|zero-terminated |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["fold"],
        syntax: Syntax::Gnu("b|bytes s|spaces w|width= # |help |version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["fmt"],
        syntax: Syntax::Gnu(
            "c|crown-margin p|prefix= s|split-only t|tagged-paragraph u|uniform-spacing w|width= g|goal= # |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["expand"],
        syntax: Syntax::Gnu("i|initial t|tabs= # |help |version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["unexpand"],
        syntax: Syntax::Gnu("a|all |first-only t|tabs= # |help |version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["rev"],
        syntax: Syntax::Gnu("0|zero h|help V|version"),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["tr"],
        syntax: Syntax::Gnu(
            "c C|complement d|delete s|squeeze-repeats t|truncate-set1 |help |version",
        ),
        worst: Read,
        run: info,
    },
    Known {
        names: &["strings"],
        syntax: Syntax::Gnu(
            "a|all d|data f|print-file-name n|bytes= t|radix= e|encoding= o T|target= w|include-all-whitespace s|output-separator= |unicode= U= # |help v|version V",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["hexdump", "hd"],
        syntax: Syntax::Gnu(
            "b c C|canonical d e|format= f|format-file= L|color? n|length= o s|skip= v|no-squeezing x h|help V|version",
        ),
        worst: Read,
        run: hexdump,
    },
    Known {
        names: &["xxd"],
        syntax: Syntax::Raw,
        worst: Write,
        run: xxd,
    },
    Known {
        names: &["sort"],
        syntax: Syntax::Gnu(
            "b|ignore-leading-blanks d|dictionary-order f|ignore-case g|general-numeric-sort i|ignore-nonprinting M|month-sort h|human-numeric-sort n|numeric-sort R|random-sort |random-source= r|reverse |sort= V|version-sort |batch-size= c|check? C |compress-program= |debug |files0-from= k|key= m|merge o|output= s|stable S|buffer-size= t|field-separator= T|temporary-directory= |parallel= u|unique z|zero-terminated |help |version",
        ),
        worst: Exec,
        run: sort,
    },
    Known {
        names: &["uniq"],
        syntax: Syntax::Gnu(
            "c|count d|repeated D |all-repeated? f|skip-fields= |group? i|ignore-case s|skip-chars= u|unique z|zero-terminated w|check-chars= # |help |version",
        ),
        worst: Write,
        run: uniq,
    },
    Known {
        names: &["shuf"],
        syntax: Syntax::Gnu(
            "e|echo i|input-range= n|head-count= o|output= |random-source= r|repeat z|zero-terminated |help |version",
        ),
        worst: Write,
        run: shuf,
    },
    Known {
        names: &["diff"],
        syntax: Syntax::Gnu(
            "|normal q|brief s|report-identical-files c C= |context? u U= |unified? e|ed n|rcs y|side-by-side W|width= |left-column |suppress-common-lines p|show-c-function F|show-function-line= |label= t|expand-tabs T|initial-tab |tabsize= |suppress-blank-empty l|paginate r|recursive |no-dereference N|new-file |unidirectional-new-file |ignore-file-name-case |no-ignore-file-name-case x|exclude= X|exclude-from= S|starting-file= |from-file= |to-file= i|ignore-case E|ignore-tab-expansion Z|ignore-trailing-space b|ignore-space-change w|ignore-all-space B|ignore-blank-lines I|ignore-matching-lines= a|text |strip-trailing-cr D|ifdef= |old-group-format= |new-group-format= |unchanged-group-format= |changed-group-format= |line-format= |old-line-format= |new-line-format= |unchanged-line-format= d|minimal |horizon-lines= |speed-large-files |color? |palette= |help v|version",
        ),
        worst: Read,
        run: diff,
    },
    Known {
        names: &["cmp"],
        syntax: Syntax::Gnu(
            "b|print-bytes i|ignore-initial= l|verbose n|bytes= s|quiet |silent |help v|version",
        ),
        worst: Read,
        run: cmp,
    },
    Known {
        names: &["file"],
        syntax: Syntax::Gnu(
            "b|brief C|compile c|checking-printout d= E e|exclude= |exclude-quiet= F|separator= f|files-from= h|no-dereference i|mime |apple |extension |mime-type |mime-encoding k|keep-going l|list L|dereference m|magic-file= N|no-pad n|no-buffer 0|print0 p|preserve-date P|parameter= r|raw s|special-files S|no-sandbox v|version z|uncompress Z|uncompress-noreport |help",
        ),
        worst: Write,
        run: file,
    },
    // --- Listing and metadata. ---
    Known {
        names: &["ls", "dir", "vdir"],
        syntax: Syntax::Gnu(
            "a|all A|almost-all |author b|escape |block-size= B|ignore-backups c C |color? d|directory D|dired f F|classify? |file-type |format= |full-time g |group-directories-first G|no-group h|human-readable |si H|dereference-command-line |dereference-command-line-symlink-to-dir |hide= |hyperlink? |indicator-style= i|inode I|ignore= k|kibibytes l L|dereference m n|numeric-uid-gid N|literal o p q|hide-control-chars |show-control-chars Q|quote-name |quoting-style= r|reverse R|recursive s|size S |sort= |time= |time-style= t T|tabsize= u U v w|width= x X Z|context |zero 1 |help |version",
        ),
        worst: Read,
        run: ls,
    },
    Known {
        names: &["stat"],
        syntax: Syntax::Gnu(
            "L|dereference f|file-system |cached= c|format= |printf= t|terse |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["df"],
        syntax: Syntax::Gnu(
            "a|all B|block-size= |direct h|human-readable H|si i|inodes k l|local |no-sync |output? P|portability |sync |total t|type= T|print-type x|exclude-type= v |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["du"],
        syntax: Syntax::Gnu(
            "0|null a|all A|apparent-size B|block-size= b|bytes c|total D|dereference-args d|max-depth= |files0-from= H h|human-readable |inodes k L|dereference l|count-links m P|no-dereference S|separate-dirs |si s|summarize t|threshold= |time? |time-style= X|exclude-from= |exclude= x|one-file-system |help |version",
        ),
        worst: Read,
        run: du,
    },
    Known {
        names: &["readlink"],
        syntax: Syntax::Gnu(
            "f|canonicalize e|canonicalize-existing m|canonicalize-missing n|no-newline q|quiet s|silent v|verbose z|zero |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["realpath"],
        syntax: Syntax::Gnu(
            "e|canonicalize-existing m|canonicalize-missing L|logical P|physical q|quiet |relative-to= |relative-base= s|strip |no-symlinks z|zero |help |version",
        ),
        worst: Read,
        run: reads,
    },
    Known {
        names: &["basename"],
        syntax: Syntax::Gnu("a|multiple s|suffix= z|zero |help |version"),
        worst: Read,
        run: info,
    },
    Known {
        names: &["dirname"],
        syntax: Syntax::Gnu("z|zero |help |version"),
        worst: Read,
        run: info,
    },
    Known {
        names: &["test", "["],
        syntax: Syntax::Raw,
        worst: Read,
        run: test,
    },
    Known {
        names: &[
            "echo", "printf", "true", "false", "seq", "sleep", "yes", "expr", "factor", "numfmt",
            "pwd", "whoami", "id", "groups", "uname", "arch", "nproc", "tty", "logname", "users",
            "hostid", "uptime", "printenv", "locale", "getconf", "which", "whereis", "cal", "ncal",
            "getent", "free", "vmstat", "lscpu", "lsblk", "lsmod", "lspci", "lsusb", "lsof",
            "netstat", "who", "w", "lastlog", "mpstat", "iostat", "pgrep", "pidof",
        ],
        syntax: Syntax::Raw,
        worst: Read,
        run: info,
    },
    Known {
        names: &["date"],
        syntax: Syntax::Gnu(
            "d|date= |debug f|file= I|iso-8601? |resolution R|rfc-email |rfc-3339= r|reference= s|set= u|utc |universal |help |version",
        ),
        worst: Admin,
        run: date,
    },
    // --- Writers. ---
    Known {
        names: &["tee"],
        syntax: Syntax::Gnu("a|append i|ignore-interrupts p |output-error? |help |version"),
        worst: Write,
        run: tee,
    },
    Known {
        names: &["rm"],
        syntax: Syntax::Gnu(
            "f|force i I |interactive? |one-file-system |no-preserve-root |preserve-root? r|recursive R d|dir v|verbose |help |version",
        ),
        worst: Write,
        run: rm,
    },
    Known {
        names: &["rmdir"],
        syntax: Syntax::Gnu("|ignore-fail-on-non-empty p|parents v|verbose |help |version"),
        worst: Write,
        run: writes,
    },
    Known {
        names: &["mkdir"],
        syntax: Syntax::Gnu("m|mode= p|parents v|verbose Z |context? |help |version"),
        worst: Write,
        run: writes,
    },
    Known {
        names: &["mkfifo"],
        syntax: Syntax::Gnu("m|mode= Z |context? |help |version"),
        worst: Write,
        run: writes,
    },
    Known {
        names: &["touch"],
        syntax: Syntax::Gnu(
            "a c|no-create d|date= f h|no-dereference m r|reference= t |time= |help |version",
        ),
        worst: Write,
        run: touch,
    },
    Known {
        names: &["truncate"],
        syntax: Syntax::Gnu("c|no-create o|io-blocks r|reference= s|size= |help |version"),
        worst: Write,
        run: truncate,
    },
    Known {
        names: &["shred"],
        syntax: Syntax::Gnu(
            "f|force n|iterations= |random-source= s|size= u |remove? v|verbose x|exact z|zero |help |version",
        ),
        worst: Write,
        run: writes,
    },
    Known {
        names: &["ln"],
        syntax: Syntax::Gnu(
            "b |backup? d|directory F f|force i|interactive L|logical n|no-dereference P|physical r|relative s|symbolic S|suffix= t|target-directory= T|no-target-directory v|verbose |help |version",
        ),
        worst: Write,
        run: link,
    },
    Known {
        names: &["cp"],
        syntax: Syntax::Gnu(
            "a|archive |attributes-only b |backup? |copy-contents d |debug f|force i|interactive H l|link L|dereference n|no-clobber P|no-dereference p |preserve? |no-preserve= |parents R|recursive r |reflink? |remove-destination |sparse= |strip-trailing-slashes s|symbolic-link S|suffix= t|target-directory= T|no-target-directory u |update? v|verbose x|one-file-system Z |context? |keep-directory-symlink |help |version",
        ),
        worst: Write,
        run: cp,
    },
    Known {
        names: &["mv"],
        syntax: Syntax::Gnu(
            "b |backup? |exchange f|force i|interactive n|no-clobber |no-copy |strip-trailing-slashes S|suffix= t|target-directory= T|no-target-directory u |update? v|verbose Z|context |debug |help |version",
        ),
        worst: Write,
        run: mv,
    },
    Known {
        names: &["install"],
        syntax: Syntax::Gnu(
            "|backup? b c C|compare d|directory D g|group= m|mode= o|owner= p|preserve-timestamps s|strip |strip-program= S|suffix= t|target-directory= T|no-target-directory v|verbose |preserve-context Z |context? |debug |help |version",
        ),
        worst: Exec,
        run: install,
    },
    Known {
        names: &["chmod"],
        syntax: Syntax::Raw,
        worst: Write,
        run: chmod,
    },
    Known {
        names: &["chown", "chgrp"],
        syntax: Syntax::Gnu(
            "c|changes f|silent |quiet v|verbose |dereference h|no-dereference |from= |no-preserve-root |preserve-root |reference= R|recursive H L P |help |version",
        ),
        worst: Write,
        run: chown,
    },
    Known {
        names: &["dd"],
        syntax: Syntax::Raw,
        worst: Write,
        run: dd,
    },
    Known {
        names: &["split"],
        syntax: Syntax::Gnu(
            "a|suffix-length= |additional-suffix= b|bytes= C|line-bytes= d |numeric-suffixes? x |hex-suffixes? e|elide-empty-files |filter= l|lines= n|number= t|separator= u|unbuffered |verbose # |help |version",
        ),
        worst: Exec,
        run: split,
    },
    Known {
        names: &["csplit"],
        syntax: Syntax::Gnu(
            "b|suffix-format= f|prefix= k|keep-files |suppress-matched n|digits= s|quiet |silent z|elide-empty-files |help |version",
        ),
        worst: Write,
        run: csplit,
    },
    Known {
        names: &["mktemp"],
        syntax: Syntax::Gnu("d|directory u|dry-run q|quiet |suffix= p t |tmpdir? |help |version"),
        worst: Write,
        run: mktemp,
    },
    Known {
        names: &["sync"],
        syntax: Syntax::Gnu("d|data f|file-system |help |version"),
        worst: Read,
        run: info,
    },
];

/// `wc`: `--files0-from` names the files.
fn with_file_lists(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    reads(inv, p);
    for list in p.values("files0-from") {
        reads_list(inv, list);
    }
}

/// `sha256sum -c LIST` reads the files LIST names.
fn checksums(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    reads(inv, p);
    if p.has("check") {
        let name = inv.name;
        inv.objects_unknown(format!("`{name} -c` reads the files its list names"));
    }
}

fn hexdump(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    reads(inv, p);
    for f in p.values("format-file") {
        inv.read(f);
    }
}

/// `xxd [options] [infile [outfile]]`, with xxd's own single-dash options.
fn xxd(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    const FLAGS: &[&str] = &[
        "a",
        "autoskip",
        "b",
        "bits",
        "C",
        "capitalize",
        "E",
        "EBCDIC",
        "e",
        "h",
        "help",
        "i",
        "include",
        "p",
        "ps",
        "postscript",
        "plain",
        "r",
        "revert",
        "u",
        "v",
        "version",
        "d",
    ];
    const VALUES: &[&str] = &[
        "c",
        "cols",
        "g",
        "groupsize",
        "l",
        "len",
        "n",
        "name",
        "o",
        "s",
        "seek",
        "R",
    ];
    inv.raise(Read);
    let args: Vec<&Arg> = p.operands();
    let mut files = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        let Some(text) = a.text() else {
            let why = format!("{}, and could be any option", a.why().unwrap_or_default());
            return super::unclear(inv, Write, &why);
        };
        match text.strip_prefix('-') {
            Some(option) if !option.is_empty() && files.is_empty() => {
                let name = option.trim_start_matches('-');
                if FLAGS.contains(&name) {
                    continue;
                }
                if let Some(v) = VALUES.iter().find(|v| name.starts_with(**v)) {
                    if name.len() == v.len() {
                        i += 1;
                    }
                    continue;
                }
                return super::unclear(inv, Write, &format!("`{text}` is not an option sod knows"));
            }
            _ => files.push(a),
        }
    }
    if let Some(input) = files.first() {
        read_operand(inv, input);
    }
    if let Some(output) = files.get(1) {
        inv.write(output);
    }
    for extra in files.iter().skip(2) {
        inv.read(extra);
    }
}

/// `sort`: `-o` writes, `-T` writes temporaries into a directory, `--compress-program` runs a
/// program.
fn sort(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    reads(inv, p);
    for f in p.values("files0-from") {
        reads_list(inv, f);
    }
    for f in p.values("random-source") {
        inv.read(f);
    }
    for f in p.values("output") {
        inv.write(f);
    }
    for d in p.values("temporary-directory") {
        inv.tree(d, Write);
    }
    for prog in p.values("compress-program") {
        inv.run(std::slice::from_ref(prog), None);
    }
}

/// `uniq [INPUT [OUTPUT]]`: the second operand is written.
fn uniq(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let operands = p.operands();
    if let Some(input) = operands.first() {
        read_operand(inv, input);
    }
    for output in operands.iter().skip(1) {
        inv.write(output);
    }
}

fn shuf(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    if !p.any(&["echo", "input-range"]) {
        reads(inv, p);
    }
    for f in p.values("random-source") {
        inv.read(f);
    }
    for f in p.values("output") {
        inv.write(f);
    }
}

fn diff(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let recursive = p.has("recursive");
    let files = p
        .operands()
        .into_iter()
        .chain(p.values("from-file"))
        .chain(p.values("to-file"))
        .cloned()
        .collect::<Vec<_>>();
    for f in &files {
        if f.is("-") {
            continue;
        }
        if recursive {
            inv.tree(f, Read);
        } else {
            inv.read(f);
        }
    }
    for f in p.values("exclude-from") {
        inv.read(f);
    }
}

/// `cmp FILE1 [FILE2 [SKIP1 [SKIP2]]]`.
fn cmp(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    for f in p.operands().into_iter().take(2) {
        read_operand(inv, f);
    }
}

fn file(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    reads(inv, p);
    for f in p.values("files-from") {
        reads_list(inv, f);
    }
    for f in p.values("magic-file") {
        inv.read(f);
    }
    if p.has("compile") {
        // Writes `NAME.mgc` beside each magic file.
        inv.raise(Write);
        inv.objects_unknown("`file -C` writes compiled magic files");
    }
}

fn ls(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    if p.has("recursive") {
        inv.raise(Read);
        let operands = p.operands();
        if operands.is_empty() {
            inv.tree(&Arg::literal("."), Read);
        }
        for a in operands {
            inv.tree(a, Read);
        }
    } else {
        reads_or_here(inv, p);
    }
}

fn du(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let operands = p.operands();
    if operands.is_empty() && !p.has("files0-from") {
        inv.tree(&Arg::literal("."), Read);
    }
    for a in operands {
        inv.tree(a, Read);
    }
    for f in p.values("files0-from") {
        reads_list(inv, f);
    }
    for f in p.values("exclude-from") {
        inv.read(f);
    }
}

/// `test`/`[`: the operands of file tests are paths whose metadata is read.
fn test(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    const UNARY: &[&str] = &[
        "-a", "-b", "-c", "-d", "-e", "-f", "-g", "-h", "-k", "-L", "-N", "-O", "-G", "-p", "-r",
        "-s", "-S", "-u", "-w", "-x",
    ];
    const BINARY: &[&str] = &["-nt", "-ot", "-ef"];
    inv.raise(Read);
    let args = p.operands();
    for (i, a) in args.iter().enumerate() {
        match a {
            Arg::Literal { text, .. } if UNARY.contains(&text.as_str()) => {
                if let Some(next) = args.get(i + 1)
                    && !next.is("]")
                {
                    inv.read(next);
                }
            }
            Arg::Literal { text, .. } if BINARY.contains(&text.as_str()) => {
                for side in [i.checked_sub(1), Some(i + 1)].into_iter().flatten() {
                    if let Some(path) = args.get(side) {
                        inv.read(path);
                    }
                }
            }
            Arg::Literal { text, .. }
                if text == "-v"
                    && args
                        .get(i + 1)
                        .is_none_or(|n| n.text().is_none_or(|t| t.contains('['))) =>
            {
                inv.not_understood("`test -v` evaluates an array index");
            }
            // An unquoted expansion may become a file test of its own (`[ $x ]` with
            // `x='-f /etc/shadow'`).
            Arg::Runtime {
                why, split: true, ..
            } => inv.objects_unknown(why.clone()),
            _ => {}
        }
    }
}

/// `date`: `-s` and an operand that is not a `+FORMAT` set the clock.
fn date(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    for f in p.values("file").chain(p.values("reference")) {
        read_operand(inv, f);
    }
    let sets = p.has("set")
        || p.operands()
            .iter()
            .any(|a| a.text().is_none_or(|t| !t.starts_with('+')));
    if sets {
        inv.raise(Admin);
    }
}

fn tee(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    writes_operands(inv, p);
}

fn writes_operands(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    for a in p.operands() {
        inv.write(a);
    }
}

fn rm(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    let recursive = p.any(&["recursive", "R"]);
    for a in p.operands() {
        if recursive {
            inv.tree(a, Write);
        } else {
            inv.write(a);
        }
    }
}

fn touch(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    writes(inv, p);
    for r in p.values("reference") {
        inv.read(r);
    }
}

fn truncate(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    touch(inv, p);
}

/// `ln TARGET LINK`, `ln -t DIR TARGET…`: every operand is touched.
fn link(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    writes(inv, p);
    for d in p.values("target-directory") {
        inv.write(d);
    }
}

/// Sources and destination of `cp`, `mv`, `install`: with `-t DIR` every operand is a source.
fn sources_and_destination(p: &Parsed) -> (Vec<Arg>, Option<Arg>) {
    let mut operands: Vec<Arg> = p.operands().into_iter().cloned().collect();
    if let Some(dir) = p.values("target-directory").last() {
        return (operands, Some(dir.clone()));
    }
    let destination = if operands.len() > 1 {
        operands.pop()
    } else {
        None
    };
    (operands, destination)
}

fn cp(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    let recursive = p.any(&["archive", "recursive", "r"]);
    let (sources, destination) = sources_and_destination(p);
    for s in &sources {
        if recursive {
            inv.tree(s, Read);
        } else {
            inv.read(s);
        }
    }
    if let Some(d) = destination {
        if recursive {
            inv.tree(&d, Write);
        } else {
            inv.write(&d);
        }
    }
}

/// `mv`: the sources are removed and the destination written.
fn mv(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    let (sources, destination) = sources_and_destination(p);
    for a in sources.iter().chain(destination.as_ref()) {
        inv.write(a);
    }
}

fn install(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    if p.has("directory") {
        return writes(inv, p);
    }
    let (sources, destination) = sources_and_destination(p);
    for s in &sources {
        inv.read(s);
    }
    if let Some(d) = destination {
        inv.write(&d);
    }
    for prog in p.values("strip-program") {
        inv.run(std::slice::from_ref(prog), None);
    }
}

/// `chmod [options] MODE FILE…`: a mode like `-w` looks like an option and is not one.
fn chmod(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    const OPTIONS: &str = "c|changes f|silent |quiet v|verbose |no-preserve-root |preserve-root |reference= R|recursive |help |version";
    let is_mode = |a: &Arg| {
        a.text().is_some_and(|t| {
            t.len() > 1
                && t.starts_with('-')
                && t[1..]
                    .chars()
                    .all(|c| "rwxXstugo0123456789,=+-".contains(c))
        })
    };
    let args: Vec<Arg> = p.operands().into_iter().cloned().collect();
    let mode = args.iter().find(|a| is_mode(a)).cloned();
    let rest: Vec<Arg> = args.iter().filter(|a| !is_mode(a)).cloned().collect();
    let parsed = match super::Options::new(OPTIONS).parse(&rest, super::Style::Permute) {
        Ok(parsed) => parsed,
        Err(why) => return super::unclear(inv, Write, &why),
    };
    inv.raise(Write);
    let recursive = parsed.has("recursive");
    let mut files = parsed.operands();
    if mode.is_none() && !parsed.has("reference") && !files.is_empty() {
        files.remove(0);
    }
    for r in parsed.values("reference") {
        inv.read(r);
    }
    for f in files {
        if recursive {
            inv.tree(f, Write);
        } else {
            inv.write(f);
        }
    }
}

/// `chown OWNER FILE…`, `chgrp GROUP FILE…`.
fn chown(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    let recursive = p.has("recursive");
    let mut files = p.operands();
    if !p.has("reference") && !files.is_empty() {
        files.remove(0);
    }
    for r in p.values("reference") {
        inv.read(r);
    }
    for f in files {
        if recursive {
            inv.tree(f, Write);
        } else {
            inv.write(f);
        }
    }
}

/// `dd if=… of=… …`.
fn dd(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    const KEYS: &[&str] = &[
        "bs", "cbs", "conv", "count", "ibs", "iflag", "obs", "oflag", "seek", "skip", "status",
        "iseek", "oseek",
    ];
    inv.raise(Read);
    for a in p.operands() {
        let Some(text) = a.text() else {
            let why = format!("{}, and could be any operand", a.why().unwrap_or_default());
            return super::unclear(inv, Write, &why);
        };
        match text.split_once('=') {
            Some(("if", file)) => inv.read(&Arg::literal(file)),
            Some(("of", file)) => inv.write(&Arg::literal(file)),
            Some((key, _)) if KEYS.contains(&key) => {}
            _ if text == "--help" || text == "--version" => {}
            _ => {
                return super::unclear(
                    inv,
                    Write,
                    &format!("`{text}` is not an operand sod knows"),
                );
            }
        }
    }
}

/// `split [INPUT [PREFIX]]`: writes pieces named after the prefix; `--filter` runs a shell
/// command for each.
fn split(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    let operands = p.operands();
    if let Some(input) = operands.first() {
        read_operand(inv, input);
    }
    inv.objects_unknown("`split` writes files named after a prefix");
    for f in p.values("filter") {
        inv.run_script(f, false);
    }
}

fn csplit(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Write);
    if let Some(input) = p.operands().first() {
        read_operand(inv, input);
    }
    inv.objects_unknown("`csplit` writes files named after a prefix");
}

fn mktemp(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    if !p.has("dry-run") {
        inv.raise(Write);
        inv.objects_unknown("`mktemp` creates a file with a random name");
    }
}
