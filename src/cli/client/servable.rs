//! `dtaas servable ...`: servables made from prototypes, their instances and logs, over
//! `/v1/servables` and `/v1/instances`. A servable is named by its id or by its name; commands
//! on an instance also take the servable (its latest instance).

use super::http::sanitize;
use super::output::at;
use super::resources::find_servable;
use super::{Ctx, is_id, segment};
use clap::Subcommand;
use serde_json::{Value, json};

pub const EXAMPLES: &str = "Examples:
  dtaas servable create hello-daemon:1 --name hello
  dtaas servable run hello
  dtaas servable logs -f hello
  dtaas servable restart hello
  dtaas servable stop hello
  dtaas servable delete hello";

#[derive(Subcommand, Debug)]
pub enum ServableCommand {
    /// Create a servable from a prototype (CREATE on the prototype).
    #[command(
        after_help = "Examples:\n  dtaas servable create hello-daemon:1\n  dtaas servable create hello-app:1 --name hello --config-json '{\"daemon\": \"0190...\"}'\n  dtaas servable create model:2 --resources '{\"cpu_cores\": 1, \"ram\": 512}'\n  dtaas servable create report:1 --config-json @config.json"
    )]
    Create {
        /// The prototype: `name:tag` or its id.
        prototype: String,
        /// The servable's name [default: the prototype's name].
        #[arg(long)]
        name: Option<String>,
        /// Its config, a JSON object (`@FILE` reads it from a file). (`--config` is the
        /// server's configuration file.)
        #[arg(long, value_name = "JSON")]
        config_json: Option<String>,
        /// Its resources, a JSON object: cpu_cores, ram, shm, disk (MB), gpu_count
        /// (`@FILE` reads it from a file).
        #[arg(long, value_name = "JSON")]
        resources: Option<String>,
        /// HTTP types: let every request through the proxy (the app checks users itself).
        #[arg(long)]
        no_access_control: bool,
    },
    /// Show a servable.
    #[command(
        after_help = "Examples:\n  dtaas servable show hello\n  dtaas servable show hello --json"
    )]
    Show {
        /// The servable: id or name.
        servable: String,
    },
    /// Run a servable: a new instance, once its container runs.
    #[command(after_help = "Examples:\n  dtaas servable run hello")]
    Run {
        /// The servable: id or name.
        servable: String,
    },
    /// Stop an instance (the servable's latest, or the one named).
    #[command(
        after_help = "Examples:\n  dtaas servable stop hello\n  dtaas servable stop <instance id>"
    )]
    Stop {
        /// A servable (id or name) or an instance id.
        target: String,
    },
    /// Restart the servable's latest instance, with a fresh API key.
    #[command(after_help = "Examples:\n  dtaas servable restart hello")]
    Restart {
        /// A servable (id or name) or an instance id.
        target: String,
    },
    /// Print an instance's log (the servable's latest instance, or the one named).
    #[command(
        after_help = "Examples:\n  dtaas servable logs hello\n  dtaas servable logs -f hello"
    )]
    Logs {
        /// A servable (id or name) or an instance id.
        target: String,
        /// Keep printing new lines until the instance ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Delete a servable: its instances are stopped and removed, its volume too.
    #[command(after_help = "Examples:\n  dtaas servable delete hello")]
    Delete {
        /// The servable: id or name.
        servable: String,
    },
}

/// A JSON object from the command line, or from a file with `@FILE`.
fn json_arg(flag: &str, text: &str) -> Result<Value, String> {
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--{flag} @{path}: cannot read it: {e}"))?,
        None => text.to_owned(),
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("--{flag} is not JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!("--{flag} must be a JSON object"));
    }
    Ok(value)
}

/// The instance a command is about: an instance id, or a servable's latest instance.
async fn find_instance(api: &super::http::Api, which: &str) -> Result<String, String> {
    if is_id(which) {
        match api.get(&format!("/v1/servables/{which}")).await {
            Ok(servable) => return latest(&servable),
            Err(e) if e.status().is_some_and(|s| s == 404) => return Ok(which.to_owned()),
            Err(e) => return Err(e.into()),
        }
    }
    latest(&find_servable(api, which).await?)
}

