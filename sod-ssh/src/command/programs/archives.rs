//! Archivers, compressors and copiers: `tar`, `gzip` and friends, `zip`, `unzip`, `rsync`,
//! `scp`, `patch`.

use sod_core::OperationKind::{Exec, Read, Write};

use super::{Invocation, Item, Known, Parsed, Syntax, has_short, reads_list};
use crate::command::paths::Dirs;
use crate::command::words::Arg;

/// Every GNU tar 1.34 option. The first argument may also be old-style letters (`tar cvf`).
const TAR: &str = "A|catenate |concatenate c|create |delete d|diff |compare r|append |test-label t|list u|update x|extract |get \
    |check-device g|listed-incremental= G|incremental |hole-detection= |ignore-failed-read |level= |no-check-device |no-seek n|seek |occurrence? |sparse-version= S|sparse \
    |add-file= C|directory= |exclude= |exclude-backups |exclude-caches |exclude-caches-all |exclude-caches-under |exclude-ignore= |exclude-ignore-recursive= |exclude-tag= |exclude-tag-all= |exclude-tag-under= |exclude-vcs |exclude-vcs-ignores |no-null |no-recursion |no-unquote |no-verbatim-files-from |null |recursion T|files-from= |unquote |verbatim-files-from X|exclude-from= \
    |anchored |ignore-case |no-anchored |no-ignore-case |no-wildcards |no-wildcards-match-slash |wildcards |wildcards-match-slash \
    |keep-directory-symlink |keep-newer-files k|keep-old-files |no-overwrite-dir |one-top-level? |overwrite |overwrite-dir |recursive-unlink |remove-files |skip-old-files U|unlink-first W|verify \
    |ignore-command-error |no-ignore-command-error O|to-stdout |to-command= \
    |atime-preserve? |clamp-mtime |delay-directory-restore |group= |group-map= |mode= |mtime= m|touch |no-delay-directory-restore |no-same-owner |no-same-permissions |numeric-owner |owner= |owner-map= p|preserve-permissions |same-permissions |same-owner |sort= s|preserve-order |same-order \
    |acls |no-acls |no-selinux |no-xattrs |selinux |xattrs |xattrs-exclude= |xattrs-include= \
    |force-local f|file= F|info-script= |new-volume-script= L|tape-length= M|multi-volume |rmt-command= |rsh-command= |volno-file= \
    b|blocking-factor= B|read-full-records i|ignore-zeros |record-size= H|format= |old-archive |portability |pax-option= |posix V|label= \
    a|auto-compress I|use-compress-program= j|bzip2 J|xz |lzip |lzma |lzop |no-auto-compress |zstd z|gzip |gunzip |ungzip Z|compress |uncompress \
    |backup? |hard-dereference h|dereference K|starting-file= |newer-mtime= N|newer= |after-date= |one-file-system P|absolute-names |suffix= |strip-components= |transform= |xform= \
    |checkpoint? |checkpoint-action= |full-time |index-file= l|check-links |no-quote-chars= |quote-chars= |quoting-style= R|block-number |show-defaults |show-omitted-dirs |show-snapshot-field-ranges |show-transformed-names |show-stored-names |totals? |utc v|verbose |warning= w|interactive |confirmation o \
    |help |restrict |usage |version";

/// The old-style letters that take the next argument as their value.
const TAR_LETTERS_WITH_VALUES: &str = "bCfFgHIKLNTVX";

