//! Finding and starting anvil.

use std::path::{Path, PathBuf};

use alloy::node_bindings::{Anvil, AnvilInstance};

use crate::{Error, Result};

/// Environment variable that names an anvil binary explicitly.
pub const ANVIL_ENV: &str = "MORPHEUS_ANVIL";

/// Locates anvil: `$MORPHEUS_ANVIL`, else the npm-installed binary in the repository's
/// `node_modules` (what `npm ci` puts there), else `anvil` on `PATH`.
pub fn anvil_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(ANVIL_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::LocalNode(format!(
                "{ANVIL_ENV}={} is not a file",
                path.display()
            )))
        };
    }
    if let Some(path) = npm_anvil(&repo_root()) {
        return Ok(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("anvil"))
        .find(|p| p.is_file());
    on_path.ok_or_else(|| {
        Error::LocalNode(format!(
            "anvil not found: run `npm ci` in the repository, or set {ANVIL_ENV}, or put anvil on PATH"
        ))
    })
}

/// Starts anvil on a free port (1-second blocks off: transactions mine at once).
pub fn spawn_anvil() -> Result<AnvilInstance> {
    Anvil::at(anvil_path()?)
        .port(0u16)
        .try_spawn()
        .map_err(|e| Error::LocalNode(format!("anvil did not start: {e}")))
}

/// The repository this crate was built from (where `node_modules` and `out` live).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
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
