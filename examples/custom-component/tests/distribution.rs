//! The distribution binary lists the example processor and accepts a pipeline using it.

use std::process::Command;

#[test]
fn the_component_is_listed_and_usable() {
    let bin = env!("CARGO_BIN_EXE_teletrace-custom");
    let out = Command::new(bin).arg("components").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("name_prefix") && l.contains("development")),
        "{text}"
    );
    assert!(
        text.contains("batch"),
        "standard components are linked too:\n{text}"
    );

    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/pipeline.yaml");
    let out = Command::new(bin)
        .args(["validate", "--config", config])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(bin)
        .args([
            "validate",
            "--config",
            config,
            "--set",
            "processors::name_prefix::prefix=",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("processors::name_prefix::prefix: must not be empty"),
        "{stderr}"
    );
}