pub(super) const TABLE: &[Known] = &[
    Known {
        names: &["tar"],
        syntax: Syntax::Raw,
        worst: Exec,
        run: tar,
    },
    Known {
        names: &["gzip", "gunzip", "zcat"],
        syntax: Syntax::Gnu(
            "c|stdout d|decompress |uncompress f|force h|help k|keep l|list L|license n|no-name N|name q|quiet r|recursive |rsyncable S|suffix= |synchronous t|test v|verbose V|version 1|fast 2 3 4 5 6 7 8 9|best",
        ),
        worst: Write,
        run: compress,
    },
    Known {
        names: &["bzip2", "bunzip2", "bzcat"],
        syntax: Syntax::Gnu(
            "c|stdout d|decompress z|compress t|test f|force k|keep s|small q|quiet v|verbose L|license V|version h|help 1|fast 2 3 4 5 6 7 8 9|best",
        ),
        worst: Write,
        run: compress,
    },
    Known {
        names: &["xz", "unxz", "xzcat", "lzma", "unlzma", "lzcat"],
        syntax: Syntax::Gnu(
            "z|compress d|decompress |uncompress t|test l|list k|keep f|force c|stdout |to-stdout |single-stream |no-sparse S|suffix= |files? |files0? F|format= C|check= |ignore-check 0 1 2 3 4 5 6 7 8 9 e|extreme T|threads= |block-size= |block-list= |flush-timeout= |memlimit-compress= |memlimit-decompress= |memlimit-mt-decompress= M|memlimit= |memory= |no-adjust |lzma1? |lzma2? |x86? |arm? |armthumb? |arm64? |powerpc? |ia64? |sparc? |riscv? |delta? q|quiet v|verbose Q|no-warn |robot |info-memory h|help H|long-help V|version",
        ),
        worst: Write,
        run: compress,
    },
    Known {
        names: &["unzip"],
        syntax: Syntax::Raw,
        worst: Write,
        run: unzip,
    },
    Known {
        names: &["zip"],
        syntax: Syntax::Raw,
        worst: Exec,
        run: zip,
    },
    Known {
        names: &["rsync"],
        syntax: Syntax::Raw,
        worst: Exec,
        run: rsync,
    },
    Known {
        names: &["scp"],
        syntax: Syntax::Raw,
        worst: Exec,
        run: scp,
    },
    Known {
        names: &["patch"],
        syntax: Syntax::Raw,
        worst: Exec,
        run: patch,
    },
];

/// What a `tar` run does to its archive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TarMode {
    /// `-c`, `-r`, `-u`: reads files, writes the archive.
    Create,
    /// `-x`: reads the archive, writes the files it names.
    Extract,
    /// `-t`, `-d`, `--test-label`: reads.
    List,
    /// `-A`, `--delete`: rewrites the archive.
    Rewrite,
}

fn tar(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = old_style_tar(inv.args);
    let parsed = match super::Options::new(TAR).parse(&args, super::Style::Permute) {
        Ok(parsed) => parsed,
        Err(why) => return super::unclear(inv, Exec, &why),
    };
    let p = &parsed;
    inv.raise(Read);
    let mode = if p.any(&["create", "append", "update"]) {
        TarMode::Create
    } else if p.any(&["extract", "get"]) {
        TarMode::Extract
    } else if p.any(&["catenate", "concatenate", "delete"]) {
        TarMode::Rewrite
    } else {
        TarMode::List
    };
    // Programs and scripts it runs.
    for cmd in p.values("to-command") {
        inv.run_script(cmd, false);
    }
    for prog in p.values("use-compress-program") {
        inv.run_script(prog, false);
    }
    for action in p.values("checkpoint-action") {
        match action.text() {
            Some(t) if !t.starts_with("exec") => {}
            Some(t) => inv.run_script(&Arg::literal(t.trim_start_matches("exec=")), false),
            None => inv.run_script(action, false),
        }
    }
    if p.any(&[
        "info-script",
        "new-volume-script",
        "rsh-command",
        "rmt-command",
    ]) {
        inv.raise(Exec);
        inv.objects_unknown("`tar` runs a script given by an option");
    }
    // The archive: opened from where `tar` started.
    for archive in p.values("file") {
        if archive.is("-") {
            continue;
        }
        let remote = archive.text().is_some_and(|t| {
            t.split_once(':')
                .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
        });
        if remote && !p.has("force-local") {
            inv.raise(Exec);
            inv.objects_unknown("`tar` reaches a remote archive through `rsh`");
        }
        match mode {
            TarMode::Create | TarMode::Rewrite => inv.write(archive),
            TarMode::Extract | TarMode::List => inv.read(archive),
        }
    }
    for list in p.values("files-from") {
        reads_list(inv, list);
    }
    for f in p.values("exclude-from") {
        inv.read(f);
    }
    for f in p
        .values("index-file")
        .chain(p.values("volno-file"))
        .chain(p.values("listed-incremental"))
    {
        inv.write(f);
    }
    // Members, relative to the latest `-C`.
    let recursive = !p.has("no-recursion");
    for item in &p.items {
        match item {
            Item::Opt("directory", Some(dir)) => {
                inv.cwd = match dir.text() {
                    Some(d) => inv
                        .cwd
                        .cd(d, matches!(dir, Arg::Literal { home: true, .. })),
                    None => Dirs::unknown(dir.why().unwrap_or_default()),
                };
            }
            Item::Operand(member) | Item::Opt("add-file", Some(member)) => match mode {
                TarMode::Create if p.has("remove-files") => inv.tree(member, Write),
                TarMode::Create if recursive => inv.tree(member, Read),
                TarMode::Create => inv.read(member),
                TarMode::List if p.any(&["diff", "compare"]) => inv.tree(member, Read),
                _ => {}
            },
            _ => {}
        }
    }
    if mode == TarMode::Extract {
        if p.has("to-stdout") {
            return;
        }
        inv.tree(&Arg::literal("."), Write);
        inv.objects_unknown("`tar -x` writes the files its archive names");
    }
}

