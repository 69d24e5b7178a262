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
  dtaas list prototypes --json";

/// What `dtaas list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Prototypes,
    Servables,
    /// A servable's instances (give the servable).
    Instances,
    Jobs,
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
    /// The filters (`--type` -> `type`, `--state` -> `state`) the list takes.
    pub takes_type: bool,
    pub takes_state: bool,
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
            takes_type: true,
            takes_state: false,
            columns: PROTOTYPE_COLUMNS,
            empty: "No prototypes.",
        },
        Kind::Servables => Spec {
            path: "/v1/servables",
            takes_type: true,
            takes_state: false,
            columns: SERVABLE_COLUMNS,
            empty: "No servables.",
        },
        Kind::Instances => Spec {
            path: "/v1/servables/{}/instances",
            takes_type: false,
            takes_state: false,
            columns: INSTANCE_COLUMNS,
            empty: "No instances: `dtaas servable run SERVABLE` makes one.",
        },
        Kind::Jobs => Spec {
            path: "/v1/jobs",
            takes_type: false,
            takes_state: true,
            columns: JOB_COLUMNS,
            empty: "No jobs.",
        },
        Kind::Trusts => Spec {
            path: "/v1/trusts",
            takes_type: false,
            takes_state: false,
            columns: TRUST_COLUMNS,
            empty: "No trusts.",
        },
        Kind::Requests => Spec {
            path: "/v1/delegation-requests",
            takes_type: false,
            takes_state: true,
            columns: REQUEST_COLUMNS,
            empty: "No delegation requests.",
        },
        Kind::ApiKeys => Spec {
            path: "/v1/api-keys",
            takes_type: false,
            takes_state: false,
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

/// A servable by id or by name (among those you may read: one of that name, or an error
/// that says to use the id).
pub async fn find_servable(api: &super::http::Api, which: &str) -> Result<Value, String> {
    if is_id(which) {
        return Ok(api.get(&format!("/v1/servables/{which}")).await?);
    }
    let all = api.list("/v1/servables", &[], None, 1000).await?;
    let mut named: Vec<Value> = all
        .into_iter()
        .filter(|s| s["name"].as_str() == Some(which))
        .collect();
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => Err(format!(
            "no servable named {which:?} that you may read (`dtaas list servables`)"
        )),
        n => Err(format!(
            "{n} servables are named {which:?}: give the id of one (`dtaas list servables`)"
        )),
    }
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
    if args.of_type.is_some() && !spec.takes_type {
        return Err(format!(
            "--type does not filter {name} (prototypes and servables only)"
        ));
    }
    if args.state.is_some() && !spec.takes_state {
        return Err(format!(
            "--state does not filter {name} (jobs and requests only)"
        ));
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
    let items = api
        .list(&path, &query, args.limit, usize::from(args.page_size))
        .await?;
    ctx.out.list(&items, spec.columns, spec.empty);
    Ok(())
}
