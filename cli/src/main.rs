//! `morpheus`: the consumer's command line (see the crate's README).

use std::{io::Read, net::SocketAddr, path::PathBuf, time::Duration};

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use clap::{Parser, Subcommand};
use eyre::WrapErr;
use morpheus_cli::{
    account::{self, StakeAction},
    config::{CommonArgs, DEFAULT_GATEWAY_LISTEN, Settings},
    devnet, gateway,
    keystore::{self, Keystore},
    network,
};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "morpheus",
    version,
    about = "Use the Morpheus Compute network: an OpenAI-compatible gateway, chats, your stake and key, and a local devnet"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve an OpenAI-compatible endpoint at http://LISTEN/v1 that sends each chat through the
    /// network, signed with your key.
    Gateway(GatewayArgs),
    /// Ask one question through the network and stream the answer to the terminal.
    Chat(ChatArgs),
    /// Stake MOR: your daily allowance of tokens grows with your share of all staked MOR.
    Stake {
        /// MOR to stake, in MOR (decimal, e.g. 12.5).
        #[arg(allow_hyphen_values = true)]
        amount: String,
    },
    /// Unstake MOR: it stops counting at once and is withdrawable from the next UTC day.
    Unstake {
        /// MOR to unstake, in MOR.
        #[arg(allow_hyphen_values = true)]
        amount: String,
    },
    /// Withdraw the unstaked MOR that has unlocked.
    Withdraw,
    /// Your stake, today's allowance of tokens, and what you used of it.
    Allowance {
        /// Another user's address (default: your key's).
        #[arg(long)]
        user: Option<Address>,
    },
    /// The models registered on the network, with their bids.
    Models,
    /// A model's providers as the router ranks them: price, capacity, speed, reputation.
    Providers {
        /// The model's name (as `morpheus models` lists it) or its 0x id.
        #[arg(long)]
        model: String,
    },
    /// Your key, in an encrypted keystore file.
    #[command(subcommand)]
    Key(KeyCommand),
    /// A whole local network: chain, contracts, router, a worker, the gateway, and a first chat
    /// paid on-chain (what `make demo` runs).
    Devnet(devnet::DevnetArgs),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Create a new key, encrypted with a password you choose; prints its address.
    New {
        /// Replace an existing keystore (its key is lost unless backed up).
        #[arg(long)]
        force: bool,
    },
    /// Import a key (64 hex digits) from a file, or from standard input when no file is given;
    /// never from the command line, where `ps` would show it.
    Import {
        /// A file holding the key.
        #[arg(long)]
        from_file: Option<PathBuf>,
        /// Replace an existing keystore.
        #[arg(long)]
        force: bool,
    },
    /// Print the keystore's address.
    Show,
}

#[derive(Debug, clap::Args)]
struct GatewayArgs {
    /// Address to listen on [default: 127.0.0.1:8000, or [gateway] listen in the config file].
    #[arg(long, env = "MORPHEUS_GATEWAY_LISTEN")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    tuning: GatewayTuning,
}