/// `tar cvfC a.tar dir x` → `tar -c -v -f a.tar -C dir x`.
fn old_style_tar(args: &[Arg]) -> Vec<Arg> {
    let Some(Arg::Literal { text: first, .. }) = args.first() else {
        return args.to_vec();
    };
    if first.starts_with('-') {
        return args.to_vec();
    }
    let mut rest = args[1..].iter();
    let mut out = Vec::new();
    for letter in first.chars() {
        out.push(Arg::literal(format!("-{letter}")));
        if TAR_LETTERS_WITH_VALUES.contains(letter) {
            out.extend(rest.next().cloned());
        }
    }
    out.extend(rest.cloned());
    out
}

/// `gzip` and friends: compress or decompress operands in place (writing `x.gz` and removing
/// `x`), unless they write to standard output, test or list.
fn compress(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    let to_stdout = inv.name.ends_with("cat") || p.any(&["stdout", "to-stdout", "test", "list"]);
    if p.any(&["files", "files0"]) {
        let name = inv.name;
        inv.objects_unknown(format!("`{name}` reads the names of its files from a list"));
    }
    let operands = p.operands();
    let kind = if to_stdout || operands.is_empty() {
        Read
    } else {
        let name = inv.name;
        inv.objects_unknown(format!("`{name}` writes files named after its operands"));
        Write
    };
    for a in operands {
        if a.is("-") {
            continue;
        }
        if p.has("recursive") {
            inv.tree(a, kind);
        } else if kind == Read {
            inv.read(a);
        } else {
            inv.write(a);
        }
    }
}

/// `unzip`: lists, tests or prints (`-l`, `-t`, `-p`, `-c`, `-v`, `-z`, `-Z`), or extracts.
fn unzip(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = inv.args;
    inv.raise(Read);
    let reads_only = ['l', 't', 'p', 'c', 'v', 'z', 'Z']
        .into_iter()
        .any(|c| has_short(args, c));
    if let Some(archive) = args
        .iter()
        .find(|a| !a.text().is_some_and(|t| t.starts_with('-')))
    {
        inv.read(archive);
    }
    if !reads_only {
        inv.raise(Write);
        inv.objects_unknown("`unzip` writes the files its archive names");
    }
    inv.operands_as_paths(args, Read);
}

/// `zip`: writes its archive; `-T`/`-TT`/`--unzip-command` run a test command.
fn zip(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = inv.args;
    let runs = has_short(args, 'T')
        || args.iter().any(|a| {
            a.text()
                .is_some_and(|t| t.starts_with("--unzip-command") || t == "--test")
        });
    inv.raise(if runs { Exec } else { Write });
    inv.objects_unknown("`zip` reads and writes files its options and operands select");
    inv.operands_as_paths(args, Write);
}

/// `rsync`: copies files; to or from another host, or with `-e`, it runs a remote shell.
/// `rsync --server`, what an `rsync -e ssh` client asks the remote side to run, is judged by
/// what the server side does ([`rsync_server`]).
fn rsync(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    let args = inv.args;
    if args.first().is_some_and(|a| a.is("--server")) {
        return rsync_server(inv, p);
    }
    let remote = has_short(args, 'e')
        || args.iter().any(|a| match a.text() {
            Some(t) if t.starts_with("--") => [
                "--rsh",
                "--rsync-path",
                "--server",
                "--daemon",
                "--config",
                "--remote-option",
            ]
            .iter()
            .any(|o| t.starts_with(o)),
            Some(t) if !t.starts_with('-') => {
                t.starts_with("rsync://")
                    || t.split_once(':')
                        .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
            }
            Some(_) => false,
            None => true,
        });
    inv.raise(if remote { Exec } else { Write });
    inv.objects_unknown("`rsync` copies trees of files");
    inv.operands_as_paths(args, Write);
}

