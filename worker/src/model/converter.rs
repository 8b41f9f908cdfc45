//! The Python side the binary carries with it: the GGUF -> ONNX converter (`morpheus_model`) and
//! the llama.cpp half of `bench`. Both are compiled into the executable, so a `morpheus-worker`
//! copied or installed anywhere prepares models without the source tree; on first use they are
//! written to a cache directory named by their content. `MORPHEUS_PYTHON_DIR` (or `--python-dir`)
//! points at another copy, e.g. `worker/python` while working on the converter.

use std::path::{Path, PathBuf};

use alloy::primitives::keccak256;

use crate::{Error, Result};

/// Environment variable naming a directory that holds `morpheus_model/` (used instead of the
/// embedded copy).
pub const PYTHON_DIR_ENV: &str = "MORPHEUS_PYTHON_DIR";

/// The converter package, file by file (`converter_files_match_the_source_tree` keeps the list
/// complete).
pub(crate) const CONVERTER: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../python/morpheus_model/__init__.py"),
    ),
    (
        "__main__.py",
        include_str!("../../python/morpheus_model/__main__.py"),
    ),
    (
        "blocks.py",
        include_str!("../../python/morpheus_model/blocks.py"),
    ),
    (
        "convert.py",
        include_str!("../../python/morpheus_model/convert.py"),
    ),
    (
        "generate.py",
        include_str!("../../python/morpheus_model/generate.py"),
    ),
    (
        "gguf_file.py",
        include_str!("../../python/morpheus_model/gguf_file.py"),
    ),
    (
        "gguf_source.py",
        include_str!("../../python/morpheus_model/gguf_source.py"),
    ),
    (
        "graph.py",
        include_str!("../../python/morpheus_model/graph.py"),
    ),
    (
        "prepare.py",
        include_str!("../../python/morpheus_model/prepare.py"),
    ),
    (
        "progress.py",
        include_str!("../../python/morpheus_model/progress.py"),
    ),
    (
        "kquants.py",
        include_str!("../../python/morpheus_model/kquants.py"),
    ),
    (
        "reference.py",
        include_str!("../../python/morpheus_model/reference.py"),
    ),
    (
        "sources.py",
        include_str!("../../python/morpheus_model/sources.py"),
    ),
    (
        "tiny.py",
        include_str!("../../python/morpheus_model/tiny.py"),
    ),
    (
        "tokenizer_json.py",
        include_str!("../../python/morpheus_model/tokenizer_json.py"),
    ),
    (
        "verify.py",
        include_str!("../../python/morpheus_model/verify.py"),
    ),
];

/// The llama.cpp benchmark script (`bench/llama_cpp_bench.py`).
const LLAMA_BENCH: (&str, &str) = (
    "llama_cpp_bench.py",
    include_str!("../../../bench/llama_cpp_bench.py"),
);

/// The directory to put on `PYTHONPATH` for `python -m morpheus_model`: `explicit`, else
/// `$MORPHEUS_PYTHON_DIR`, else the embedded copy written to the cache.
pub fn python_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit.map(Path::to_path_buf).or_else(env_dir) {
        return if dir.join("morpheus_model").join("__main__.py").is_file() {
            Ok(dir)
        } else {
            Err(Error::Prepare(format!(
                "{} holds no morpheus_model package (from --python-dir or {PYTHON_DIR_ENV})",
                dir.display()
            )))
        };
    }
    unpacked()
}

/// The llama.cpp benchmark script: in `explicit` or `$MORPHEUS_PYTHON_DIR` when it is there,
/// else the embedded copy.
pub fn llama_bench_script(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit.map(Path::to_path_buf).or_else(env_dir) {
        let script = dir.join(LLAMA_BENCH.0);
        if script.is_file() {
            return Ok(script);
        }
    }
    Ok(unpacked()?.join(LLAMA_BENCH.0))
}

fn env_dir() -> Option<PathBuf> {
    std::env::var_os(PYTHON_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Writes the embedded files once per content into the cache; returns their directory.
fn unpacked() -> Result<PathBuf> {
    let mut all = Vec::new();
    for (name, text) in CONVERTER.iter().chain(std::iter::once(&LLAMA_BENCH)) {
        all.extend_from_slice(name.as_bytes());
        all.push(0);
        all.extend_from_slice(text.as_bytes());
        all.push(0);
    }
    let tag = keccak256(&all).to_string();
    let base = cache_base();
    let dir = base.join(format!("python-{}", &tag[2..14]));
    if dir.join("morpheus_model").join("__main__.py").is_file() {
        return Ok(dir);
    }
    // Written beside, then renamed into place: a reader never sees half a package, and two
    // processes unpacking at once both end with the same complete directory.
    let staging = base.join(format!(".python-{}-{}", &tag[2..14], std::process::id()));
    let package = staging.join("morpheus_model");
    std::fs::create_dir_all(&package).map_err(|e| Error::io(&package, e))?;
    for (name, text) in CONVERTER {
        let path = package.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    }
    let script = staging.join(LLAMA_BENCH.0);
    std::fs::write(&script, LLAMA_BENCH.1).map_err(|e| Error::io(&script, e))?;
    match std::fs::rename(&staging, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if dir.join("morpheus_model").join("__main__.py").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir)
        }
        Err(e) => Err(Error::io(&dir, e)),
    }
}

/// `$XDG_CACHE_HOME/morpheus-worker`, else `~/.cache/morpheus-worker`, else the temp directory.
fn cache_base() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("morpheus-worker")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converter_files_match_the_source_tree() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/morpheus_model");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("worker/python/morpheus_model")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".py"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = CONVERTER.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "add the new file to CONVERTER");
    }

    #[test]
    fn an_explicit_directory_without_the_package_is_refused() {
        let empty = tempfile::tempdir().expect("tempdir");
        let err = python_dir(Some(empty.path())).expect_err("no package there");
        assert!(
            err.to_string().contains("no morpheus_model package"),
            "{err}"
        );
    }

    #[test]
    fn the_embedded_copy_unpacks_complete() {
        let dir = unpacked().expect("unpacks");
        for (name, text) in CONVERTER {
            let found = std::fs::read_to_string(dir.join("morpheus_model").join(name))
                .expect("unpacked file");
            assert_eq!(&found, text, "{name}");
        }
        assert!(dir.join(LLAMA_BENCH.0).is_file());
    }
}
