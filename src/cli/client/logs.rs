//! A log as `/v1` serves it, for instances and jobs alike: the stored lines as one JSON list,
//! or (`follow`) server-sent events, one `log` event per line and an `end` event once its owner
//! has ended. What a container printed goes to a terminal without its control sequences.

use super::Ctx;
use super::http::{Api, Payload, SseParser, sanitize};
use super::output::{at, say};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};
use std::io::IsTerminal;

/// Text a container or a build printed, fit for standard output: on a terminal, control
/// characters but tabs and line ends (escape sequences that could move the cursor or retitle
/// the window) become `?`; into a pipe or a file, it goes as it came.
pub fn printable(line: &str, terminal: bool) -> String {
    if !terminal {
        return line.to_owned();
    }
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' && c != '\n' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Prints the log at `path` (`/v1/instances/{id}/logs`, `/v1/jobs/{id}/logs`); `owner` names
/// what it belongs to in the closing note ("instance", "job"). With `follow` it prints lines as
/// they come and returns the `end` event's state, once the owner has ended.
pub async fn print(
    ctx: &Ctx,
    api: &Api,
    path: &str,
    follow: bool,
    owner: &str,
) -> Result<Option<String>, String> {
    api.require_key()?;
    let terminal = std::io::stdout().is_terminal();
    if !follow {
        let lines = api.get(path).await?;
        if ctx.out.json {
            ctx.out.print_json(&lines);
            return Ok(None);
        }
        let text: Vec<String> = lines
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|line| printable(line["logline"].as_str().unwrap_or_default(), terminal))
            .collect();
        if !text.is_empty() {
            say(&text.join("\n"));
        }
        return Ok(None);
    }
    let response = api
        .send(
            Method::GET,
            &format!("{path}?follow=1"),
            Payload::Empty,
            &[(hyper::header::ACCEPT, "text/event-stream".to_owned())],
        )
        .await?;
    let response = api.check(response).await?;
    let mut body = response.into_body();
    let mut parser = SseParser::default();
    let mut ended = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the log stream broke off: {e}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for event in parser.feed(&data) {
            match event.event.as_str() {
                "log" if ctx.out.json => {
                    say(&json!({"id": event.id, "logline": event.data}).to_string());
                }
                "log" => say(&printable(&event.data, terminal)),
                "end" => {
                    let end: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    if ctx.out.json {
                        say(&json!({"end": end}).to_string());
                    } else {
                        eprintln!("({owner} ended: {})", at(&end, "/state"));
                    }
                    ended = Some(end["state"].as_str().unwrap_or_default().to_owned());
                }
                "error" => {
                    return Err(format!(
                        "the log stream ended with an error: {}",
                        sanitize(&event.data, 500)
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_no_control_sequences() {
        let line = "red \u{1b}[31mtext\u{7}\tend\r\n";
        assert_eq!(printable(line, true), "red ?[31mtext?\tend?\n");
        assert_eq!(printable(line, false), line);
    }
}
