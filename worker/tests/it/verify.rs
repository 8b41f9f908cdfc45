//! The tiny models on the worker's own kernels against the converter's numpy forward pass of
//! their GGUF (`python -m morpheus_model verify`, through this build's `morpheus-worker model
//! logits`): every position of a prompt and of the greedy answer. `tiny-mixed` holds every GGML
//! block format the kernels take, and runs on each kernel implementation this CPU has; the
//! `tiny-<arch>` models are each architecture the converter takes besides Llama.

use std::{path::Path, process::Command};

use morpheus_testkit::{python, tiny_arch_model, tiny_mixed_model, tiny_model};

fn verify(model: &Path, activations: &str, isa: Option<&str>) -> String {
    let mut cmd = Command::new(python().expect("the project's venv"));
    if let Some(isa) = isa {
        cmd.env("MORPHEUS_KERNEL_ISA", isa);
    }
    let out = cmd
        .env(
            "PYTHONPATH",
            env!("CARGO_MANIFEST_DIR").to_owned() + "/python",
        )
        .args(["-m", "morpheus_model", "verify"])
        .arg(model)
        .arg("--gguf")
        .arg(model.join("weights.gguf"))
        .args(["--max-new", "8", "--activations", activations, "--worker"])
        .arg(env!("CARGO_BIN_EXE_morpheus-worker"))
        .output()
        .expect("python runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "verify of {} ({activations}, {isa:?}) failed:\n{log}",
        model.display()
    );
    log
}

#[test]
fn two_stage_activations_match_the_float_forward_pass() {
    let log = verify(&tiny_model(), "int8x2", None);
    assert!(log.contains("cosine mean 1.000000"), "{log}");
}

#[test]
fn one_stage_activations_stay_close_to_it() {
    // verify's own bar for one int8 stage: the worst position's cosine above 0.98.
    verify(&tiny_model(), "int8", None);
}

#[test]
fn every_block_format_matches_the_float_forward_pass_on_every_isa() {
    let model = tiny_mixed_model();
    // A lesser implementation than the CPU has is taken as asked; one it lacks falls back (and
    // is covered by the kernels' own tests on a CPU that has it).
    for isa in ["avx512", "avx2", "portable"] {
        let log = verify(&model, "int8x2", Some(isa));
        assert!(log.contains("cosine mean 1.000000"), "{isa}: {log}");
    }
    verify(&model, "int8", None);
}

#[test]
fn every_architecture_matches_its_float_forward_pass() {
    // Llama 3.1's RoPE factors, Qwen2's Q/K/V biases (rotate-half rows, no permutation), Qwen3's
    // Q/K norms: leaving any out moves the cosine below 0.8 (checked when they were written).
    // Gemma 3: a window one position short gave 0.9996 from the 16th position on.
    for arch in ["llama3", "qwen2", "qwen3", "gemma3"] {
        let model = tiny_arch_model(arch);
        let log = verify(&model, "int8x2", None);
        assert!(log.contains("cosine mean 1.000000"), "{arch}: {log}");
        let meta = std::fs::read_to_string(model.join("morpheus.json")).expect("morpheus.json");
        let arch_name = if arch == "llama3" { "llama" } else { arch };
        assert!(
            meta.contains(&format!("\"architecture\": \"{arch_name}\"")),
            "{meta}"
        );
    }
}
