//! The built `morpheus-worker` binary as a provider runs it: copied out of the source tree, it
//! still prepares a model (the converter is inside it); serving, it stops cleanly on SIGTERM.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use morpheus_testkit::{log_of, ort_library, python, stop_with_signal, tiny_model};

const BINARY: &str = env!("CARGO_BIN_EXE_morpheus-worker");

#[test]
fn a_copied_binary_prepares_a_model_outside_the_source_tree() {
    let python = python().expect("the project's venv");
    let place = tempfile::tempdir().expect("tempdir");
    let binary = place.path().join("bin").join("morpheus-worker");
    std::fs::create_dir_all(binary.parent().expect("bin/")).expect("mkdir");
    std::fs::copy(BINARY, &binary).expect("copy the binary");
    let cache = place.path().join("cache");
    let out = Command::new(&binary)
        .current_dir(place.path())
        .env_remove("MORPHEUS_PYTHON_DIR")
        .env("XDG_CACHE_HOME", &cache)
        .args([
            "model",
            "prepare",
            "tiny",
            "--out",
            "models/tiny",
            "--python",
        ])
        .arg(&python)
        .output()
        .expect("the binary runs");
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "model prepare failed:\n{log}");
    let dir = place.path().join("models/tiny");
    for file in [
        "model.onnx",
        "model.onnx.data",
        "tokenizer.json",
        "morpheus.json",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing:\n{log}");
    }
    // The converter it ran is the one it carries, unpacked into its cache.
    let unpacked = std::fs::read_dir(cache.join("morpheus-worker"))
        .expect("the converter was unpacked into the cache")
        .filter_map(|e| e.ok())
        .any(|e| e.path().join("morpheus_model/__main__.py").is_file());
    assert!(unpacked, "no morpheus_model in {}", cache.display());
    // The same model as the kit's own build of it: the converter is deterministic.
    for file in ["model.onnx", "model.onnx.data"] {
        let ours = std::fs::read(dir.join(file)).expect("model");
        let kit = std::fs::read(tiny_model().join(file)).expect("kit model");
        assert!(
            ours == kit,
            "the copied binary made a different tiny {file}"
        );
    }
}

#[test]
fn a_missing_converter_directory_is_named() {
    let out = Command::new(BINARY)
        .env("MORPHEUS_PYTHON_DIR", "/nonexistent/morpheus")
        .args(["model", "prepare", "tiny", "--out"])
        .arg(tempfile::tempdir().expect("tempdir").path().join("m"))
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("/nonexistent/morpheus holds no morpheus_model package"),
        "{log}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut child = tokio::process::Command::new(BINARY)
        .env("ORT_DYLIB_PATH", ort_library().expect("ONNX Runtime"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .arg("serve")
        .arg("--model")
        .arg(tiny_model())
        .args([
            "--device",
            "cpu",
            "--threads",
            "1",
            "--listen",
            &addr.to_string(),
        ])
        .args([
            "--chain-id",
            "31337",
            "--session-router",
            "0x1111111111111111111111111111111111111111",
        ])
        .args(["--router", "0x2222222222222222222222222222222222222222"])
        .env(
            "MORPHEUS_PROVIDER_KEY",
            "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts");
    // Serving once /v1/models answers.
    let url = format!("http://{addr}/v1/models");
    let mut serving = false;
    for _ in 0..200 {
        if reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            serving = true;
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the worker exited before serving: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(serving, "the worker never answered on {url}");
    let output = stop_with_signal(child, "TERM", Duration::from_secs(20)).await;
    let log = log_of(&output);
    assert!(
        output.status.success(),
        "exit {} after SIGTERM:\n{log}",
        output.status
    );
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}
