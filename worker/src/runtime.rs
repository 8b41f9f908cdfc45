//! Finding and loading ONNX Runtime (`ort` with `load-dynamic`), and choosing the device.
//!
//! The shared library comes from the PyPI `onnxruntime` (CPU) or `onnxruntime-gpu` wheel that the
//! project's set-up installs into `.venv`. [`ort_library`] finds it: `ORT_DYLIB_PATH` when set
//! (and not empty), else `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*`
//! in the given directory or one of its parents, else in the executable's directory or one of
//! its parents (a binary built in `target/release` finds the repository's venv from anywhere).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use ort::{
    environment::Environment,
    ep::{self, ExecutionProvider},
    session::builder::SessionBuilder,
};
use tracing::{info, warn};

use crate::{Error, Result};

/// Environment variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when this ONNX Runtime build and the machine have it, else CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA, falling back to CPU with a warning when unavailable.
    Cuda,
}

/// The ONNX Runtime library: `ORT_DYLIB_PATH` if set, else searched from `start` upwards, then
/// from the executable upwards.
pub fn ort_library(start: &Path) -> Result<PathBuf> {
    // An empty value is "unset": `make` and shells export one when a lookup found nothing.
    if let Some(path) = std::env::var_os(ORT_DYLIB_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(Error::OrtLibrary(format!(
            "{ORT_DYLIB_ENV}={} is not a file",
            path.display()
        )));
    }
    let exe = std::env::current_exe().ok();
    let exe_dirs = exe.iter().flat_map(|e| e.ancestors().skip(1));
    for dir in start.ancestors().chain(exe_dirs) {
        if let Some(found) = search_venv(&dir.join(".venv")) {
            return Ok(found);
        }
    }
    Err(Error::OrtLibrary(format!(
        "set {ORT_DYLIB_ENV}, or install the onnxruntime wheel into .venv (`make deps` in the \
         repository): no .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* in \
         {} or its parents, nor beside the executable",
        start.display()
    )))
}

fn search_venv(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .filter_map(|e| std::fs::read_dir(e.path().join("site-packages/onnxruntime/capi")).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so."))
        })
        .collect();
    found.sort();
    found.pop()
}

static ENVIRONMENT: OnceLock<Arc<Environment>> = OnceLock::new();

/// Loads ONNX Runtime from `library` once per process and returns its environment.
pub fn environment(library: &Path) -> Result<Arc<Environment>> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env.clone());
    }
    let builder = ort::init_from(library).map_err(|e| Error::OrtLibrary(e.to_string()))?;
    let env = Arc::new(builder.with_name("morpheus-worker").build()?);
    info!(target: "worker::runtime", library = %library.display(), "onnx runtime loaded");
    Ok(ENVIRONMENT.get_or_init(|| env).clone())
}

/// Registers the execution provider for `device` on `builder`; returns the device actually used.
pub(crate) fn select_device(builder: &mut SessionBuilder, device: Device) -> &'static str {
    if device == Device::Cpu {
        info!(target: "worker::runtime", "running on CPU (requested)");
        return "cpu";
    }
    if !ep::CUDA::is_available().unwrap_or(false) {
        warn!(
            target: "worker::runtime",
            "CUDA execution provider not available (CPU onnxruntime wheel or no GPU): falling back to CPU"
        );
        return "cpu";
    }
    match ep::CUDA::default().register(builder) {
        Ok(()) => {
            info!(target: "worker::runtime", "running on GPU (CUDA execution provider)");
            "cuda"
        }
        Err(e) => {
            warn!(target: "worker::runtime", error = %e, "CUDA execution provider failed to register: falling back to CPU");
            "cpu"
        }
    }
}
