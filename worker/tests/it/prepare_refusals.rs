//! `model prepare` refuses a GGUF it cannot serve exactly, in one line naming what: a tensor type
//! outside the kernels' formats (re-quantising it would serve another model) or an architecture.

use std::{path::Path, process::Command};

use morpheus_testkit::{python, tiny_weights};

const BINARY: &str = env!("CARGO_BIN_EXE_morpheus-worker");

/// Rewrites the tiny GGUF into `out`: with `blk.1.attn_q.weight` as Q3_K blocks (random bytes
/// are valid ones), or under another architecture name.
const REWRITE: &str = r#"
import sys
import numpy as np
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType as Q
src, out, change = sys.argv[1:4]
r = GGUFReader(src)
w = GGUFWriter(out, "falcon" if change == "arch" else "llama")
for key, f in r.fields.items():
    if key.startswith("GGUF.") or key == "general.architecture":
        continue
    w.add_key_value(key, f.contents(), f.types[0], sub_type=f.types[-1] if len(f.types) > 1 else None)
for t in r.tensors:
    qtype = Q(t.tensor_type)
    if change == "type" and t.name == "blk.1.attn_q.weight":
        w.add_tensor(t.name, np.random.default_rng(0).integers(0, 256, (256, 110), dtype=np.uint8), raw_dtype=Q.Q3_K)
    elif qtype == Q.F32:
        w.add_tensor(t.name, np.array(t.data))
    else:
        w.add_tensor(t.name, np.array(t.data).reshape(int(t.shape.tolist()[-1]), -1), raw_dtype=qtype)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
"#;

fn prepare_rewritten(change: &str, dir: &Path) -> String {
    let python = python().expect("the project's venv");
    let gguf = dir.join(format!("{change}.gguf"));
    let made = Command::new(&python)
        .args(["-c", REWRITE])
        .arg(tiny_weights())
        .arg(&gguf)
        .arg(change)
        .output()
        .expect("python runs");
    assert!(
        made.status.success(),
        "writing the GGUF: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let out = Command::new(BINARY)
        .env("RUST_BACKTRACE", "0")
        .args(["model", "prepare"])
        .arg(&gguf)
        .arg("--out")
        .arg(dir.join(change))
        .arg("--python")
        .arg(&python)
        .output()
        .expect("the binary runs");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "prepared anyway:\n{log}");
    assert!(
        !log.contains("Traceback"),
        "a traceback, not a message:\n{log}"
    );
    assert!(
        !dir.join(change).join("model.onnx").exists(),
        "a model was written"
    );
    log
}

#[test]
fn a_tensor_type_the_kernels_do_not_take_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = prepare_rewritten("type", dir.path());
    assert!(
        log.contains("tensor blk.1.attn_q.weight is Q3_K, a type the worker does not serve"),
        "{log}"
    );
    assert!(log.contains("Q4_K, Q5_K, Q6_K"), "{log}");
}

#[test]
fn an_architecture_it_does_not_serve_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = prepare_rewritten("arch", dir.path());
    assert!(
        log.contains("architecture 'falcon' is not supported"),
        "{log}"
    );
}
