//! Access: an object's access list, grants and revocations (`/v1/objects/{id}/access`), and
//! the delegation requests servables make of the user who ran them.

use super::output::{Column, at, say};
use super::resources::REQUEST_COLUMNS;
use super::{Ctx, segment};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

pub const GRANT_EXAMPLES: &str = "Examples:
  dtaas grant 0190b1f3c4d27a8e9b1c2d3e4f506172 bob READ
  dtaas grant 0190b1f3c4d27a8e9b1c2d3e4f506172 everyone READ,REQUEST
  dtaas grant 0190b1f3c4d27a8e9b1c2d3e4f506172 <trust id> read,update";

pub const REVOKE_EXAMPLES: &str = "Examples:
  dtaas revoke 0190b1f3c4d27a8e9b1c2d3e4f506172 bob READ
  dtaas revoke 0190b1f3c4d27a8e9b1c2d3e4f506172 everyone";

pub const REQUESTS_EXAMPLES: &str = "Examples:
  dtaas requests
  dtaas requests --all
  dtaas requests grant 0190b1f3c4d27a8e9b1c2d3e4f506172
  dtaas requests refuse 0190b1f3c4d27a8e9b1c2d3e4f506172";

/// The seven capabilities of the DTaaS model.
pub const CAPABILITIES: [&str; 7] = [
    "DISCOVER", "CREATE", "READ", "UPDATE", "DELETE", "MANAGE", "REQUEST",
];

#[derive(Args, Debug)]
pub struct AccessArgs {
    /// The object's id.
    pub object: String,
}

#[derive(Args, Debug)]
pub struct GrantArgs {
    /// The object's id (a servable, prototype, trust, job, ...).
    pub object: String,
    /// Whom: a login or user id, a servable or trust id, or `everyone`.
    pub principal: String,
    /// Comma-separated: DISCOVER, CREATE, READ, UPDATE, DELETE, MANAGE, REQUEST.
    pub capabilities: String,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The object's id.
    pub object: String,
    /// From whom: a login or user id, a servable or trust id, or `everyone`.
    pub principal: String,
    /// Comma-separated capabilities to take away [default: all that you hold yourself].
    pub capabilities: Option<String>,
}

#[derive(Args, Debug)]
pub struct RequestsArgs {
    #[command(subcommand)]
    pub command: Option<RequestsCommand>,
    /// List the granted and refused requests too, not only the pending ones.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum RequestsCommand {
    /// Grant a pending request, from what you hold yourself.
    #[command(after_help = "Examples:\n  dtaas requests grant 0190b1f3c4d27a8e9b1c2d3e4f506172")]
    Grant { id: String },
    /// Refuse a pending request.
    #[command(after_help = "Examples:\n  dtaas requests refuse 0190b1f3c4d27a8e9b1c2d3e4f506172")]
    Refuse { id: String },
}

/// `read,Request` -> `["READ", "REQUEST"]`; anything else is an error naming the seven.
pub fn parse_capabilities(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split([',', ' ']).filter(|p| !p.is_empty()) {
        let upper = part.to_ascii_uppercase();
        if !CAPABILITIES.contains(&upper.as_str()) {
            return Err(format!(
                "{part:?} is not a capability: use {}",
                CAPABILITIES.join(", ")
            ));
        }
        if !out.contains(&upper) {
            out.push(upper);
        }
    }
    if out.is_empty() {
        return Err(format!(
            "name at least one capability: {}",
            CAPABILITIES.join(", ")
        ));
    }
    Ok(out)
}

const GRANT_COLUMNS: &[Column] = &[
    ("PRINCIPAL", |v| at(v, "/principal")),
    ("KIND", |v| at(v, "/kind")),
    ("NAME", |v| at(v, "/name")),
    ("CAPABILITIES", |v| at(v, "/capabilities")),
];

