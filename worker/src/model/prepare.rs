//! `morpheus-worker model prepare`: GGUF -> model directory, through the Python converter
//! (`worker/python/morpheus_model`, carried inside the binary: [`super::converter`]), which keeps
//! the GGUF beside the build; then that weights file's Merkle root (via `morpheus-sdk`). The root
//! is of the published file, not of the build, so the same GGUF prepared for any kernels or
//! hardware is one model.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use morpheus_sdk::merkle::{ModelTree, PieceIndex};
use tracing::info;

use super::{ModelMeta, converter};
use crate::{Error, Result};

/// Which operators the prepared decoder uses for its quantised matmuls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Q4_1 and Q8_0 weights stay the GGUF's own blocks, for this worker's `ai.morpheus`
    /// CPU operator (`kernels`): the fewest bytes per token. Runs only in morpheus-worker.
    #[default]
    Morpheus,
    /// ONNX Runtime's `MatMulNBits` only: any ONNX Runtime runs it, CUDA included.
    Onnxruntime,
}

impl Kernels {
    /// The converter's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Morpheus => "morpheus",
            Self::Onnxruntime => "onnxruntime",
        }
    }
}

/// What to prepare.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// `tiny` (the fixed-seed test model), `tiny-mixed` (the same in every GGML block format the
    /// kernels take), `tiny-llama3`, `tiny-qwen2`, `tiny-qwen3`, `tiny-gemma3` (those architectures), a known
    /// source name (`smollm2`) or a GGUF path.
    pub source: String,
    /// Output directory.
    pub out: PathBuf,
    /// Python interpreter; by default `.venv/bin/python` found from the current directory up.
    pub python: Option<PathBuf>,
    /// Directory holding the converter's `morpheus_model` package; by default
    /// `$MORPHEUS_PYTHON_DIR`, else the copy embedded in the binary.
    pub python_dir: Option<PathBuf>,
    /// Convert again even when the directory is up to date.
    pub force: bool,
    /// Operators for the quantised matmuls.
    pub kernels: Kernels,
}

/// `.venv/bin/python` in `start` or a parent, else `python3` from `PATH`.
pub fn default_python(start: &Path) -> PathBuf {
    start
        .ancestors()
        .map(|d| d.join(".venv/bin/python"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Prepares `opts.out` (cached: the converter skips an up-to-date directory) and records the
/// weights file's Merkle root in its `morpheus.json`.
pub fn prepare(opts: &PrepareOptions) -> Result<ModelMeta> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let python = opts.python.clone().unwrap_or_else(|| default_python(&cwd));
    let package = converter::python_dir(opts.python_dir.as_deref())?;
    let mut cmd = Command::new(&python);
    cmd.env("PYTHONPATH", &package)
        .arg("-m")
        .arg("morpheus_model");
    if opts.source == "tiny" {
        cmd.arg("tiny");
    } else if let Some(variant) = opts.source.strip_prefix("tiny-") {
        // `tiny-mixed` (every block format), or `tiny-<arch>` (llama3, qwen2, qwen3, gemma3).
        cmd.arg("tiny");
        if variant == "mixed" {
            cmd.args(["--formats", "mixed"]);
        } else {
            cmd.args(["--arch", variant]);
        }
    } else {
        cmd.arg("prepare").arg(&opts.source);
    }
    cmd.arg("--out")
        .arg(&opts.out)
        .arg("--kernels")
        .arg(opts.kernels.as_str());
    if opts.force {
        cmd.arg("--force");
    }
    // The converter skips an up-to-date directory; then the recorded root still holds, if it
    // was computed over the same weights file under the current tree rule.
    let before = weights_file_stamp(&opts.out);
    info!(target: "worker::prepare", python = %python.display(), source = %opts.source, out = %opts.out.display(), "converting");
    let status = cmd
        .status()
        .map_err(|e| Error::Prepare(format!("cannot run {}: {e}", python.display())))?;
    if !status.success() {
        return Err(Error::Prepare(format!(
            "the converter exited with {status}"
        )));
    }
    let meta = ModelMeta::read(&opts.out)?;
    if meta.merkle_root_is_current() && before.is_some() && before == weights_file_stamp(&opts.out)
    {
        return Ok(meta);
    }
    let root = merkle_root(&opts.out.join(meta.weights_file()))?;
    ModelMeta::write_merkle_root(&opts.out, &root.to_string())?;
    ModelMeta::read(&opts.out)
}

/// The weights file's name and modification time, as `morpheus.json` names it now.
fn weights_file_stamp(dir: &Path) -> Option<(String, std::time::SystemTime)> {
    let meta = ModelMeta::read(dir).ok()?;
    let file = meta.weights_file().to_string();
    let modified = std::fs::metadata(dir.join(&file))
        .and_then(|m| m.modified())
        .ok()?;
    Some((file, modified))
}

/// The weights file's Merkle tree (1 MiB chunks over 4 KiB pieces) and its piece index (what
/// a liveness answer is proved from), with progress in the log.
pub fn model_tree(path: &Path) -> Result<(ModelTree, PieceIndex)> {
    let started = Instant::now();
    let mut last_pct = u64::MAX;
    let (tree, pieces) = PieceIndex::from_file(path, |done, total| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if pct / 10 != last_pct / 10 {
            last_pct = pct;
            info!(target: "worker::merkle", file = %path.display(), pct, "hashing weights chunks");
        }
    })?;
    info!(
        target: "worker::merkle",
        root = %tree.root(),
        chunks = tree.leaf_count(),
        ms = started.elapsed().as_millis() as u64,
        "weights merkle tree ready"
    );
    Ok((tree, pieces))
}

fn merkle_root(path: &Path) -> Result<alloy::primitives::B256> {
    Ok(model_tree(path)?.0.root())
}
