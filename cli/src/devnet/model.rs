//! The served model: prepared by `morpheus-worker model prepare` (converted on the first run,
//! kept as it is while up to date), and described by what the chain registers it by: the
//! Merkle root and chunk count of its published weights file, their format and its name.

use std::path::{Path, PathBuf};

use alloy::primitives::B256;
use morpheus_sdk::merkle::ModelTree;
use serde::Deserialize;
use tokio::process::Command;

use super::{DevnetModel, process::Service, tools::Tools};
use crate::{Error, Result};

/// A prepared model directory and its registration.
#[derive(Debug, Clone)]
pub(crate) struct PreparedModel {
    /// The directory the worker serves.
    pub(crate) dir: PathBuf,
    /// The name it is registered under.
    pub(crate) name: String,
    /// The weights format label (`gguf`).
    pub(crate) format: String,
    /// The Merkle root of the weights file.
    pub(crate) root: B256,
    /// Its 1 MiB chunks.
    pub(crate) chunks: u64,
}

/// The part of `morpheus.json` the registration needs.
#[derive(Debug, Deserialize)]
struct Meta {
    name: String,
    weights_file: Option<String>,
    weights_format: Option<String>,
    merkle_root: Option<String>,
}

/// Prepares `model` into `models_dir/<model>` and computes its registration.
pub(crate) async fn prepare(
    tools: &Tools,
    model: DevnetModel,
    models_dir: &Path,
    log_dir: &Path,
) -> Result<PreparedModel> {
    let dir = models_dir.join(model.source());
    let mut command = Command::new(&tools.worker);
    command
        .arg("model")
        .arg("prepare")
        .arg(model.source())
        .arg("--out")
        .arg(&dir);
    Service::spawn(
        "morpheus-worker model prepare",
        command,
        &tools.root,
        log_dir.join("prepare.log"),
    )?
    .finish()
    .await?;

    let meta_path = dir.join("morpheus.json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let meta: Meta = serde_json::from_str(&text)
        .map_err(|e| Error::Devnet(format!("{}: {e}", meta_path.display())))?;
    let weights_file = meta.weights_file.ok_or_else(|| {
        Error::Devnet(format!(
            "{} names no weights_file: prepare it again with this worker",
            meta_path.display()
        ))
    })?;
    let weights = dir.join(&weights_file);
    // The registry's root is over the published weights, the file the worker proves chunks of;
    // computed here rather than trusted from morpheus.json, and checked against it.
    let tree = {
        let weights = weights.clone();
        tokio::task::spawn_blocking(move || ModelTree::from_file(weights, |_, _| {}))
            .await
            .map_err(|e| Error::Devnet(format!("hashing the weights: {e}")))??
    };
    if let Some(recorded) = meta.merkle_root.as_deref()
        && recorded.parse::<B256>().ok() != Some(tree.root())
    {
        return Err(Error::Devnet(format!(
            "{} records Merkle root {recorded}, but {} hashes to {}: prepare it again with \
             --force",
            meta_path.display(),
            weights.display(),
            tree.root()
        )));
    }
    Ok(PreparedModel {
        dir,
        name: meta.name,
        // As the worker reads it: the recorded label, else the file's extension.
        format: meta.weights_format.unwrap_or_else(|| {
            Path::new(&weights_file)
                .extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default()
        }),
        root: tree.root(),
        chunks: tree.leaf_count(),
    })
}
