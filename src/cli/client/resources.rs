//! `dtaas types` and `dtaas list KIND`: every page of a `/v1` list, as a table or as one JSON
//! array. A kind is a row of [`spec`]: its path, the filters it takes and its columns.

use super::output::{Column, at, time};
use super::{Ctx, is_id, segment};
use clap::{Args, ValueEnum};
use serde_json::Value;

pub const LIST_EXAMPLES: &str = "Examples:
  dtaas list servables --type app
  dtaas list instances my-servable
  dtaas list jobs --state running --limit 20
  dtaas list requests --state pending
  dtaas list images --name tool
  dtaas list jobs --pipeline nightly --state failed
  dtaas list repositories
  dtaas list prototypes --json";

/// What `dtaas list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Prototypes,
    Servables,
    /// A servable's instances (give the servable).
    Instances,
    Jobs,
    /// Images built on the appliance (`dtaas image build`).
    Images,
    Pipelines,
    /// The registry's repositories you may pull.
    Repositories,
    Trusts,
    /// Delegation requests.
    Requests,
    /// Your API keys (never their secrets).
    ApiKeys,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// What to list.
    pub kind: Kind,
    /// For instances: the servable (id or name) whose instances to list.
    pub servable: Option<String>,
    /// Only of this servable type (prototypes, servables): pipeline, app, daemon, dataset,
    /// model or report.
    #[arg(long = "type", value_name = "TYPE")]
    pub of_type: Option<String>,
    /// Only in this state (jobs: in_queue, running, success, failed, ...; requests: pending,
    /// granted or refused).
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Only those whose name holds this text, ignoring case (images, pipelines,
    /// repositories).
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
    /// Only this pipeline's jobs (id or name).
    #[arg(long, value_name = "PIPELINE")]
    pub pipeline: Option<String>,
    /// At most this many.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// How many to ask the appliance for at a time; the pages are followed all the same.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub page_size: u16,
}

/// How a kind is listed.
pub struct Spec {
    pub path: &'static str,
    /// The filters it takes, by their query names (`--type` -> `type`, `--state`, `--name`,
    /// `--pipeline`).
    pub filters: &'static [&'static str],
    pub columns: &'static [Column],
    pub empty: &'static str,
}

fn name_tag(v: &Value) -> String {
    format!("{}:{}", at(v, "/name"), at(v, "/tag"))
}

pub fn spec(kind: Kind) -> Spec {
    match kind {
        Kind::Prototypes => Spec {
            path: "/v1/prototypes",
            filters: &["type"],
            columns: PROTOTYPE_COLUMNS,
            empty: "No prototypes.",
        },
        Kind::Servables => Spec {
            path: "/v1/servables",
            filters: &["type"],
            columns: SERVABLE_COLUMNS,
            empty: "No servables.",
        },
        Kind::Instances => Spec {
            path: "/v1/servables/{}/instances",
            filters: &[],
            columns: INSTANCE_COLUMNS,
            empty: "No instances: `dtaas servable run SERVABLE` makes one.",
        },
        Kind::Jobs => Spec {
            path: "/v1/jobs",
            filters: &["state", "pipeline"],
            columns: JOB_COLUMNS,
            empty: "No jobs.",
        },
        Kind::Images => Spec {
            path: "/v1/images",
            filters: &["name"],
            columns: IMAGE_COLUMNS,
            empty: "No images: `dtaas image build NAME DIR` makes one.",
        },
        Kind::Pipelines => Spec {
            path: "/v1/pipelines",
            filters: &["name"],
            columns: PIPELINE_COLUMNS,
            empty: "No pipelines: `dtaas pipeline create NAME` makes one.",
        },
        Kind::Repositories => Spec {
            path: "/v1/repositories",
            filters: &["name"],
            columns: REPOSITORY_COLUMNS,
            empty: "No repositories: `dtaas push IMAGE` makes one.",
        },
        Kind::Trusts => Spec {
            path: "/v1/trusts",
            filters: &[],
            columns: TRUST_COLUMNS,
            empty: "No trusts.",
        },
        Kind::Requests => Spec {
            path: "/v1/delegation-requests",
            filters: &["state"],
            columns: REQUEST_COLUMNS,
            empty: "No delegation requests.",
        },
        Kind::ApiKeys => Spec {
            path: "/v1/api-keys",
            filters: &[],
            columns: KEY_COLUMNS,
            empty: "No API keys.",
        },
    }
}

pub const PROTOTYPE_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("NAME", name_tag),
    ("TYPE", |v| at(v, "/type")),
    ("IMAGE", |v| at(v, "/image")),
    ("CREATED", |v| time(v, "/created")),
];

pub const JOB_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("STATE", |v| at(v, "/state")),
    ("PIPELINE", |v| at(v, "/pipeline/id")),
    ("CREATED", |v| time(v, "/creation_date")),
    ("COMMAND", |v| at(v, "/command")),
];

pub const IMAGE_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("NAME", |v| at(v, "/name")),
    ("STATE", |v| at(v, "/state")),
    ("BUILT", |v| time(v, "/built")),
    ("REPOSITORY", |v| at(v, "/repository")),
];

pub const PIPELINE_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("NAME", |v| at(v, "/name")),
    ("JOBS", |v| {
        v["jobs"]
            .as_array()
            .map_or_else(|| "-".to_owned(), |j| j.len().to_string())
    }),
    ("QUEUED", |v| at(v, "/queued")),
    ("CREATED", |v| time(v, "/created")),
];

pub const REPOSITORY_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("NAME", |v| at(v, "/name")),
    ("TAGS", |v| at(v, "/tags")),
    ("SIZE", |v| {
        v["size"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), super::progress::size)
    }),
    ("CREATED", |v| time(v, "/created")),
];

