//! Finding and starting anvil.

use std::path::{Path, PathBuf};

use alloy::node_bindings::{Anvil, AnvilInstance};

use crate::{Error, Result, setup};

/// Environment variable that names an anvil binary explicitly.
pub const ANVIL_ENV: &str = "MORPHEUS_ANVIL";

/// Locates anvil: `$MORPHEUS_ANVIL`, else the npm-installed binary in the repository's
/// `node_modules` (installed by `make deps` on first use).
pub fn anvil_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(ANVIL_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Setup(format!(
                "{ANVIL_ENV}={} is not a file",
                path.display()
            )))
        };
    }
    setup::ensure_installed()?;
    let root = setup::repo_root();
    npm_anvil(&root).ok_or_else(|| {
        Error::Setup(format!(
            "no anvil in {}/node_modules/@foundry-rs after `make deps`; set {ANVIL_ENV}",
            root.display()
        ))
    })
}

/// Starts anvil on a free port (1-second blocks off: transactions mine at once).
pub fn spawn_anvil() -> Result<AnvilInstance> {
    Anvil::at(anvil_path()?)
        .port(0u16)
        .try_spawn()
        .map_err(|e| Error::Setup(format!("anvil did not start: {e}")))
}

/// The platform binary of `@foundry-rs/anvil`: the npm wrapper script would leave its child
/// running when killed, so the test harness runs the binary itself.
fn npm_anvil(root: &Path) -> Option<PathBuf> {
    let scope = root.join("node_modules").join("@foundry-rs");
    std::fs::read_dir(scope)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("anvil-"))
        .map(|entry| entry.path().join("bin").join("anvil"))
        .find(|path| path.is_file())
}
