//! The man page documents every option and every output field: the spec's
//! options and JSON keys, and every option `--help` lists, so an option added
//! without documentation fails here. No root needed.

use std::collections::BTreeSet;
use std::process::Command;

const MAN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/man8/tcptracer.8");

/// The long options of the agreed CLI spec.
const SPEC_LONG_OPTIONS: &[&str] = &[
    "--verbose",
    "--timestamp",
    "--pid",
    "--netns",
    "--ipv4",
    "--ipv6",
    "--uid",
    "--cgroup",
    "--port",
    "--comm",
    "--print-uid",
    "--wide",
    "--json",
    "--failed",
    "--btf",
    "--backend",
    "--check",
    "--debug",
];

/// The short options of the spec (`-h` is help).
const SPEC_SHORT_OPTIONS: &[&str] = &["-h", "-v", "-t", "-p", "-N", "-4", "-6", "-u", "-U", "-w"];

/// Every key of the JSON event objects (incl. failed events) and of the summary line.
const JSON_KEYS: &[&str] = &[
    "type",
    "time",
    "mono_ns",
    "pid",
    "tid",
    "comm",
    "exe",
    "uid",
    "gid",
    "ip",
    "saddr",
    "daddr",
    "sport",
    "dport",
    "netns",
    "cgroup",
    "error",
    "errno",
    "duration_ns",
    "bytes_sent",
    "bytes_received",
    "events",
    "connect",
    "accept",
    "close",
    "failed",
    "lost",
    "lost_perf",
    "lost_kernel",
    "lost_queue",
    "skipped",
    "uncommitted",
    "late",
];

/// Every table column header.
const TABLE_COLUMNS: &[&str] = &[
    "TIME(s)", "TIME(ns)", "UID", "T", "TYPE", "PID", "COMM", "IP", "SADDR", "DADDR", "SPORT", "DPORT",
    "NETNS", "ERROR", "TX_KB", "RX_KB", "MS", "EXE",
];

/// The binary under test: `TCPTRACER_BIN`, else cargo's build of this package.
fn bin() -> String {
    std::env::var("TCPTRACER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tcptracer").to_string())
}

/// groff source text → plain text: `\-` is `-`, `\e` a backslash, font and
/// zero-width escapes vanish.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('-') => out.push('-'),
            Some('e') | Some('\\') => out.push('\\'),
            Some('&') | Some('%') | Some('/') | Some(',') => {}
            Some('f') => {
                // \fB, \fI, \fR, \fP, or \f(XX / \f[XX]
                match it.next() {
                    Some('(') => {
                        it.next();
                        it.next();
                    }
                    Some('[') => while it.next().is_some_and(|c| c != ']') {},
                    _ => {}
                }
            }
            Some('(') => {
                let name: String = [it.next(), it.next()].into_iter().flatten().collect();
                out.push_str(match name.as_str() {
                    "dq" => "\"",
                    "em" | "en" => "-",
                    _ => "?",
                });
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The man page as (section, unescaped tag) pairs: the line after each `.TP`,
/// without its font macro, split into words at spaces and commas. A `.TP`
/// entry is what documents an option or a field.
struct Man {
    text: String,
    tags: Vec<(String, Vec<String>)>,
}

impl Man {
    fn load() -> Man {
        let text = std::fs::read_to_string(MAN).unwrap_or_else(|e| panic!("{MAN}: {e}"));
        let mut tags = Vec::new();
        let mut section = String::new();
        let mut after_tp = false;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix(".SH ") {
                section = unescape(name).trim_matches('"').to_string();
                after_tp = false;
                continue;
            }
            if line.trim() == ".TP" {
                after_tp = true;
                continue;
            }
            if after_tp {
                after_tp = false;
                let mut tag = line;
                for m in [".B ", ".I ", ".BR ", ".BI ", ".IR ", ".RB ", ".IB ", ".RI "] {
                    if let Some(rest) = tag.strip_prefix(m) {
                        tag = rest;
                        break;
                    }
                }
                let tag = unescape(tag).replace('"', "");
                let words = tag.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty());
                tags.push((section.clone(), words.map(str::to_string).collect()));
            }
        }
        Man { text: unescape(&text), tags }
    }

    /// The tag words of `.TP` entries in this section.
    fn tag_words(&self, section: &str) -> BTreeSet<&str> {
        self.tags
            .iter()
            .filter(|(s, _)| s == section)
            .flat_map(|(_, words)| words.iter().map(String::as_str))
            .collect()
    }
}