fn latest(servable: &Value) -> Result<String, String> {
    match servable["current_instance"].as_str() {
        Some(id) => Ok(id.to_owned()),
        None => Err(format!(
            "servable {} has no instance yet: `dtaas servable run {}`",
            at(servable, "/name"),
            at(servable, "/id")
        )),
    }
}

fn instance_sentence(verb: &str, instance: &Value) -> String {
    let mut s = format!(
        "{verb} instance {} ({}).",
        at(instance, "/id"),
        at(instance, "/state")
    );
    if let Some(url) = instance["url"].as_str() {
        s.push_str(&format!(" It serves at {}", sanitize(url, 300)));
    }
    s
}

pub async fn run(ctx: &Ctx, command: ServableCommand) -> Result<(), String> {
    let api = ctx.api()?;
    match command {
        ServableCommand::Create {
            prototype,
            name,
            config_json,
            resources,
            no_access_control,
        } => {
            let name = match name {
                Some(n) => n,
                None => {
                    let p = api
                        .get(&format!("/v1/prototypes/{}", segment(&prototype)))
                        .await?;
                    p["name"].as_str().unwrap_or("servable").to_owned()
                }
            };
            let mut body = json!({"prototype": prototype, "name": name});
            if let Some(c) = config_json {
                body["config"] = json_arg("config-json", &c)?;
            }
            if let Some(r) = resources {
                body["resources"] = json_arg("resources", &r)?;
            }
            if no_access_control {
                body["access_control"] = Value::Bool(false);
            }
            let servable = api.post("/v1/servables", body).await?;
            ctx.out.done(
                &servable,
                &format!(
                    "Created servable {} ({}), a {} of {}:{}. Run it: dtaas servable run {}",
                    at(&servable, "/name"),
                    at(&servable, "/id"),
                    at(&servable, "/type"),
                    at(&servable, "/prototype/name"),
                    at(&servable, "/prototype/tag"),
                    at(&servable, "/id"),
                ),
            );
        }
        ServableCommand::Show { servable } => {
            let s = find_servable(&api, &servable).await?;
            if ctx.out.json {
                ctx.out.print_json(&s);
                return Ok(());
            }
            let rows: Vec<(&str, String)> = vec![
                ("id", at(&s, "/id")),
                ("name", at(&s, "/name")),
                ("type", at(&s, "/type")),
                (
                    "prototype",
                    format!("{}:{}", at(&s, "/prototype/name"), at(&s, "/prototype/tag")),
                ),
                ("owner", at(&s, "/owner")),
                ("created", super::output::time(&s, "/created")),
                ("instance", at(&s, "/current_instance")),
                ("url", at(&s, "/url")),
                ("config", at(&s, "/config")),
                ("resources", at(&s, "/resources")),
                ("unenforced", at(&s, "/unenforced")),
            ];
            super::output::fields(&rows);
        }
        ServableCommand::Run { servable } => {
            let s = find_servable(&api, &servable).await?;
            let id = at(&s, "/id");
            let instance = api
                .post(&format!("/v1/servables/{}/run", segment(&id)), json!({}))
                .await?;
            ctx.out
                .done(&instance, &instance_sentence("Started", &instance));
        }
        ServableCommand::Stop { target } => {
            let id = find_instance(&api, &target).await?;
            let instance = api
                .post(&format!("/v1/instances/{}/stop", segment(&id)), json!({}))
                .await?;
            ctx.out
                .done(&instance, &instance_sentence("Stopped", &instance));
        }
        ServableCommand::Restart { target } => {
            let id = find_instance(&api, &target).await?;
            let instance = api
                .post(
                    &format!("/v1/instances/{}/restart", segment(&id)),
                    json!({}),
                )
                .await?;
            ctx.out
                .done(&instance, &instance_sentence("Restarted: now", &instance));
        }
        ServableCommand::Logs { target, follow } => {
            let id = find_instance(&api, &target).await?;
            super::logs::print(
                ctx,
                &api,
                &format!("/v1/instances/{}/logs", segment(&id)),
                follow,
                "instance",
            )
            .await?;
        }
        ServableCommand::Delete { servable } => {
            let s = find_servable(&api, &servable).await?;
            let id = at(&s, "/id");
            api.delete(&format!("/v1/servables/{}", segment(&id)))
                .await?;
            ctx.out.done(
                &json!({"deleted": id}),
                &format!("Deleted servable {} ({id}).", at(&s, "/name")),
            );
        }
    }
    Ok(())
}