/// The long options an `rsync` client passes to `rsync --server` that change nothing but how
/// the copy is made. Any other long option (`--remove-source-files`, `--log-file`,
/// `--backup-dir`, `--files-from`, …) leaves the command judged at its worst.
const RSYNC_SERVER_PLAIN: &[&str] = &[
    "--server",
    "--sender",
    "--delete",
    "--delete-before",
    "--delete-during",
    "--delete-delay",
    "--delete-after",
    "--delete-excluded",
    "--partial",
    "--inplace",
    "--append",
    "--append-verify",
    "--numeric-ids",
    "--size-only",
    "--ignore-times",
    "--ignore-existing",
    "--existing",
    "--safe-links",
    "--copy-unsafe-links",
    "--munge-links",
    "--no-implied-dirs",
    "--mkpath",
    "--fsync",
    "--compress-level",
    "--compress-choice",
    "--checksum-choice",
    "--checksum-seed",
    "--timeout",
    "--contimeout",
    "--bwlimit",
    "--max-size",
    "--min-size",
    "--max-delete",
    "--modify-window",
    "--chmod",
    "--super",
    "--fake-super",
];

/// `rsync --server [--sender] FLAGS . PATH...`: with `--sender` the remote side sends (reads)
/// the paths, without it receives (writes) into the last one. The single-letter cluster is the
/// client's option set (`-vlogDtpre.iLsfxCIvu`: after `e` comes the protocol's capability
/// string, not a shell); `r` makes it a copy of trees, whose contents are not known. A
/// receiver writes names the client sends into its path: always a tree.
fn rsync_server(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = inv.args;
    let mut sender = false;
    let mut recursive = false;
    let mut operands: Vec<&Arg> = Vec::new();
    let mut dot_seen = false;
    for a in args {
        let Some(t) = a.text() else {
            return super::unclear(
                inv,
                Exec,
                "`rsync --server` with an argument built at run time",
            );
        };
        if dot_seen || !t.starts_with('-') {
            // The client always sends `.` before the paths.
            if dot_seen {
                operands.push(a);
            } else if t == "." {
                dot_seen = true;
            } else {
                return super::unclear(inv, Exec, "`rsync --server` without its `.` marker");
            }
        } else if let Some(long) = t.strip_prefix("--") {
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            if !RSYNC_SERVER_PLAIN.contains(&format!("--{name}").as_str()) {
                return super::unclear(inv, Exec, &format!("`rsync --server` with `--{name}`"));
            }
            sender |= name == "sender";
        } else {
            let letters = t[1..].split_once('e').map_or(&t[1..], |(flags, _)| flags);
            // `r` recurses, `d` copies directories as entries.
            recursive |= letters.contains('r') || letters.contains('d');
        }
    }
    if operands.is_empty() {
        return super::unclear(inv, Exec, "`rsync --server` without a path");
    }
    let kind = if sender { Read } else { Write };
    inv.raise(kind);
    for a in operands {
        if recursive || !sender {
            inv.tree(a, kind);
        } else if kind == Read {
            inv.read(a);
        } else {
            inv.write(a);
        }
    }
}

/// `scp`: as a client it runs `ssh`, which runs code sod cannot see into; `scp -f PATH...`
/// (send: a read) and `scp -t PATH` (receive: a write) are what an `scp -O` client asks the
/// remote side to run, and are judged as the read or write they are. `-r` copies trees; a
/// receiver writes names the client sends into its path, so `-t` is always a tree.
fn scp(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = inv.args;
    let mut mode = None;
    let mut recursive = false;
    let mut operands = Vec::new();
    let mut options_done = false;
    for a in args {
        match a.text() {
            Some("--") if !options_done => options_done = true,
            Some(t) if !options_done && t.starts_with('-') && t.len() > 1 => {
                for c in t[1..].chars() {
                    match c {
                        'f' | 't' if mode.is_none_or(|m| m == c) => mode = Some(c),
                        'r' => recursive = true,
                        'v' | 'p' | 'd' | 'q' => {}
                        _ => return client_scp(inv),
                    }
                }
            }
            _ => operands.push(a),
        }
    }
    let kind = match mode {
        Some('f') => Read,
        Some(_) if operands.len() == 1 => Write,
        _ => return client_scp(inv),
    };
    if operands.is_empty() {
        return client_scp(inv);
    }
    inv.raise(kind);
    for a in operands {
        if recursive || kind == Write {
            inv.tree(a, kind);
        } else {
            inv.read(a);
        }
    }
}

/// `scp` as a client: it runs `ssh`.
fn client_scp(inv: &mut Invocation<'_, '_>) {
    inv.raise(Exec);
    inv.objects_unknown("`scp` runs `ssh`, which runs code sod cannot see into");
    let args = inv.args;
    inv.operands_as_paths(args, Exec);
}

/// `patch`: changes the files its patch names, and hands ed-style patches to `ed`, which runs
/// commands.
fn patch(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = inv.args;
    inv.raise(Exec);
    inv.objects_unknown("`patch` changes the files its patch names, and may run `ed`");
    inv.operands_as_paths(args, Write);
}
