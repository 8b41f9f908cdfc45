//! The converter's GGUF reader (`morpheus_model.gguf_file`) against the `gguf` package's reader
//! on the tiny models' files: the same metadata, tensor types, shapes and bytes; and a damaged
//! file refused with a message naming it.

use std::process::Command;

use morpheus_testkit::{python, tiny_arch_model, tiny_mixed_model};

const COMPARE: &str = r#"
import sys, pathlib, numpy as np
from gguf import GGUFReader
from morpheus_model.gguf_file import GgufFile
for p in sys.argv[1:]:
    a, b = GGUFReader(p), GgufFile(pathlib.Path(p))
    fields = {k: f for k, f in a.fields.items() if not k.startswith("GGUF.")}
    assert set(fields) == set(b.fields), (p, set(fields) ^ set(b.fields))
    for k, f in fields.items():
        want, got = f.contents(), b.fields[k]
        assert np.array_equal(np.asarray(want), got) if isinstance(got, np.ndarray) else want == got, (p, k)
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors], p
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.tensor_type == tb.tensor_type and tuple(ta.shape.tolist()) == tb.dims, (p, ta.name)
        assert ta.data.dtype == tb.data.dtype and np.array_equal(ta.data, tb.data), (p, ta.name)
    print("same", p, len(b.tensors))
"#;

fn run(script: &str, args: &[&std::path::Path]) -> std::process::Output {
    Command::new(python().expect("the project's venv"))
        .env(
            "PYTHONPATH",
            env!("CARGO_MANIFEST_DIR").to_owned() + "/python",
        )
        .args(["-c", script])
        .args(args)
        .output()
        .expect("python runs")
}

#[test]
fn the_reader_reads_what_the_gguf_package_reads() {
    let (mixed, gemma) = (tiny_mixed_model(), tiny_arch_model("gemma3"));
    let files = [mixed.join("weights.gguf"), gemma.join("weights.gguf")];
    let out = run(COMPARE, &[&files[0], &files[1]]);
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("same ").count(), 2, "{log}");
}

#[test]
fn a_truncated_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = std::fs::read(tiny_mixed_model().join("weights.gguf")).expect("the tiny GGUF");
    let cut = dir.path().join("cut.gguf");
    // Inside the metadata (the token list), and inside the tensor data.
    for len in [2_000, whole.len() - 100] {
        std::fs::write(&cut, &whole[..len]).expect("write");
        let out = run(
            "import sys, pathlib\nfrom morpheus_model.gguf_file import GgufFile\nGgufFile(pathlib.Path(sys.argv[1]))",
            &[&cut],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{len} bytes read without error");
        assert!(
            err.contains("cut.gguf: not a readable GGUF file"),
            "{len} bytes: {err}"
        );
    }
    std::fs::write(&cut, b"not a model").expect("write");
    let out = run(
        "import sys, pathlib\nfrom morpheus_model.gguf_file import GgufFile\nGgufFile(pathlib.Path(sys.argv[1]))",
        &[&cut],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.gguf: not a GGUF file (no GGUF magic)"),
        "{err}"
    );
}

/// `token_bytes` (the bench's one-stream bound): every matrix in full, the token embeddings only
/// where they are the head (tied, tiny Gemma 3) and not beside an `output.weight` (tiny Llama),
/// counted with the `gguf` package's reader.
#[test]
fn a_token_reads_every_matrix_and_the_embeddings_only_as_the_head() {
    const CHECK: &str = r#"
import sys, pathlib
from gguf import GGUFReader
from morpheus_model.gguf_file import GgufFile, token_bytes
for p in sys.argv[1:]:
    tensors = {t.name: t for t in GGUFReader(p).tensors}
    tied = "output.weight" not in tensors
    want = sum(int(t.n_bytes) for n, t in tensors.items()
               if len(t.shape) >= 2 and (tied or n != "token_embd.weight"))
    assert "token_embd.weight" in tensors and want > 0, p
    assert token_bytes(GgufFile(pathlib.Path(p))) == want, (p, want)
    print("tied" if tied else "untied", want)
"#;
    let (mixed, gemma) = (tiny_mixed_model(), tiny_arch_model("gemma3"));
    let files = [mixed.join("weights.gguf"), gemma.join("weights.gguf")];
    let out = run(CHECK, &[&files[0], &files[1]]);
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    for kind in ["untied ", "tied "] {
        assert!(log.lines().any(|l| l.starts_with(kind)), "{kind}: {log}");
    }
}
