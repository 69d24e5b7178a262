//! Configuration layers: defaults < TOML file < DTAAS_* environment < flags.

use dtaas::core::config::Config;
use std::path::PathBuf;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn layers_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dtaas.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:6000\"\ndata_dir = \"/from/file\"\n[log]\nlevel = \"debug\"\n",
    )
    .unwrap();
    let c = Config::load(
        Some(&file),
        env(&[
            ("DTAAS_DATA_DIR", "/from/env"),
            ("DTAAS_LOGIN_LIMIT_PER_LOGIN", "9"),
        ]),
        vec![("log.level", toml::Value::String("warn".into()))],
    )
    .unwrap();
    assert_eq!(c.listen.port(), 6000, "file beats default");
    assert_eq!(c.data_dir, PathBuf::from("/from/env"), "env beats file");
    assert_eq!(c.log.level, "warn", "flag beats file");
    assert_eq!(c.login_limit.per_login, 9);
}

#[test]
fn defaults_are_the_embedded_appliance() {
    let c = Config::load(None, env(&[]), vec![]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:5000");
    assert_eq!(c.data_dir, PathBuf::from("./dtaas-data"));
    assert_eq!(c.registration, dtaas::core::config::RegistrationMode::Open);
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dtaas.toml");
    std::fs::write(&file, "[log]\nlevle = \"debug\"\n").unwrap();
    let err = Config::load(Some(&file), env(&[]), vec![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("levle") && err.contains("dtaas.toml"), "{err}");

    std::fs::write(&file, "colour = \"blue\"\n").unwrap();
    let err = Config::load(Some(&file), env(&[]), vec![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("colour"), "{err}");

    let err = Config::load(None, env(&[("DTAAS_LISTEN_PORT", "1")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("DTAAS_LISTEN_PORT"), "{err}");

    let err = Config::load(None, env(&[("DTAAS_ALLOW_INSECURE_HTTP", "maybe")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("DTAAS_ALLOW_INSECURE_HTTP"), "{err}");

    let err = Config::load(None, env(&[("DTAAS_REGISTRATION", "sometimes")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("registration") || err.contains("sometimes"),
        "{err}"
    );
}

#[test]
fn non_loopback_plain_http_is_refused_unless_allowed() {
    let err = Config::load(None, env(&[("DTAAS_LISTEN", "0.0.0.0:5000")]), vec![])
        .unwrap_err()
        .to_string();
    assert!(err.contains("refusing"), "{err}");
    let c = Config::load(
        None,
        env(&[
            ("DTAAS_LISTEN", "0.0.0.0:5000"),
            ("DTAAS_ALLOW_INSECURE_HTTP", "true"),
        ]),
        vec![],
    )
    .unwrap();
    assert!(c.allow_insecure_http);
}

#[test]
fn client_variables_do_not_disturb_the_server() {
    let c = Config::load(
        None,
        env(&[("DTAAS_PROFILE", "x"), ("DTAAS_URL", "http://h")]),
        vec![],
    )
    .unwrap();
    assert_eq!(c, Config::load(None, env(&[]), vec![]).unwrap());
}

#[tokio::test]
async fn the_binary_reports_config_errors_and_prints_the_effective_config() {
    let out = crate::harness::dtaas_cli(&["serve", "--listen", "0.0.0.0:5999"], None).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));

    let out = crate::harness::dtaas_cli(
        &[
            "serve",
            "--print-config",
            "--data-dir",
            "/srv/x",
            "--registration",
            "closed",
        ],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Config = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(printed.data_dir, PathBuf::from("/srv/x"));
    assert_eq!(
        printed.registration,
        dtaas::core::config::RegistrationMode::Closed
    );
}
