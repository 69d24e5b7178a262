//! The Docker engine connection: readiness, version negotiation, a dead engine, the base image.

use crate::harness::*;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;

#[tokio::test]
async fn ready_when_the_engine_answers() {
    let server = TestServer::start().await;
    let r = server
        .client()
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v = json_of(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "ready");
    assert!(
        v["engine"]["api_version"]
            .as_str()
            .unwrap()
            .starts_with("1.")
    );

    let (c, _) = server.user("eng").await;
    let info = json_of(c.get(server.url("/v1/engine")).send().await.unwrap()).await;
    assert!(!info["version"].as_str().unwrap().is_empty(), "{info}");
}

#[tokio::test]
async fn up_but_not_ready_without_an_engine() {
    let dead = tempfile::tempdir().unwrap();
    let socket = dead.path().join("docker.sock");
    // A socket file nobody listens on, and one that does not exist at all.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(_listener);
    for host in [
        format!("unix://{}", socket.display()),
        "unix:///nonexistent/docker.sock".into(),
    ] {
        let server = TestServer::start_with(|c| c.docker.host = host.clone()).await;
        let c = server.client();
        let r = c.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200, "the process is up");
        let r = c.get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let v = json_of(r).await;
        assert_eq!(v["status"], "not ready");
        assert_eq!(v["engine"]["ok"], false);
        assert_eq!(v["store"]["ok"], true);

        // Accounts still work; calls that need the engine say why they cannot.
        let (c, _) = server.user("noeng").await;
        let r = c.get(server.url("/v1/engine")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let v = json_of(r).await;
        let (code, message) = v1_error(&v);
        assert_eq!(code, "engine_unavailable");
        assert!(
            message.contains("Docker engine is unavailable"),
            "{message}"
        );
    }
}

/// The harness's base image (busybox-static imported, nothing pulled) runs a command.
#[tokio::test]
async fn the_base_image_runs_a_shell() {
    let image = base_image().await;
    let docker = engine().client().await.unwrap();
    let name = unique("dtaas-test-base-");
    let config = bollard::models::ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo hello from $(uname -s)".into(),
        ]),
        labels: Some([("dtaas.test".to_owned(), "1".to_owned())].into()),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            config,
        )
        .await
        .unwrap();
    docker
        .start_container(
            &name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();
    let mut wait = docker.wait_container(
        &name,
        None::<bollard::query_parameters::WaitContainerOptions>,
    );
    while let Some(w) = wait.next().await {
        assert_eq!(w.unwrap().status_code, 0);
    }
    let mut logs = docker.logs(&name, Some(LogsOptionsBuilder::new().stdout(true).build()));
    let mut text = String::new();
    while let Some(chunk) = logs.next().await {
        text.push_str(&chunk.unwrap().to_string());
    }
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    assert_eq!(text.trim(), "hello from Linux");
}

/// After a crash, the networks of servables that are gone are removed; one the engine refuses
/// to remove (a container still on it) does not keep the others.
#[tokio::test]
async fn orphan_networks_are_each_tried_and_a_refused_one_is_reported() {
    use dtaas::core::id::Id;
    use dtaas::engine::networks::{Networks, network_name};
    let image = base_image().await;
    let installation = Id::new();
    let _cleanup = EngineCleanup(installation.to_string());
    let networks = Networks::new(
        std::sync::Arc::new(engine()),
        installation,
        "10.213.0.0/16",
        28,
    )
    .unwrap();
    let docker = engine().client().await.unwrap();
    let (busy, free, kept) = (Id::new(), Id::new(), Id::new());
    for servable in [busy, free, kept] {
        networks.ensure(servable).await.unwrap();
    }
    // A container on `busy`'s network: the engine refuses to remove that network.
    let name = unique("dtaas-test-on-net-");
    let config = bollard::models::ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        labels: Some([("dtaas.installation".to_owned(), installation.to_string())].into()),
        host_config: Some(bollard::models::HostConfig {
            network_mode: Some(network_name(busy)),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            config,
        )
        .await
        .unwrap();
    docker
        .start_container(
            &name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .unwrap();

    let result = networks.remove_orphans(&docker, |s| s == kept).await;
    assert!(result.is_err(), "the refused removal is reported");
    let exists = |servable: Id| {
        let docker = docker.clone();
        async move {
            docker
                .inspect_network(
                    &network_name(servable),
                    None::<bollard::query_parameters::InspectNetworkOptions>,
                )
                .await
                .is_ok()
        }
    };
    assert!(exists(busy).await, "a network in use stays");
    assert!(
        !exists(free).await,
        "the other orphan is removed all the same"
    );
    assert!(exists(kept).await, "what is kept stays");

    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    networks.remove_orphans(&docker, |_| false).await.unwrap();
    assert!(!exists(busy).await && !exists(kept).await);
}