pub const TRUST_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("NAME", |v| at(v, "/name")),
    ("OWNER", |v| at(v, "/owner")),
    ("CREATED", |v| time(v, "/created")),
];

pub const KEY_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("NAME", |v| at(v, "/name")),
    ("CREATED", |v| time(v, "/created")),
    ("EXPIRES", |v| time(v, "/expires")),
];

pub const SERVABLE_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("NAME", |v| at(v, "/name")),
    ("TYPE", |v| at(v, "/type")),
    ("PROTOTYPE", |v| {
        format!("{}:{}", at(v, "/prototype/name"), at(v, "/prototype/tag"))
    }),
    ("INSTANCE", |v| at(v, "/current_instance")),
    ("URL", |v| at(v, "/url")),
];

pub const INSTANCE_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("STATE", |v| at(v, "/state")),
    ("TYPE", |v| at(v, "/type")),
    ("RESTARTS", |v| at(v, "/restarts")),
    ("STARTED", |v| time(v, "/started")),
    ("URL", |v| at(v, "/url")),
];

pub const REQUEST_COLUMNS: &[Column] = &[
    ("ID", |v| at(v, "/id")),
    ("STATE", |v| at(v, "/state")),
    ("SERVABLE", |v| at(v, "/servable")),
    ("OBJECT", |v| at(v, "/object")),
    ("CAPABILITIES", |v| at(v, "/capabilities")),
    ("REASON", |v| at(v, "/reason")),
];

/// An object of a `/v1` list by id or by name: the id is fetched as it is; a name is looked for
/// among those the caller may read (with the list's `name` filter where it has one), and must
/// name exactly one. `what` is the kind for sentences ("servable"), `list` the command that
/// lists them.
pub async fn find_named(
    api: &super::http::Api,
    path: &str,
    filters_by_name: bool,
    which: &str,
    what: &str,
    list: &str,
) -> Result<Value, String> {
    if is_id(which) {
        return Ok(api.get(&format!("{path}/{which}")).await?);
    }
    let query = if filters_by_name {
        vec![("name", which.to_owned())]
    } else {
        Vec::new()
    };
    let all = api.list(path, &query, None, 1000).await?;
    let mut named: Vec<Value> = all
        .into_iter()
        .filter(|s| s["name"].as_str() == Some(which))
        .collect();
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => Err(format!(
            "no {what} named {which:?} that you may read (`{list}`)"
        )),
        n => Err(format!(
            "{n} {what}s are named {which:?}: give the id of one (`{list}`)"
        )),
    }
}

/// A servable by id or by name.
pub async fn find_servable(api: &super::http::Api, which: &str) -> Result<Value, String> {
    find_named(
        api,
        "/v1/servables",
        false,
        which,
        "servable",
        "dtaas list servables",
    )
    .await
}

/// A pipeline by id or by name.
pub async fn find_pipeline(api: &super::http::Api, which: &str) -> Result<Value, String> {
    find_named(
        api,
        "/v1/pipelines",
        true,
        which,
        "pipeline",
        "dtaas list pipelines",
    )
    .await
}

/// An image by id or by name.
pub async fn find_image(api: &super::http::Api, which: &str) -> Result<Value, String> {
    find_named(api, "/v1/images", true, which, "image", "dtaas list images").await
}

pub async fn types(ctx: &Ctx) -> Result<(), String> {
    let api = ctx.api()?;
    let types = api.get("/v1/types").await?;
    let items = types.as_array().cloned().unwrap_or_default();
    const COLUMNS: &[Column] = &[
        ("NAME", |v| at(v, "/name")),
        ("HTTP", |v| at(v, "/http")),
        ("RESTARTS", |v| at(v, "/restarts_on_failure")),
        ("DESCRIPTION", |v| at(v, "/description")),
    ];
    if ctx.out.json {
        ctx.out.print_json(&types);
    } else {
        ctx.out.list(&items, COLUMNS, "No types.");
    }
    Ok(())
}

pub async fn list(ctx: &Ctx, args: ListArgs) -> Result<(), String> {
    let spec = spec(args.kind);
    let name = args
        .kind
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let given = [
        ("type", args.of_type.is_some()),
        ("state", args.state.is_some()),
        ("name", args.name.is_some()),
        ("pipeline", args.pipeline.is_some()),
    ];
    for (filter, set) in given {
        if set && !spec.filters.contains(&filter) {
            return Err(format!("--{filter} does not filter {name}"));
        }
    }
    let api = ctx.api()?;
    let path = match (args.kind, &args.servable) {
        (Kind::Instances, Some(s)) => {
            let servable = find_servable(&api, s).await?;
            let id = servable["id"].as_str().unwrap_or_default().to_owned();
            spec.path.replace("{}", &segment(&id))
        }
        (Kind::Instances, None) => {
            return Err("which servable's instances? dtaas list instances SERVABLE".into());
        }
        (_, Some(extra)) => {
            return Err(format!("{name} takes no argument (got {extra:?})"));
        }
        (_, None) => spec.path.to_owned(),
    };
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(t) = args.of_type {
        query.push(("type", t));
    }
    if let Some(s) = args.state {
        query.push(("state", s));
    }
    if let Some(n) = args.name {
        query.push(("name", n));
    }
    if let Some(p) = args.pipeline {
        let pipeline = find_pipeline(&api, &p).await?;
        query.push(("pipeline", at(&pipeline, "/id")));
    }
    let items = api
        .list(&path, &query, args.limit, usize::from(args.page_size))
        .await?;
    ctx.out.list(&items, spec.columns, spec.empty);
    Ok(())
}
