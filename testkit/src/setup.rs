//! Where the repository and the kit's cache are, and the project's own installs (`make deps`),
//! run on first use so that `cargo test` on a fresh clone needs nothing done by hand.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, OnceLock},
};

use crate::{Error, Result, lock::FileLock};

/// Environment variable that moves the kit's cache (prepared models, locks) elsewhere.
pub const CACHE_ENV: &str = "MORPHEUS_TESTKIT_CACHE";

/// The repository root (this crate lives in `<root>/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The kit's cache: `$MORPHEUS_TESTKIT_CACHE`, else `testkit/` in the Cargo target directory
/// (`$CARGO_TARGET_DIR` or `<root>/target`). Never the repository's `models/`, which belongs to
/// `make demo` and `make bench`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    target.join("testkit")
}

/// Stamps the Makefile's install targets leave behind.
const STAMPS: [&str; 2] = ["node_modules/.installed", ".venv/.installed"];

/// Runs `make deps` (anvil, forge and cast from npm; the Python venv with ONNX Runtime and the
/// converter's packages) once, under a lock, when its stamps are missing.
pub fn ensure_installed() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| install().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Setup)
}

fn install() -> Result<()> {
    let root = repo_root();
    let missing = || STAMPS.iter().any(|s| !root.join(s).is_file());
    if !missing() {
        return Ok(());
    }
    let _lock = FileLock::acquire(&cache_dir(), "install")?;
    if !missing() {
        return Ok(());
    }
    eprintln!(
        "morpheus-testkit: running `make deps` in {}",
        root.display()
    );
    let status = Command::new("make")
        .arg("-C")
        .arg(&root)
        .arg("deps")
        .status()
        .map_err(|e| Error::Setup(format!("cannot run make: {e}")))?;
    if !status.success() || missing() {
        return Err(Error::Setup(format!(
            "`make deps` failed ({status}) in {}",
            root.display()
        )));
    }
    Ok(())
}

/// The venv's Python, with the converter's packages and the `openai` client installed.
pub fn python() -> Result<PathBuf> {
    ensure_installed()?;
    let python = repo_root().join(".venv/bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(Error::Setup(format!("{} is missing", python.display())))
    }
}

/// ONNX Runtime's shared library: `ORT_DYLIB_PATH` when set, else the venv's wheel.
pub fn ort_library() -> Result<PathBuf> {
    ensure_installed()?;
    Ok(morpheus_worker::runtime::ort_library(&repo_root())?)
}

/// ONNX Runtime loaded once for this process.
pub fn ort_environment() -> Result<Arc<ort::environment::Environment>> {
    Ok(morpheus_worker::runtime::environment(&ort_library()?)?)
}