fn print_access(ctx: &Ctx, list: &Value) {
    if ctx.out.json {
        ctx.out.print_json(list);
        return;
    }
    say(&format!(
        "{} {}, owned by {}",
        at(list, "/kind"),
        at(list, "/object"),
        at(list, "/owner")
    ));
    let grants = list["grants"].as_array().cloned().unwrap_or_default();
    ctx.out.list(&grants, GRANT_COLUMNS, "No grants.");
}

fn object_path(object: &str) -> String {
    format!("/v1/objects/{}/access", segment(object))
}

pub async fn access(ctx: &Ctx, args: AccessArgs) -> Result<(), String> {
    let api = ctx.api()?;
    let list = api.get(&object_path(&args.object)).await?;
    print_access(ctx, &list);
    Ok(())
}

pub async fn grant(ctx: &Ctx, args: GrantArgs) -> Result<(), String> {
    let caps = parse_capabilities(&args.capabilities)?;
    let api = ctx.api()?;
    let list = api
        .post(
            &object_path(&args.object),
            json!({"principal": args.principal, "capabilities": caps}),
        )
        .await?;
    ctx.out.done(
        &list,
        &format!(
            "Granted {} on {} {} to {}.",
            caps.join(", "),
            at(&list, "/kind"),
            at(&list, "/object"),
            super::http::sanitize(&args.principal, 200)
        ),
    );
    Ok(())
}

pub async fn revoke(ctx: &Ctx, args: RevokeArgs) -> Result<(), String> {
    let caps = args
        .capabilities
        .as_deref()
        .map(parse_capabilities)
        .transpose()?;
    let api = ctx.api()?;
    let mut path = format!("{}/{}", object_path(&args.object), segment(&args.principal));
    if let Some(c) = &caps {
        path.push_str(&format!("?capabilities={}", c.join(",")));
    }
    let list = api.delete(&path).await?;
    let what = caps.map_or("what you hold".to_owned(), |c| c.join(", "));
    ctx.out.done(
        &list,
        &format!(
            "Revoked {what} on {} {} from {}.",
            at(&list, "/kind"),
            at(&list, "/object"),
            super::http::sanitize(&args.principal, 200)
        ),
    );
    Ok(())
}

pub async fn requests(ctx: &Ctx, args: RequestsArgs) -> Result<(), String> {
    let api = ctx.api()?;
    let (id, grant) = match args.command {
        None => {
            let query: Vec<(&str, String)> = if args.all {
                Vec::new()
            } else {
                vec![("state", "pending".to_owned())]
            };
            let items = api
                .list("/v1/delegation-requests", &query, None, 1000)
                .await?;
            let empty = if args.all {
                "No delegation requests."
            } else {
                "No pending delegation requests."
            };
            ctx.out.list(&items, REQUEST_COLUMNS, empty);
            return Ok(());
        }
        Some(RequestsCommand::Grant { id }) => (id, true),
        Some(RequestsCommand::Refuse { id }) => (id, false),
    };
    let verb = if grant { "grant" } else { "refuse" };
    let request = api
        .post(
            &format!("/v1/delegation-requests/{}/{verb}", segment(&id)),
            json!({}),
        )
        .await?;
    let sentence = if grant {
        format!(
            "Granted: servable {} now holds {} on {}.",
            at(&request, "/servable"),
            at(&request, "/capabilities"),
            at(&request, "/object")
        )
    } else {
        format!(
            "Refused: servable {} does not get {} on {}.",
            at(&request, "/servable"),
            at(&request, "/capabilities"),
            at(&request, "/object")
        )
    };
    ctx.out.done(&request, &sentence);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read_in_any_case_and_checked() {
        assert_eq!(
            parse_capabilities("read,Request READ").unwrap(),
            vec!["READ", "REQUEST"]
        );
        assert!(
            parse_capabilities("READ,WRITE")
                .unwrap_err()
                .contains("WRITE")
        );
        assert!(parse_capabilities(",").is_err());
    }
}