fn missing<'a>(want: impl IntoIterator<Item = &'a str>, have: &BTreeSet<&str>) -> Vec<&'a str> {
    want.into_iter().filter(|w| !have.contains(w)).collect()
}

#[test]
fn man_page_documents_the_spec_options() {
    let man = Man::load();
    let options = man.tag_words("OPTIONS");
    assert!(!options.is_empty(), "{MAN}: no .TP entries under OPTIONS");
    let long = missing(SPEC_LONG_OPTIONS.iter().copied(), &options);
    assert!(long.is_empty(), "{MAN}: OPTIONS has no entry for {long:?}");
    let short = missing(SPEC_SHORT_OPTIONS.iter().copied(), &options);
    assert!(short.is_empty(), "{MAN}: OPTIONS has no entry for {short:?}");
    for opt in SPEC_LONG_OPTIONS {
        assert!(man.text.contains(opt), "{MAN} never mentions {opt}");
    }
    assert!(
        man.text.contains("TCPTRACER_KPROBE_TRACEFS"),
        "{MAN}: ENVIRONMENT lacks TCPTRACER_KPROBE_TRACEFS"
    );
}

#[test]
fn man_page_documents_every_field() {
    let man = Man::load();
    let fields = man.tag_words("FIELDS");
    let keys = missing(JSON_KEYS.iter().copied(), &fields);
    assert!(keys.is_empty(), "{MAN}: FIELDS has no entry for the JSON keys {keys:?}");
    let columns = missing(TABLE_COLUMNS.iter().copied(), &fields);
    assert!(columns.is_empty(), "{MAN}: FIELDS has no entry for the columns {columns:?}");
    // The JSON examples show the keys as they are printed.
    for key in JSON_KEYS.iter().filter(|k| !matches!(**k, "error" | "errno")) {
        assert!(man.text.contains(&format!("\"{key}\":")), "{MAN}: no JSON example shows \"{key}\":");
    }
    let backends = man.tag_words("BACKENDS");
    let absent = missing(["auto", "fentry", "kprobe", "tracepoint"], &backends);
    assert!(absent.is_empty(), "{MAN}: BACKENDS has no entry for {absent:?}");
}

/// Every option `tcptracer --help` lists has an entry under OPTIONS. Fails
/// when an option is added to the CLI without a man page entry.
#[test]
fn man_page_documents_every_option_of_help() {
    let out = Command::new(bin()).arg("--help").output().unwrap_or_else(|e| panic!("{}: {e}", bin()));
    assert!(out.status.success(), "--help: {:?}", out.status);
    let help = String::from_utf8_lossy(&out.stdout);
    let mut listed = BTreeSet::new();
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        let word = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        let long = word.strip_prefix("--").is_some_and(|name| {
            name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        let short = word.len() == 2 && word.starts_with('-') && word.as_bytes()[1].is_ascii_alphanumeric();
        if long || short {
            listed.insert(word.to_string());
        }
    }
    assert!(listed.contains("--help"), "found no options in --help:\n{help}");
    let man = Man::load();
    let options = man.tag_words("OPTIONS");
    let undocumented = missing(listed.iter().map(String::as_str), &options);
    assert!(
        undocumented.is_empty(),
        "{MAN}: OPTIONS has no entry for {undocumented:?}, which --help lists:\n{help}"
    );
}

/// groff renders the page without a warning (skipped where groff is absent).
#[test]
fn man_page_renders_without_warnings() {
    let out = match Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z", MAN]).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: groff: {e}");
            return;
        }
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "groff -ww on {MAN}: {:?}\n{err}", out.status);
}

#[test]
fn unescape_groff() {
    assert_eq!(unescape(r"\-\-print\-uid"), "--print-uid");
    assert_eq!(unescape(r"\fB\-p\fR PID, \e\(dq"), r#"-p PID, \""#);
    assert_eq!(unescape(r"L\['o]pez"), r"L\['o]pez");
}
