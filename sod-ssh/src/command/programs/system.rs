//! Administration, services, processes and logs; and programs that are code runners by nature
//! (pagers and editors that run shell commands, package managers, container daemons).

use sod_core::OperationKind::{Admin, Exec, Read};

use super::{Invocation, Known, Parsed, Syntax, has_short, info, read_operand};
use crate::command::words::Arg;

pub(super) const TABLE: &[Known] = &[
    Known {
        names: &["ps"],
        syntax: Syntax::Raw,
        worst: Read,
        run: info,
    },
    Known {
        names: &["top"],
        syntax: Syntax::Raw,
        worst: Exec,
        run: top,
    },
    Known {
        names: &["kill"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: kill,
    },
    Known {
        names: &[
            "pkill",
            "killall",
            "reboot",
            "shutdown",
            "poweroff",
            "halt",
            "init",
            "telinit",
            "umount",
            "swapon",
            "swapoff",
            "useradd",
            "userdel",
            "usermod",
            "groupadd",
            "groupdel",
            "groupmod",
            "passwd",
            "chpasswd",
            "chage",
            "gpasswd",
            "visudo",
            "vipw",
            "sudoedit",
            "at",
            "atrm",
            "batch",
            "iptables",
            "ip6tables",
            "iptables-save",
            "iptables-restore",
            "nft",
            "ufw",
            "firewall-cmd",
            "modprobe",
            "insmod",
            "rmmod",
            "hwclock",
            "timedatectl",
            "hostnamectl",
            "localectl",
            "loginctl",
            "apt",
            "apt-get",
            "yum",
            "dnf",
            "rpm",
            "snap",
            "pip",
            "pip3",
            "npm",
            "nsenter",
            "unshare",
            "ldconfig",
            "setcap",
            "chattr",
            "mkfs",
            "mkfs.ext4",
            "mkfs.xfs",
            "mkswap",
            "fdisk",
            "sfdisk",
            "parted",
            "losetup",
            "cryptsetup",
            "lvcreate",
            "lvremove",
            "vgcreate",
            "pvcreate",
            "docker",
            "podman",
            "ctr",
            "crictl",
            "systemd-run",
            "update-alternatives",
            "update-rc.d",
            "chkconfig",
            "renice",
            "mknod",
            "wall",
            "tc",
            "ethtool",
            "brctl",
            "setenforce",
            "auditctl",
        ],
        syntax: Syntax::Raw,
        worst: Admin,
        run: admin,
    },
    Known {
        names: &["systemctl"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: systemctl,
    },
    Known {
        names: &["service"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: service,
    },
    Known {
        names: &["journalctl"],
        syntax: Syntax::Gnu(
            "b|boot? k|dmesg u|unit= |user-unit= t|identifier= T|exclude-identifier= p|priority= |facility= g|grep= |case-sensitive? S|since= U|until= n|lines? f|follow r|reverse o|output= |output-fields= x|catalog a|all q|quiet e|pager-end |no-pager |no-full l|full |no-tail |no-hostname |utc |system |user M|machine= m|merge D|directory= i|file= |root= |image= |namespace= F|field= N|fields |list-boots |disk-usage |header |verify |cursor= |after-cursor= |show-cursor |since-cursor= |list-catalog |dump-catalog |list-namespaces I # h|help |version",
        ),
        worst: Admin,
        run: journalctl,
    },
    Known {
        names: &["dmesg"],
        syntax: Syntax::Gnu(
            "C|clear c|read-clear D|console-off d|show-delta E|console-on e|reltime F|file= f|facility= H|human J|json k|kernel L|color? l|level= n|console-level= |noescape P|nopager p|force-prefix r|raw S|syslog s|buffer-size= T|ctime t|notime |time-format= u|userspace w|follow W|follow-new x|decode |since= |until= h|help V|version",
        ),
        worst: Admin,
        run: dmesg,
    },
    Known {
        names: &["mount"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: mount,
    },
    Known {
        names: &["sysctl"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: sysctl,
    },
    Known {
        names: &["crontab"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: crontab,
    },
    Known {
        names: &["ip"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: ip,
    },
    Known {
        names: &["ifconfig", "route"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: reports_without_operands,
    },
    Known {
        names: &["hostname"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: hostname,
    },
    Known {
        names: &["ss"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: ss,
    },
    Known {
        names: &["dpkg"],
        syntax: Syntax::Raw,
        worst: Admin,
        run: dpkg,
    },
    Known {
        names: &["apt-cache", "dpkg-query"],
        syntax: Syntax::Raw,
        worst: Read,
        run: info,
    },
    Known {
        // They run shell commands (`!cmd` in a pager or editor), or run code by design.
        names: &[
            "less", "more", "most", "pg", "man", "vi", "vim", "nvim", "view", "nano", "emacs",
            "ed", "ex", "htop", "screen", "tmux", "expect", "busybox", "python", "python2",
            "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "java", "make",
            "git", "curl", "wget", "ssh", "sftp", "nc", "ncat", "netcat", "socat", "telnet", "ftp",
            "openssl", "gpg", "kubectl", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh",
            "strace", "ltrace", "gdb",
        ],
        syntax: Syntax::Raw,
        worst: Exec,
        run: exec,
    },
];

/// Administers the system; operands are taken as paths.
fn admin(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    inv.raise(Admin);
    let name = inv.name;
    inv.objects_unknown(format!("`{name}` administers the system"));
    let args = inv.args;
    inv.operands_as_paths(args, Admin);
}

/// Runs code: operands are taken as paths, and what it touches is not known.
fn exec(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    inv.raise(Exec);
    let name = inv.name;
    inv.objects_unknown(format!("`{name}` runs code sod cannot see into"));
    let args = inv.args;
    inv.operands_as_paths(args, Exec);
}

/// `top -b` prints; interactive `top` can kill and renice processes.
fn top(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    if has_short(inv.args, 'b') || inv.args.iter().any(|a| a.is("--batch")) {
        inv.raise(Read);
    } else {
        inv.raise(Exec);
        inv.objects_unknown("interactive `top` can kill and renice processes");
    }
}

fn kill(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let lists = inv
        .args
        .first()
        .is_some_and(|a| a.is("-l") || a.is("-L") || a.is("--list") || a.is("--table"));
    inv.raise(if lists { Read } else { Admin });
}

/// The first operand that is not an option, skipping the values of `with_values`.
fn verb<'a>(args: &'a [Arg], with_values: &[&str]) -> Result<Option<&'a Arg>, String> {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(t) = a.text() else {
            return Err(format!(
                "{}, and could be any option",
                a.why().unwrap_or_default()
            ));
        };
        if !t.starts_with('-') || t == "-" {
            return Ok(Some(a));
        }
        let name = t.split_once('=').map_or(t, |(n, _)| n);
        if with_values.contains(&name) && !t.contains('=') {
            i += 1;
        }
        i += 1;
    }
    Ok(None)
}

/// `systemctl VERB …`: reading verbs read; the rest administer.
fn systemctl(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    const READS: &[&str] = &[
        "status",
        "show",
        "cat",
        "list-units",
        "list-unit-files",
        "list-sockets",
        "list-timers",
        "list-jobs",
        "list-dependencies",
        "list-machines",
        "list-automounts",
        "list-paths",
        "is-active",
        "is-enabled",
        "is-failed",
        "is-system-running",
        "get-default",
        "show-environment",
        "help",
    ];
    const VALUES: &[&str] = &[
        "-t",
        "--type",
        "-p",
        "--property",
        "-P",
        "-s",
        "--signal",
        "-H",
        "--host",
        "-M",
        "--machine",
        "-n",
        "--lines",
        "-o",
        "--output",
        "--state",
        "--root",
        "--kill-whom",
        "--kill-value",
        "--job-mode",
        "--what",
        "--timestamp",
        "--boot-loader-entry",
        "--reboot-argument",
        "--message",
        "--image",
        "--preset-mode",
        "--check-inhibitors",
        "--when",
        "--drop-in",
    ];
    // A remote or other root is another system.
    let elsewhere = inv.args.iter().any(|a| {
        a.text().is_some_and(|t| {
            ["-H", "--host", "-M", "--machine", "--root", "--image"]
                .iter()
                .any(|o| t == *o || t.starts_with(&format!("{o}=")))
        })
    });
    match verb(inv.args, VALUES) {
        Ok(Some(v)) if !elsewhere && v.text().is_some_and(|t| READS.contains(&t)) => {
            inv.raise(Read);
        }
        Ok(None) if !elsewhere => inv.raise(Read),
        Ok(_) => inv.raise(Admin),
        Err(why) => super::unclear(inv, Admin, &why),
    }
}

/// `service NAME status`, `service --status-all` read.
fn service(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let reads = match inv.args {
        [only] => only.is("--status-all") || only.is("--help") || only.is("--version"),
        [_, action] => action.is("status"),
        _ => false,
    };
    inv.raise(if reads { Read } else { Admin });
}

fn journalctl(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    for d in p.values("directory") {
        inv.tree(d, Read);
    }
    for f in p.values("file") {
        read_operand(inv, f);
    }
    if p.any(&["root", "image"]) {
        inv.objects_unknown("`journalctl` reads the journal of another root");
    }
}

fn dmesg(inv: &mut Invocation<'_, '_>, p: &Parsed) {
    inv.raise(Read);
    if p.any(&[
        "clear",
        "read-clear",
        "console-off",
        "console-on",
        "console-level",
    ]) {
        inv.raise(Admin);
    }
    for f in p.values("file") {
        inv.read(f);
    }
}

/// `mount` alone, `mount -l` and `mount [-l] -t TYPE` list; anything else mounts.
fn mount(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let lists = match inv.args {
        [] => true,
        [l] => l.is("-l"),
        [t, _] => t.is("-t"),
        [l, t, _] => l.is("-l") && t.is("-t"),
        _ => false,
    };
    if lists {
        inv.raise(Read);
    } else {
        admin(inv, &Parsed::default());
    }
}

/// `sysctl NAME` and `sysctl -a` read; `-w`, `-p`, `NAME=VALUE` write kernel settings.
fn sysctl(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let reads = inv.args.iter().all(|a| match a.text() {
        Some(t) if t.starts_with("--") => matches!(
            t,
            "--all"
                | "--values"
                | "--names"
                | "--binary"
                | "--ignore"
                | "--quiet"
                | "--help"
                | "--version"
        ),
        Some(t) if t.starts_with('-') => t[1..].chars().all(|c| "aAXNneqbhV".contains(c)),
        Some(t) => !t.contains('='),
        None => false,
    });
    inv.raise(if reads { Read } else { Admin });
}

/// `crontab -l [-u user]` reads; anything else installs or removes a crontab.
fn crontab(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let args = inv.args;
    let mut lists = false;
    let mut i = 0;
    let mut other = false;
    while let Some(a) = args.get(i) {
        match a.text() {
            Some("-l") => lists = true,
            Some("-u") => i += 1,
            _ => other = true,
        }
        i += 1;
    }
    inv.raise(if lists && !other { Read } else { Admin });
}

/// `ip [options] OBJECT [show|list|get …]` reads; every other command changes the network.
fn ip(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    const VALUES: &[&str] = &[
        "-n", "-netns", "-f", "-family", "-l", "-loops", "-rc", "-rcvbuf",
    ];
    let args = inv.args;
    let Ok(Some(object)) = verb(args, VALUES) else {
        return inv.raise(if args.is_empty() { Read } else { Admin });
    };
    let batch = args.iter().any(|a| {
        a.text().is_some_and(|t| {
            t == "-b" || t == "-batch" || t.starts_with("-force") || t == "-n" || t == "-netns"
        })
    });
    let at = args
        .iter()
        .position(|a| std::ptr::eq(a, object))
        .unwrap_or(0);
    let command = args.get(at + 1).and_then(Arg::text);
    let reads = object.is("monitor")
        || matches!(command, None | Some("show" | "list" | "ls" | "lst" | "get"));
    inv.raise(if reads && !batch { Read } else { Admin });
}

/// `ifconfig`, `route`: without operands (or only `-n`, `-a`, `-v`) they report.
fn reports_without_operands(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let reports = inv.args.len() <= 1
        && inv
            .args
            .iter()
            .all(|a| a.is("-n") || a.is("-a") || a.is("-v") || a.is("-e"));
    inv.raise(if reports { Read } else { Admin });
}

/// `hostname [-f|-s|-i|…]` reads; `hostname NAME` and `-F FILE` set the name.
fn hostname(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let reads = inv.args.iter().all(|a| {
        a.text().is_some_and(|t| {
            t.starts_with('-') && t != "-F" && t != "--file" && t != "-b" && t != "--boot"
        })
    });
    inv.raise(if reads { Read } else { Admin });
}

/// `ss -K` kills sockets.
fn ss(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    let kills = has_short(inv.args, 'K')
        || inv
            .args
            .iter()
            .any(|a| a.is("--kill") || a.text().is_none());
    inv.raise(if kills { Admin } else { Read });
}

/// `dpkg -l`, `-L`, `-s`, `-S`, `-p` and friends query; the rest installs and removes.
fn dpkg(inv: &mut Invocation<'_, '_>, _: &Parsed) {
    const QUERIES: &[&str] = &[
        "-l",
        "--list",
        "-L",
        "--listfiles",
        "-s",
        "--status",
        "-S",
        "--search",
        "-p",
        "--print-avail",
        "--get-selections",
        "--print-architecture",
        "--print-foreign-architectures",
        "--version",
        "--help",
        "-V",
        "--verify",
    ];
    let query = inv.args.first().is_some_and(|a| {
        a.text()
            .is_some_and(|t| QUERIES.contains(&t.split_once('=').map_or(t, |(n, _)| n)))
    });
    inv.raise(if query { Read } else { Admin });
}
