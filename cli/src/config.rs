//! Settings: flags, then environment variables (clap reads both), then the config file, then
//! the defaults. The config file is TOML, at `--config`, `MORPHEUS_CONFIG`, or
//! `$MORPHEUS_HOME/config.toml` (`MORPHEUS_HOME` defaults to `~/.morpheus`); a missing default
//! file is no error, a missing named one is. Unknown keys are refused, naming them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{Error, Result, keystore::PasswordSource};

/// The default chain, router and deployment: a local devnet (`morpheus devnet`).
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";
/// The default router.
pub const DEFAULT_ROUTER_URL: &str = "http://127.0.0.1:8090";
/// The default deployment file (what `script/Deploy.s.sol` writes for anvil's chain).
pub const DEFAULT_DEPLOYMENT: &str = "deployments/31337.json";
/// Where the gateway listens by default.
pub const DEFAULT_GATEWAY_LISTEN: &str = "127.0.0.1:8000";

/// The config file: every key optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// JSON-RPC URL of the chain.
    pub rpc_url: Option<String>,
    /// The router's base URL.
    pub router_url: Option<String>,
    /// The deployment file (`deployments/<chainId>.json`).
    pub deployment: Option<PathBuf>,
    /// The encrypted keystore file.
    pub keystore: Option<PathBuf>,
    /// A file holding the keystore's password on its first line.
    pub password_file: Option<PathBuf>,
    /// The gateway's settings.
    #[serde(default)]
    pub gateway: GatewayFile,
}

/// `[gateway]` in the config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// The file of usage reports not yet sent.
    pub outbox: Option<PathBuf>,
    /// Completion tokens asked for when a request names no `max_tokens`.
    pub default_max_tokens: Option<u32>,
    /// Seconds to wait for a provider's first token before failing over.
    pub first_token_timeout: Option<u64>,
    /// Seconds a streamed answer may pause between two chunks before it counts as cut.
    pub idle_timeout: Option<u64>,
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses the text of the file at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), e.message().trim_end())))
    }
}

/// `MORPHEUS_HOME`, else `~/.morpheus`, else `.morpheus` in the working directory.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("MORPHEUS_HOME") {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".morpheus"))
        .unwrap_or_else(|| PathBuf::from(".morpheus"))
}

/// The settings every command shares, from flags and environment (clap), before the file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// The config file (TOML). Default: $MORPHEUS_HOME/config.toml (MORPHEUS_HOME: ~/.morpheus).
    #[arg(long, env = "MORPHEUS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// JSON-RPC URL of the chain [default: http://127.0.0.1:8545].
    #[arg(long, env = "MORPHEUS_RPC_URL", global = true)]
    pub rpc_url: Option<String>,
    /// The router's base URL [default: http://127.0.0.1:8090].
    #[arg(long, env = "MORPHEUS_ROUTER_URL", global = true)]
    pub router_url: Option<String>,
    /// The protocol's deployment file, as `script/Deploy.s.sol` writes it
    /// [default: deployments/31337.json].
    #[arg(long, env = "MORPHEUS_DEPLOYMENT", global = true)]
    pub deployment: Option<PathBuf>,
    /// The encrypted keystore holding the user's key [default: $MORPHEUS_HOME/key.json].
    /// MORPHEUS_KEY (a raw key, for devnets and scripts) is used instead when set.
    #[arg(long, env = "MORPHEUS_KEYSTORE", global = true)]
    pub keystore: Option<PathBuf>,
    /// A file whose first line is the keystore's password (else MORPHEUS_PASSWORD, else the
    /// terminal asks).
    #[arg(long, env = "MORPHEUS_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// JSON-RPC URL of the chain.
    pub rpc_url: String,
    /// The router's base URL.
    pub router_url: String,
    /// The deployment file.
    pub deployment: PathBuf,
    /// The keystore file.
    pub keystore: PathBuf,
    /// The password file, if any.
    pub password_file: Option<PathBuf>,
    /// The gateway's settings from the file (flags override them in `main.rs`).
    pub gateway: GatewayFile,
    /// Where the gateway's outbox lives unless set.
    pub home: PathBuf,
    /// JSON output.
    pub json: bool,
}