#[derive(Debug, Clone, clap::Args)]
struct GatewayTuning {
    /// Completion tokens asked for when a request names no max_tokens.
    #[arg(long, env = "MORPHEUS_DEFAULT_MAX_TOKENS")]
    default_max_tokens: Option<u32>,
    /// Seconds to wait for a provider's first token before asking for another provider.
    #[arg(long, env = "MORPHEUS_FIRST_TOKEN_TIMEOUT")]
    first_token_timeout: Option<u64>,
    /// Seconds a streamed answer may pause between two chunks before it counts as cut (long
    /// answers of reasoning models need more).
    #[arg(long, env = "MORPHEUS_IDLE_TIMEOUT")]
    idle_timeout: Option<u64>,
    /// The file keeping usage reports not yet sent [default: $MORPHEUS_HOME/outbox.db].
    #[arg(long, env = "MORPHEUS_OUTBOX")]
    outbox: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ChatArgs {
    /// The question.
    prompt: String,
    /// The model's name (as `morpheus models` lists it) or its 0x id; default: the only one
    /// registered.
    #[arg(long)]
    model: Option<String>,
    /// A system message before the question.
    #[arg(long)]
    system: Option<String>,
    /// The most tokens of the answer.
    #[arg(long)]
    max_tokens: Option<u32>,
    #[command(flatten)]
    tuning: GatewayTuning,
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let settings = Settings::resolve(&cli.common)?;
    match cli.command {
        Command::Gateway(args) => serve_gateway(&settings, args).await,
        Command::Chat(args) => chat(&settings, args).await,
        Command::Stake { amount } => {
            let amount = account::parse_mor("stake", &amount)?;
            stake(&settings, StakeAction::Stake(amount)).await
        }
        Command::Unstake { amount } => {
            let amount = account::parse_mor("unstake", &amount)?;
            stake(&settings, StakeAction::Unstake(amount)).await
        }
        Command::Withdraw => stake(&settings, StakeAction::Withdraw).await,
        Command::Allowance { user } => {
            let user = match user {
                Some(u) => u,
                None => signer(&settings)?.address(),
            };
            let view = account::show(&settings, user).await?;
            print(&settings, &view, view.render())
        }
        Command::Models => {
            let models = network::models(&settings).await?;
            print(&settings, &models, network::render_models(&models))
        }
        Command::Providers { model } => {
            let list = network::providers(&settings, &model).await?;
            print(&settings, &list, network::render_providers(&list))
        }
        Command::Key(command) => key(&settings, command),
        Command::Devnet(args) => {
            devnet::run(args, shutdown_signal()).await?;
            Ok(())
        }
    }
}

/// Prints `value` as JSON with `--json`, else `text`.
fn print<T: serde::Serialize>(settings: &Settings, value: &T, text: String) -> eyre::Result<()> {
    if settings.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

fn signer(settings: &Settings) -> eyre::Result<PrivateKeySigner> {
    Ok(keystore::load_signer(
        &Keystore::new(&settings.keystore),
        &settings.password(),
    )?)
}

async fn stake(settings: &Settings, action: StakeAction) -> eyre::Result<()> {
    let view = account::act(settings, signer(settings)?, action).await?;
    print(settings, &view, view.render())
}

fn key(settings: &Settings, command: KeyCommand) -> eyre::Result<()> {
    let store = Keystore::new(&settings.keystore);
    let address = match command {
        KeyCommand::New { force } => {
            let signer = PrivateKeySigner::random();
            let password = settings.password().read(store.path(), true)?;
            store.save(&signer, &password, force)?;
            signer.address()
        }
        KeyCommand::Import { from_file, force } => {
            let (text, source) = match &from_file {
                Some(path) => (
                    std::fs::read_to_string(path)
                        .wrap_err_with(|| format!("reading {}", path.display()))?,
                    format!("the file {}", path.display()),
                ),
                None => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .wrap_err("reading the key from standard input")?;
                    (text, "standard input".to_string())
                }
            };
            let signer = keystore::parse_key(&text, &source)?;
            let password = settings.password().read(store.path(), true)?;
            store.save(&signer, &password, force)?;
            signer.address()
        }
        KeyCommand::Show => match store.address()? {
            Some(a) => a,
            None => signer(settings)?.address(),
        },
    };
    let value = serde_json::json!({ "address": address, "keystore": store.path() });
    print(settings, &value, format!("{address}\n"))
}

/// The gateway's configuration from the settings and the command's flags.
fn gateway_config(
    settings: &Settings,
    tuning: &GatewayTuning,
) -> eyre::Result<gateway::GatewayConfig> {
    let outbox = tuning
        .outbox
        .clone()
        .or(settings.gateway.outbox.clone())
        .unwrap_or_else(|| settings.home.join("outbox.db"));
    let mut config = gateway::GatewayConfig::new(
        settings.rpc_url.clone(),
        settings.router_url.clone(),
        settings.load_deployment()?,
        signer(settings)?,
        outbox,
    );
    if let Some(n) = tuning
        .default_max_tokens
        .or(settings.gateway.default_max_tokens)
    {
        config.default_max_tokens = n;
    }
    if let Some(s) = tuning
        .first_token_timeout
        .or(settings.gateway.first_token_timeout)
    {
        config.first_token_timeout = Duration::from_secs(s);
    }
    if let Some(s) = tuning.idle_timeout.or(settings.gateway.idle_timeout) {
        config.idle_timeout = Duration::from_secs(s);
    }
    Ok(config)
}

async fn serve_gateway(settings: &Settings, args: GatewayArgs) -> eyre::Result<()> {
    let listen = match args.listen.or(settings.gateway.listen) {
        Some(l) => l,
        None => DEFAULT_GATEWAY_LISTEN.parse()?,
    };
    let gateway = gateway::Gateway::connect(gateway_config(settings, &args.tuning)?).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .wrap_err_with(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    eprintln!("gateway: http://{addr}/v1 (any API key)");
    gateway::run(listener, gateway, shutdown_signal()).await?;
    Ok(())
}

async fn chat(settings: &Settings, args: ChatArgs) -> eyre::Result<()> {
    let gateway = gateway::Gateway::connect(gateway_config(settings, &args.tuning)?).await?;
    gateway::chat_to_terminal(
        &gateway,
        args.model.as_deref(),
        args.system.as_deref(),
        &args.prompt,
        args.max_tokens,
    )
    .await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
