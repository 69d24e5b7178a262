//! Reading a Dockerfile as the engine's legacy builder does, far enough to find what would make
//! the engine reach the network on a user's behalf before anything is built:
//!
//! - `ADD` with a URL source (`http://...`, any `scheme://`, git's `user@host:path`): the engine
//!   fetches it itself, from the server's own network (loopback, link-local metadata, private
//!   ranges), whatever the build's network is. Refused, also inside `ONBUILD`, also in JSON
//!   form, also behind quotes or escapes; a source using a variable (`ADD $URL /x`) is refused
//!   too, since its value may come from `ENV`, `ARG` or the base image.
//! - the images `FROM` and `COPY --from` name, so that the builder can check the base images'
//!   `ONBUILD` triggers and where a missing image would be pulled from.
//!
//! The legacy builder's reading: an optional `# escape=` parser directive at the very top
//! (`\` by default, or `` ` ``); lines whose first non-blank character is `#` are comments,
//! also between continuation lines; a line ending with the escape character (blanks after it
//! allowed) continues on the next, and the pieces are joined as they are; blank continuation
//! lines are skipped; instruction names are case-insensitive; leading `--flag[=value]` words
//! are flags; `ADD` takes a JSON array or whitespace-separated words. The text is checked with
//! both escape characters, so a directive read differently here than by the engine cannot hide
//! an instruction.
//!
//! Pure: this only reads text.

use std::collections::{HashMap, HashSet};

/// One instruction: the line it starts on (from 1) and its text with continuations joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    pub text: String,
}

/// What to do instead of fetching in the build.
const ADVICE: &str = "attach the file to the image (the attachments field, or add it to the \
                      repository) and COPY it instead";

/// Refuses a Dockerfile with an `ADD` that would fetch from the network (or might: a variable
/// source); the message names the line, the source and what to do instead.
pub fn check(text: &str) -> Result<(), String> {
    let declared = escape_directive(text);
    let other = if declared == '\\' { '`' } else { '\\' };
    for escape in [declared, other] {
        for instruction in instructions(text, escape) {
            check_one(&instruction.text, escape)
                .map_err(|why| format!("Dockerfile line {}: {why}", instruction.line))?;
        }
    }
    Ok(())
}

/// Refuses one instruction (an `ONBUILD` trigger of a base image) that would fetch.
pub fn check_instruction(text: &str) -> Result<(), String> {
    check_one(text, '\\').and_then(|()| check_one(text, '`'))
}

