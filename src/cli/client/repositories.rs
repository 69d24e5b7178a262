//! sregistry's `search` and `share`: the registry's repositories as `/v1/repositories` lists
//! them (only those the caller may pull), and a repository shared by a grant on it
//! (`/v1/objects/{id}/access`). A tag is not an object of its own: sharing `NAME:TAG` shares
//! the repository, every tag of it.

use super::access::parse_capabilities;
use super::output::{at, say, table};
use super::progress::size;
use super::registry::{Registry, parse_repo_ref, split_reference};
use super::{Ctx, segment};
use clap::Args;
use serde_json::{Value, json};

pub const SEARCH_EXAMPLES: &str = "Examples:
  dtaas search                    # every repository you may pull
  dtaas search hello              # those whose name holds \"hello\" (any case)
  dtaas search alice/ --json";

pub const SHARE_EXAMPLES: &str = "Examples:
  dtaas share tool:1 --with bob                  # your alice/tool, READ: bob may pull it
  dtaas share alice/tool --with bob --capabilities READ,DELETE
  dtaas share tool --with everyone";

/// How many tag names a search shows per repository.
const TAGS_SHOWN: usize = 5;

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Text the repository's name holds (ignoring case) [default: every repository you may
    /// pull].
    pub query: Option<String>,
    /// At most this many repositories.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ShareArgs {
    /// The repository, `NAME[:TAG]` (a NAME without `/` that is not there is looked for as
    /// <your login>/NAME). A tag given must exist; the grant covers the whole repository.
    pub name: String,
    /// With whom: a login or user id, a trust id, or `everyone`.
    #[arg(long = "with", value_name = "LOGIN")]
    pub with: String,
    /// Comma-separated capabilities on the repository: READ pulls, DELETE deletes tags,
    /// MANAGE shares further.
    #[arg(long, value_name = "CAPS", default_value = "READ")]
    pub capabilities: String,
}

pub async fn search(ctx: &Ctx, args: SearchArgs) -> Result<(), String> {
    let api = ctx.api()?;
    let query: Vec<(&str, String)> = match &args.query {
        Some(q) if !q.is_empty() => vec![("name", q.clone())],
        _ => Vec::new(),
    };
    let repos = api
        .list("/v1/repositories", &query, args.limit, 1000)
        .await?;
    if ctx.out.json {
        ctx.out.print_json(&Value::Array(repos));
        return Ok(());
    }
    if repos.is_empty() {
        say(&match &args.query {
            Some(q) => format!(
                "No repository you may pull has {:?} in its name.",
                super::http::sanitize(q, 100)
            ),
            None => "No repositories you may pull.".to_owned(),
        });
        return Ok(());
    }
    let mut rows = Vec::with_capacity(repos.len());
    for repo in &repos {
        let id = at(repo, "/id");
        let tags = api
            .list(
                &format!("/v1/repositories/{}/tags", segment(&id)),
                &[],
                Some(TAGS_SHOWN),
                TAGS_SHOWN,
            )
            .await?;
        let mut names: Vec<String> = tags.iter().map(|t| at(t, "/name")).collect();
        let total = repo["tags"].as_u64().unwrap_or(0) as usize;
        if total > names.len() {
            names.push(format!("(+{} more)", total - names.len()));
        }
        rows.push(vec![
            at(repo, "/name"),
            if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(" ")
            },
            repo["size"].as_u64().map_or_else(|| "-".to_owned(), size),
            id,
        ]);
    }
    say(table(&["NAME", "TAGS", "SIZE", "ID"], &rows).trim_end_matches('\n'));
    Ok(())
}

/// The repository a user means by `name`, among those they may read: the name as given, else
/// in their namespace.
async fn find_repository(
    api: &super::http::Api,
    candidates: &[String],
) -> Result<Option<Value>, String> {
    for name in candidates {
        let found = api
            .list("/v1/repositories", &[("name", name.clone())], None, 1000)
            .await?;
        if let Some(repo) = found.into_iter().find(|r| r["name"].as_str() == Some(name)) {
            return Ok(Some(repo));
        }
    }
    Ok(None)
}

/// Whether the repository `id` has the tag `tag`.
async fn has_tag(api: &super::http::Api, id: &str, tag: &str) -> Result<bool, String> {
    let tags = api
        .list(
            &format!("/v1/repositories/{}/tags", segment(id)),
            &[],
            None,
            1000,
        )
        .await?;
    Ok(tags.iter().any(|t| t["name"].as_str() == Some(tag)))
}

pub async fn share(ctx: &Ctx, args: ShareArgs) -> Result<(), String> {
    let caps = parse_capabilities(&args.capabilities)?;
    let reg = Registry::connect(ctx).await?;
    let wanted = parse_repo_ref(&args.name, &reg.host)?;
    let (_, tag, digest) = split_reference(&args.name);
    if digest.is_some() {
        return Err(
            "share names a repository (NAME or NAME:TAG), not a digest: the grant covers the \
             whole repository"
                .into(),
        );
    }
    let mut candidates = vec![wanted.name.clone()];
    if !wanted.name.contains('/')
        && let Some(namespace) = &reg.namespace
    {
        candidates.push(format!("{namespace}/{}", wanted.name));
    }
    let api = ctx.api()?;
    let repo = find_repository(&api, &candidates).await?.ok_or_else(|| {
        format!(
            "no repository {} that you may read (`dtaas search`)",
            candidates.join(" or ")
        )
    })?;
    let id = at(&repo, "/id");
    let name = at(&repo, "/name");
    if tag.is_some() && !has_tag(&api, &id, &wanted.reference).await? {
        return Err(format!(
            "{name} has no tag {:?} (`dtaas search {name}`)",
            wanted.reference
        ));
    }
    let list = api
        .post(
            &format!("/v1/objects/{}/access", segment(&id)),
            json!({"principal": args.with, "capabilities": caps}),
        )
        .await?;
    let whom = super::http::sanitize(&args.with, 200);
    let mut sentence = format!(
        "Shared repository {name} ({id}), every tag of it, with {whom}: {}.",
        caps.join(", ")
    );
    if caps.iter().any(|c| c == "READ") {
        sentence.push_str(&format!(
            " They pull it with: dtaas pull {name}:{}",
            wanted.reference
        ));
    }
    ctx.out.done(&list, &sentence);
    Ok(())
}
