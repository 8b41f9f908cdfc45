//! The tiny model on the worker's own kernels against the converter's numpy forward pass of its
//! GGUF (`python -m morpheus_model verify`, through this build's `morpheus-worker model logits`):
//! every position of a prompt and of the greedy answer.

use std::process::Command;

use morpheus_testkit::{python, tiny_model};

fn verify(activations: &str) -> String {
    let model = tiny_model();
    let out = Command::new(python().expect("the project's venv"))
        .env(
            "PYTHONPATH",
            env!("CARGO_MANIFEST_DIR").to_owned() + "/python",
        )
        .args(["-m", "morpheus_model", "verify"])
        .arg(&model)
        .arg("--gguf")
        .arg(model.join("weights.gguf"))
        .args(["--max-new", "8", "--activations", activations, "--worker"])
        .arg(env!("CARGO_BIN_EXE_morpheus-worker"))
        .output()
        .expect("python runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "verify failed:\n{log}");
    log
}

#[test]
fn two_stage_activations_match_the_float_forward_pass() {
    let log = verify("int8x2");
    assert!(log.contains("cosine mean 1.000000"), "{log}");
}

#[test]
fn one_stage_activations_stay_close_to_it() {
    // verify's own bar for one int8 stage: the worst position's cosine above 0.98.
    verify("int8");
}
