//! What the client prints: aligned tables and short sentences for people, the API's JSON with
//! `--json`. Text that came from the server goes through [`super::http::sanitize`] (no
//! terminal control sequences from other users' names).

use super::http::sanitize;
use serde_json::Value;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

/// Writes `text` and a newline to standard output. When the reader has gone (`dtaas list |
/// head`), the process ends quietly with the status a SIGPIPE gives, instead of failing on
/// every later line.
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let result = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("dtaas: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// A column: its header and how a row's cell is read from an item.
pub type Column = (&'static str, fn(&Value) -> String);

impl Output {
    /// Prints a JSON value as the API gave it (pretty).
    pub fn print_json(&self, v: &Value) {
        match serde_json::to_string_pretty(v) {
            Ok(text) => say(&text),
            Err(_) => say(&v.to_string()),
        }
    }

    /// `--json`: the value; else the sentence.
    pub fn done(&self, v: &Value, sentence: &str) {
        if self.json {
            self.print_json(v);
        } else {
            say(sentence);
        }
    }

    /// A list: `--json` prints the items as one array; else a table, or `empty` when there is
    /// nothing.
    pub fn list(&self, items: &[Value], columns: &[Column], empty: &str) {
        if self.json {
            self.print_json(&Value::Array(items.to_vec()));
            return;
        }
        if items.is_empty() {
            say(empty);
            return;
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|item| columns.iter().map(|(_, cell)| cell(item)).collect())
            .collect();
        let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
        say(table(&headers, &rows).trim_end_matches('\n'));
    }
}

/// An object's fields, one per line: `name:` and the value, the values aligned.
pub fn fields(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    let lines: Vec<String> = rows
        .iter()
        .map(|(k, v)| format!("{:<width$}{v}", format!("{k}:")))
        .collect();
    say(&lines.join("\n"));
}

/// An aligned table: two spaces between columns, the last one not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A value as a cell: strings as they are (sanitised), null as `-`, lists joined with `,`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => sanitize(s, 120),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(_) => sanitize(&v.to_string(), 80),
    }
}

/// The cell at a JSON pointer (`/prototype/name`).
pub fn at(item: &Value, pointer: &str) -> String {
    item.pointer(pointer)
        .map(cell)
        .unwrap_or_else(|| "-".into())
}

/// A timestamp as `2026-01-02 10:11:12` (UTC, as the API gives it).
pub fn time(item: &Value, pointer: &str) -> String {
    match item.pointer(pointer).and_then(Value::as_str) {
        Some(t) if t.len() >= 19 => sanitize(&t[..19].replacen('T', " ", 1), 19),
        Some(t) => sanitize(t, 40),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_aligned_and_the_last_column_is_not_padded() {
        let t = table(
            &["ID", "NAME", "TYPE"],
            &[
                vec!["1".into(), "hello-daemon".into(), "daemon".into()],
                vec!["22".into(), "x".into(), "-".into()],
            ],
        );
        assert_eq!(
            t,
            "ID  NAME          TYPE\n1   hello-daemon  daemon\n22  x             -\n"
        );
    }

    #[test]
    fn cells_read_values_and_hide_control_characters() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["READ", "REQUEST"])), "READ,REQUEST");
        assert_eq!(cell(&json!(true)), "yes");
        assert_eq!(cell(&json!("a\u{1b}[2Jb")), "a?[2Jb");
        let item = json!({"prototype": {"name": "p", "tag": "1"},
                          "created": "2026-01-02T10:11:12.123456Z"});
        assert_eq!(at(&item, "/prototype/name"), "p");
        assert_eq!(at(&item, "/nothing"), "-");
        assert_eq!(time(&item, "/created"), "2026-01-02 10:11:12");
    }
}