fn check_one(text: &str, escape: char) -> Result<(), String> {
    let (command, rest) = split_command(text);
    match command.as_str() {
        "add" => check_add(rest, escape),
        "onbuild" => {
            let (sub, sub_rest) = split_command(rest);
            if sub == "add" {
                check_add(sub_rest, escape).map_err(|why| format!("ONBUILD {why}"))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn check_add(rest: &str, escape: char) -> Result<(), String> {
    let (_flags, args) = extract_flags(rest);
    let args = arguments(args);
    for (i, arg) in args.iter().enumerate() {
        // The destination (the last of two or more) may use variables: it fetches nothing.
        let destination = args.len() >= 2 && i == args.len() - 1;
        if let Some(why) = refused_source(arg, escape, !destination) {
            return Err(format!("ADD {arg}: {why}"));
        }
    }
    // However the flags were read: no word of the instruction may be a URL.
    for word in rest.split(is_blank).filter(|w| w.contains("://")) {
        if let Some(why) = refused_source(word, escape, false) {
            return Err(format!("ADD {word}: {why}"));
        }
    }
    Ok(())
}

/// Why an `ADD` argument is refused, if it is (`source`: a variable is refused too).
fn refused_source(arg: &str, escape: char, source: bool) -> Option<String> {
    if source && arg.contains('$') {
        return Some(format!(
            "ADD sources may not use variables, which could name a URL; write the path out, \
             or {ADVICE}"
        ));
    }
    // What the engine's word processing would make of it: quotes and escapes removed.
    let plain: String = arg
        .chars()
        .filter(|c| !matches!(c, '"' | '\'') && *c != escape)
        .collect();
    let reason = if plain.contains("://") {
        "ADD may not fetch URLs: the engine would fetch it from the server's own network"
    } else if is_scp_like(&plain) {
        "ADD may not fetch git repositories: the engine would fetch it from the server's own \
         network"
    } else {
        return None;
    };
    Some(format!("{reason}; {ADVICE}"))
}

/// `user@host:path` (git's ssh form).
fn is_scp_like(word: &str) -> bool {
    let head = word.split('/').next().unwrap_or_default();
    matches!(head.split_once('@'), Some((user, host)) if !user.is_empty() && host.contains(':'))
}

/// The escape character a `# escape=` parser directive at the top sets (`\` without one).
pub fn escape_directive(text: &str) -> char {
    let mut escape = '\\';
    for (i, raw) in text.split('\n').enumerate() {
        let raw = if i == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let Some((name, value)) = directive(raw.trim_end_matches('\r').trim_start()) else {
            break;
        };
        if name.eq_ignore_ascii_case("escape") {
            match value.chars().next() {
                Some(c @ ('`' | '\\')) => escape = c,
                _ => break,
            }
        }
    }
    escape
}

/// `# name=value`.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim_matches([' ', '\t']);
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    let value = value.trim_matches([' ', '\t']);
    (valid && !value.is_empty()).then_some((name, value))
}

/// The instructions of a Dockerfile read with `escape` as the escape character.
pub fn instructions(text: &str, escape: char) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate();
    while let Some((i, raw)) = lines.next() {
        let raw = if i == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let token = raw.trim_start();
        let token = if token.starts_with('#') { "" } else { token };
        let (first, mut ended) = trim_continuation(token, escape);
        if ended && first.is_empty() {
            continue;
        }
        let mut line = first.to_owned();
        while !ended {
            let Some((_, next)) = lines.next() else {
                break;
            };
            let trimmed = next.trim_start();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let (piece, end) = trim_continuation(next, escape);
            line.push_str(piece);
            ended = end;
        }
        out.push(Instruction {
            line: i + 1,
            text: line,
        });
    }
    out
}

/// Removes a trailing escape character (blanks after it allowed): (the rest, whether the
/// instruction ends here).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(rest) => (rest, false),
        None => (line, true),
    }
}

/// (lowercase instruction name, the rest).
fn split_command(text: &str) -> (String, &str) {
    let text = text.trim();
    match text.find(is_blank) {
        Some(i) => (
            text[..i].to_ascii_lowercase(),
            text[i..].trim_start_matches(is_blank),
        ),
        None => (text.to_ascii_lowercase(), ""),
    }
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

/// Leading `--flag[=value]` words (quotes and `\` as the engine reads them): (flags, the rest).
fn extract_flags(line: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut pos = 0;
    let offset = |pos: usize| -> usize { bytes[..pos].iter().map(|c| c.len_utf8()).sum() };
    loop {
        while pos < bytes.len() && bytes[pos].is_whitespace() {
            pos += 1;
        }
        if pos + 1 >= bytes.len() || bytes[pos] != '-' || bytes[pos + 1] != '-' {
            return (flags, &line[offset(pos.min(bytes.len()))..]);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while pos < bytes.len() {
            let c = bytes[pos];
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    pos += 1;
                    if let Some(next) = bytes.get(pos) {
                        word.push(*next);
                    }
                }
                _ => word.push(c),
            }
            pos += 1;
        }
        match word.strip_prefix("--") {
            Some("") => return (flags, &line[offset(pos)..]),
            Some(flag) => flags.push(flag.to_owned()),
            None => flags.push(word),
        }
    }
}

