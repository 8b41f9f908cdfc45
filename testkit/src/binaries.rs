//! The workspace's other binaries for a test that runs them as processes: cargo builds only
//! the tested package's own binaries for its tests, so the others are built here, in the same
//! profile and target directory, on first use.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

/// Builds `packages`' binaries (each named as its package) beside `beside`, a binary of this
/// build (`env!("CARGO_BIN_EXE_...")`), and returns their directory. Panics when the build
/// fails: a test that needs them cannot run.
pub fn workspace_binaries(beside: &Path, packages: &[&str]) -> PathBuf {
    // One cargo build at a time from this process: cargo's own lock would serialise them anyway.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _one = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = beside
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(other) => other.to_string(),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = crate::repo_root().join("Cargo.toml");
    eprintln!(
        "morpheus-testkit: building {} (profile {profile}) into {}",
        packages.join(", "),
        dir.display()
    );
    let mut cmd = std::process::Command::new(&cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--profile", &profile]);
    for p in packages {
        cmd.args(["-p", p, "--bin", p]);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(status.success(), "building {packages:?}: {status}");
    for bin in packages {
        assert!(
            dir.join(bin).is_file(),
            "cargo built {bin} elsewhere than {} (is CARGO_TARGET_DIR different from this \
             build's?)",
            dir.display()
        );
    }
    dir
}
