//! Where the devnet finds what it runs: the repository (the deploy script, `node_modules`, the
//! venv), anvil and forge from `node_modules/.bin` (what `make deps` installs), and the
//! router's and worker's binaries beside `morpheus` (where `make demo` builds them) or on PATH.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The deploy script, relative to the repository root.
pub(crate) const DEPLOY_SCRIPT: &str = "script/Deploy.s.sol";

/// The programs of one devnet.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// The repository root: forge runs there, and the children find `.venv` from it.
    pub(crate) root: PathBuf,
    pub(crate) anvil: PathBuf,
    pub(crate) forge: PathBuf,
    pub(crate) router: PathBuf,
    pub(crate) worker: PathBuf,
}

impl Tools {
    /// Finds every program before anything starts, so that a missing one is the first error,
    /// not one after minutes of model conversion.
    pub(crate) fn find(root: Option<&Path>, bin_dir: Option<&Path>) -> Result<Self> {
        let root = match root {
            Some(r) => absolute(r)?,
            None => find_root()?,
        };
        if !root.join(DEPLOY_SCRIPT).is_file() {
            return Err(Error::Devnet(format!(
                "{} has no {DEPLOY_SCRIPT}: --root must be the Morpheus Compute repository",
                root.display()
            )));
        }
        let npm = |tool: &str| {
            let path = root.join("node_modules/.bin").join(tool);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::Devnet(format!(
                    "no {}: `make deps` installs it",
                    path.display()
                )))
            }
        };
        Ok(Self {
            anvil: npm("anvil")?,
            forge: npm("forge")?,
            router: binary("morpheus-router", bin_dir)?,
            worker: binary("morpheus-worker", bin_dir)?,
            root,
        })
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

/// The working directory or its nearest parent that holds the deploy script.
fn find_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    cwd.ancestors()
        .find(|dir| dir.join(DEPLOY_SCRIPT).is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            Error::Devnet(format!(
                "no {DEPLOY_SCRIPT} in {} or its parents: run it in the Morpheus Compute \
                 repository, or pass --root",
                cwd.display()
            ))
        })
}

/// `name` in `bin_dir` when given (and only there), else beside the running executable, else
/// on PATH.
fn binary(name: &str, bin_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = bin_dir {
        let path = absolute(&dir.join(name))?;
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Devnet(format!("no {} (--bin-dir)", path.display())))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Devnet(format!(
                "no {name} beside this program nor on PATH: build it with `cargo build --release \
                 -p {name}` (`make demo` does), or pass --bin-dir"
            ))
        })
}
