//! Configuration layers: defaults < TOML file < DTAAS_* environment < flags. `Config::load`
//! itself is unit-tested in `src/core/config.rs`; here, what the real binary makes of it.

use dtaas::core::config::Config;
use std::path::PathBuf;

#[tokio::test]
async fn the_binary_reports_config_errors_and_prints_the_effective_config() {
    let out = crate::harness::dtaas_cli(
        &["serve", "--listen", "0.0.0.0:5999", "--print-config"],
        None,
    )
    .await;
    assert!(out.status.success(), "off loopback, TLS is on by default");
    let out = crate::harness::dtaas_cli(
        &["serve", "--listen", "0.0.0.0:5999", "--tls-mode", "off"],
        None,
    )
    .await;
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