/// `ADD`'s arguments: a JSON array of strings, else whitespace-separated words.
fn arguments(rest: &str) -> Vec<String> {
    let rest = rest.trim_start();
    if rest.starts_with('[') {
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
        if let Some(Ok(serde_json::Value::Array(items))) = stream.next() {
            return items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect();
        }
    }
    rest.split(is_blank)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An image a Dockerfile builds from: `FROM` (whose `ONBUILD` triggers run) or `COPY --from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub line: usize,
    pub reference: String,
    /// Named by `FROM` (its triggers run in this build).
    pub base: bool,
}

/// The images (not stages, not `scratch`) the Dockerfile uses, with the global `ARG` defaults
/// substituted as the engine does (the builder passes no build arguments).
pub fn images(text: &str) -> Vec<ImageRef> {
    let escape = escape_directive(text);
    let mut args: HashMap<String, String> = HashMap::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut seen_from = false;
    let mut out: Vec<ImageRef> = Vec::new();
    for instruction in instructions(text, escape) {
        let (command, rest) = split_command(&instruction.text);
        let (flags, rest) = extract_flags(rest);
        match command.as_str() {
            "arg" if !seen_from => {
                for word in arguments(rest) {
                    let (name, value) = word.split_once('=').unwrap_or((&word, ""));
                    let value = expand(&unquote(value), &args);
                    args.insert(name.to_owned(), value);
                }
            }
            "from" => {
                seen_from = true;
                let words = arguments(rest);
                let Some(first) = words.first() else { continue };
                let reference = expand(&unquote(first), &args);
                let lower = reference.to_ascii_lowercase();
                if lower != "scratch" && !stages.contains(&lower) && !reference.is_empty() {
                    out.push(ImageRef {
                        line: instruction.line,
                        reference,
                        base: true,
                    });
                }
                if let [_, r#as, name, ..] = words.as_slice()
                    && r#as.eq_ignore_ascii_case("as")
                {
                    stages.insert(name.to_ascii_lowercase());
                }
            }
            "copy" => {
                for flag in flags {
                    let Some(from) = flag.strip_prefix("from=") else {
                        continue;
                    };
                    let lower = from.to_ascii_lowercase();
                    let is_index = !from.is_empty() && from.chars().all(|c| c.is_ascii_digit());
                    if !stages.contains(&lower) && !is_index && !from.is_empty() {
                        out.push(ImageRef {
                            line: instruction.line,
                            reference: from.to_owned(),
                            base: false,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn unquote(word: &str) -> String {
    word.chars().filter(|c| !matches!(c, '"' | '\'')).collect()
}

/// `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}` from `vars` (unset: empty).
fn expand(word: &str, vars: &HashMap<String, String>) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            let Some(close) = chars[i..].iter().position(|c| *c == '}') else {
                out.extend(&chars[i..]);
                break;
            };
            let inner: String = chars[i + 2..i + close].iter().collect();
            let (name, modifier) = match inner.split_once(':') {
                Some((n, m)) => (n.to_owned(), Some(m.to_owned())),
                None => (inner.clone(), None),
            };
            let value = vars.get(&name).filter(|v| !v.is_empty());
            match (value, modifier.as_deref()) {
                (Some(v), None) => out.push_str(v),
                (None, None) => {}
                (Some(_), Some(m)) if m.starts_with('+') => out.push_str(&m[1..]),
                (Some(v), Some(_)) => out.push_str(v),
                (None, Some(m)) if m.starts_with('-') => out.push_str(&m[1..]),
                (None, Some(_)) => {}
            }
            i += close + 1;
        } else {
            let len = chars[i + 1..].iter().take_while(|c| is_name(**c)).count();
            if len == 0 {
                out.push('$');
                i += 1;
                continue;
            }
            let name: String = chars[i + 1..i + 1 + len].iter().collect();
            if let Some(v) = vars.get(&name) {
                out.push_str(v);
            }
            i += 1 + len;
        }
    }
    out
}

/// The registry host (and port) an image reference names, if it names one: Docker's rule, a
/// first path component with a `.` or a `:`, or `localhost`.
pub fn registry_host(reference: &str) -> Option<(String, Option<u16>)> {
    let (first, _) = reference.split_once('/')?;
    if !(first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first) {
        return None;
    }
    if let Some(rest) = first.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host.to_owned(), port));
    }
    match first.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok())),
        None => Some((first.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match check(text) {
            Err(e) => e,
            Ok(()) => panic!("accepted: {text:?}"),
        }
    }

    #[test]
    fn local_sources_pass() {
        for text in [
            "FROM busybox\nADD archive.tar /opt/\nCOPY a b\n",
            "FROM busybox\nADD --chown=1:1 a.txt b.txt /dst/\n",
            "FROM busybox\nENV D=/opt\nADD --chown=$U:$G a.tar $D/\n",
            "FROM busybox\nADD [\"a b.txt\", \"/dst/\"]\n",
            "FROM busybox\nRUN echo http://example.org\nCOPY http-x /y\n",
            "# ADD http://x /y\nFROM busybox\n",
            "FROM busybox\nRUN echo \\\n  # ADD http://x /y\n  done\n",
        ] {
            assert_eq!(check(text), Ok(()), "{text:?}");
        }
    }

    #[test]
    fn url_sources_are_refused_with_the_line() {
        let e = refused("FROM busybox\nADD http://127.0.0.1:5000/readyz /x\nRUN cat /x\n");
        assert!(
            e.starts_with("Dockerfile line 2: ADD http://127.0.0.1:5000/readyz"),
            "{e}"
        );
        assert!(e.contains("COPY"), "{e}");
        assert!(refused("FROM busybox\nadd HTTPS://h/x /x\n").contains("line 2"));
        assert!(refused("FROM busybox\nAdd ftp://h/x /x\n").contains("URLs"));
        assert!(refused("FROM busybox\nADD a.txt http://h/x /dst/\n").contains("http://h/x"));
        assert!(
            refused("FROM busybox\nADD --chown=1:1 --chmod=644 http://h/x /x\n").contains("line 2")
        );
        assert!(
            refused("FROM busybox\nADD --chown=\"a b\" http://h/x /x\n").contains("http://h/x")
        );
        assert!(refused("FROM busybox\nADD git@github.com:o/r.git /src\n").contains("git"));
        assert!(refused("FROM busybox\nADD [\"http://h/x\", \"/x\"]\n").contains("URLs"));
        assert!(
            refused("FROM busybox\nADD [\"a\", \"http://h/x\", \"/x\"] junk\n").contains("URLs")
        );
        assert!(refused("FROM busybox\nADD \"http://h/x\" /x\n").contains("URLs"));
        assert!(refused("FROM busybox\nADD h\\ttp://h/x /x\n").contains("URLs"));
        assert!(refused("FROM busybox\nADD $URL /x\n").contains("variables"));
        assert!(refused("FROM busybox\nADD ${U}/x /x\n").contains("variables"));
        assert!(refused("FROM busybox\nADD a $U /x\n").contains("variables"));
        assert!(refused("FROM busybox\nADD $U\n").contains("variables"));
        assert!(refused("FROM busybox\nONBUILD ADD http://h/x /x\n").contains("ONBUILD ADD"));
        assert!(refused("FROM busybox\nonbuild add http://h/x /x\n").contains("line 2"));
        assert!(refused("\u{feff}ADD http://h/x /x\n").contains("line 1"));
        assert!(refused("FROM busybox\r\nADD http://h/x /x\r\n").contains("line 2"));
    }

    #[test]
    fn continuations_comments_and_blank_lines() {
        let e = refused("FROM busybox\nADD \\\n  http://h/x \\\n  /x\n");
        assert!(e.contains("line 2"), "{e}");
        // A comment and a blank line inside the continuation are skipped.
        let e = refused("FROM busybox\nADD \\\n# comment\n\n  http://h/x /x\n");
        assert!(e.contains("line 2"), "{e}");
        // Blanks after the escape character still continue.
        let e = refused("FROM busybox\nRUN true\nA\\ \t\nDD http://h/x /x\n");
        assert!(e.contains("line 3"), "{e}");
        // The joined pieces are not separated: `AD` + `D` is ADD.
        assert!(refused("FROM busybox\nAD\\\nD http://h/x /x\n").contains("line 2"));
        // The URL split over lines.
        assert!(refused("FROM busybox\nADD http:/\\\n/h/x /x\n").contains("URLs"));
        // A comment line ending with the escape does not continue.
        assert_eq!(check("# a \\\nFROM busybox\n"), Ok(()));
    }

    #[test]
    fn the_escape_directive_is_honoured_and_both_readings_are_checked() {
        assert_eq!(escape_directive("# escape=`\nFROM x\n"), '`');
        assert_eq!(escape_directive("#escape = `\nFROM x\n"), '`');
        assert_eq!(escape_directive("# syntax=x\n# escape=`\nFROM x\n"), '`');
        assert_eq!(escape_directive("\n# escape=`\nFROM x\n"), '\\');
        assert_eq!(escape_directive("FROM x\n# escape=`\n"), '\\');
        let lines = instructions("# escape=`\nFROM x\nADD `\n  http://h/x /x\n", '`');
        assert_eq!(lines[1].text, "ADD   http://h/x /x");
        assert_eq!(lines[1].line, 3);
        assert!(refused("# escape=`\nFROM busybox\nADD `\n  http://h/x /x\n").contains("line 3"));
        // With ` as the escape, a backslash at the end does not continue: the ADD stands
        // alone; read with \ it would be part of the RUN. Either way it is refused.
        assert!(
            refused("# escape=`\nFROM busybox\nRUN echo \\\nADD http://h/x /x\n")
                .contains("line 4")
        );
        assert!(refused("FROM busybox\nRUN echo `\nADD http://h/x /x\n").contains("line 3"));
    }

    #[test]
    fn flags_are_read_as_the_engine_reads_them() {
        let (flags, rest) = extract_flags("--chown=a --chmod='6 4' src dst");
        assert_eq!(flags, ["chown=a", "chmod=6 4"]);
        assert_eq!(rest, "src dst");
        let (flags, rest) = extract_flags("-- --not-a-flag dst");
        assert!(flags.is_empty());
        assert_eq!(rest, " --not-a-flag dst");
        assert_eq!(extract_flags("src").1, "src");
        assert_eq!(arguments("[\"a\", \"b\"]"), ["a", "b"]);
        assert_eq!(arguments("[not json a"), ["[not", "json", "a"]);
    }

    #[test]
    fn images_and_registry_hosts() {
        let text = "ARG BASE=busybox\nARG REG=127.0.0.1:5000\nFROM $BASE AS build\n\
                    FROM ${REG}/a/b:1\nCOPY --from=build /x /y\nCOPY --from=0 /x /y\n\
                    COPY --from=other:2 /x /y\nFROM scratch\nFROM build\n";
        let refs: Vec<(String, bool)> = images(text)
            .into_iter()
            .map(|r| (r.reference, r.base))
            .collect();
        assert_eq!(
            refs,
            [
                ("busybox".to_owned(), true),
                ("127.0.0.1:5000/a/b:1".to_owned(), true),
                ("other:2".to_owned(), false),
            ]
        );
        assert_eq!(registry_host("busybox"), None);
        assert_eq!(registry_host("alice/app:1"), None);
        assert_eq!(
            registry_host("127.0.0.1:5000/a/b:1"),
            Some(("127.0.0.1".into(), Some(5000)))
        );
        assert_eq!(
            registry_host("localhost/x"),
            Some(("localhost".into(), None))
        );
        assert_eq!(
            registry_host("registry.example.org/x@sha256:00"),
            Some(("registry.example.org".into(), None))
        );
        assert_eq!(
            registry_host("[::1]:5000/x"),
            Some(("::1".into(), Some(5000)))
        );
    }

    #[test]
    fn trigger_instructions_are_checked() {
        assert!(check_instruction("ADD http://h/x /x").is_err());
        assert!(check_instruction("ADD a /x").is_ok());
        assert!(check_instruction("RUN wget http://h/x").is_ok());
    }
}