impl Settings {
    /// Flags and environment over the config file over the defaults.
    pub fn resolve(args: &CommonArgs) -> Result<Self> {
        let home = home();
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => {
                let path = home.join("config.toml");
                if path.exists() {
                    FileConfig::read(&path)?
                } else {
                    FileConfig::default()
                }
            }
        };
        Ok(Self::merge(args, file, home))
    }

    /// The merge itself: a flag (or its variable) wins, then the file, then the default.
    pub fn merge(args: &CommonArgs, file: FileConfig, home: PathBuf) -> Self {
        Self {
            rpc_url: args
                .rpc_url
                .clone()
                .or(file.rpc_url)
                .unwrap_or_else(|| DEFAULT_RPC_URL.into()),
            router_url: args
                .router_url
                .clone()
                .or(file.router_url)
                .unwrap_or_else(|| DEFAULT_ROUTER_URL.into()),
            deployment: args
                .deployment
                .clone()
                .or(file.deployment)
                .unwrap_or_else(|| DEFAULT_DEPLOYMENT.into()),
            keystore: args
                .keystore
                .clone()
                .or(file.keystore)
                .unwrap_or_else(|| home.join("key.json")),
            password_file: args.password_file.clone().or(file.password_file),
            gateway: file.gateway,
            home,
            json: args.json,
        }
    }

    /// Where the keystore's password comes from.
    pub fn password(&self) -> PasswordSource {
        PasswordSource {
            file: self.password_file.clone(),
        }
    }

    /// The deployment, read from its file.
    pub fn load_deployment(&self) -> Result<morpheus_sdk::Deployment> {
        morpheus_sdk::Deployment::load(&self.deployment).map_err(|e| {
            Error::Config(format!(
                "deployment {}: {e} (set --deployment or MORPHEUS_DEPLOYMENT)",
                self.deployment.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_beats_the_file_which_beats_the_default() {
        let file = FileConfig::parse(
            "rpc_url = \"http://chain.test:8545\"\nrouter_url = \"http://router.test\"\n\n[gateway]\nlisten = \"127.0.0.1:9000\"\n",
            Path::new("config.toml"),
        )
        .expect("parse");
        let args = CommonArgs {
            router_url: Some("http://flag.test".into()),
            ..Default::default()
        };
        let s = Settings::merge(&args, file, PathBuf::from("/home/u/.morpheus"));
        assert_eq!(s.rpc_url, "http://chain.test:8545", "from the file");
        assert_eq!(s.router_url, "http://flag.test", "the flag wins");
        assert_eq!(
            s.deployment,
            PathBuf::from(DEFAULT_DEPLOYMENT),
            "the default"
        );
        assert_eq!(s.keystore, PathBuf::from("/home/u/.morpheus/key.json"));
        assert_eq!(
            s.gateway.listen,
            Some("127.0.0.1:9000".parse().expect("addr"))
        );
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_is_named() {
        let err = FileConfig::parse("router = \"x\"\n", Path::new("c.toml")).expect_err("unknown");
        assert!(
            err.to_string().contains("router") && err.to_string().contains("c.toml"),
            "{err}"
        );
        let err = FileConfig::parse("[gateway]\nlisten = \"nowhere\"\n", Path::new("c.toml"))
            .expect_err("bad address");
        assert!(err.to_string().contains("c.toml"), "{err}");
    }

    #[test]
    fn a_named_config_file_that_is_missing_is_an_error() {
        let args = CommonArgs {
            config: Some(PathBuf::from("/nonexistent/morpheus.toml")),
            ..Default::default()
        };
        let err = Settings::resolve(&args).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/morpheus.toml"),
            "{err}"
        );
    }
}
