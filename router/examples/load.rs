//! `make bench`: the router under load. On loopback: a devnet with the tiny model served by a
//! real worker (which answers every liveness challenge and receipt), the `morpheus-router`
//! binary as its own process (so its CPU time is its own), and many simulated users with real
//! keys: each pair is a freshly signed `ComputeRequest` (the router recovers it, checks the
//! allowance, proves the provider live, books it and signs the assignment) followed by the
//! user's signed `UsageReport` (the router recovers it, asks the provider for its receipt and
//! credits the session). Prints pairs per second, p50/p99 of a pair, the router's CPU time per
//! pair, and, measured in the same run, the bare cryptography of one pair: two signature
//! recoveries and one signature.
//!
//! `cargo run --release -p morpheus-router --example load -- [--pairs N] [--concurrency C]
//! [--users U] [--prefill S] [--postgres URL]` (defaults 4000, 32, 64, 0, the SQLite file).
//! `--prefill` stores S reported sessions (spread over the last 30 days and 10,000 users) in the
//! router's database before it starts, to show the figures on a database that has grown: as a
//! router that has served those days leaves it (each session expired within its day, each past
//! day's bootstrap computed), so the run measures requests, not a month's catching up.
//! `--backlog S` stores them as a router finds a database restored after a month away: every
//! session expired long ago and no day's bootstrap computed, so its background rounds compute
//! the days and prune nearly every session while the load runs.
//! `--postgres` runs the router on that PostgreSQL database instead (`make bench` starts a
//! throwaway server with `tools/pg-test-server`); it must be empty or the router's own.
//! `--router-bin PATH` measures another build's `morpheus-router` (a copy kept aside), so two
//! builds can be run in turn in one sitting on a machine whose speed drifts.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alloy::{
    primitives::{Address, B256, U256, utils::parse_ether},
    providers::{Provider, ProviderBuilder},
    signers::{
        Signer,
        local::{PrivateKeySigner, Secp256k1Signer},
    },
};
use eyre::{WrapErr, bail, ensure};
use morpheus_sdk::{
    messages::{Assignment, ComputeRequest, Signed, UsageReport},
    router::RouterClient,
};
use morpheus_testkit::{Devnet, TestWorker, unix_now, workspace_binaries};
use tokio::process::Child;

const PROVIDER: usize = 2;
/// Anvil account 0 deployed the test MOR and may mint it.
const OWNER: usize = 0;
/// Whole MOR each simulated user stakes.
const STAKE_MOR: &str = "1000";
/// `tokenMax` of every request, and the tokens each report claims.
const TOKEN_MAX: u64 = 64;
const REPORTED_TOKENS: u64 = 16;

struct Args {
    pairs: usize,
    concurrency: usize,
    users: usize,
    prefill: u64,
    /// The prefilled sessions are a backlog (`--backlog`), not a served month.
    backlog: bool,
    liveness_ttl: u64,
    postgres: Option<String>,
    /// Another build's router binary to measure instead of the workspace's.
    router_bin: Option<PathBuf>,
}

fn parse_args() -> eyre::Result<Args> {
    let mut args = Args {
        pairs: 4000,
        concurrency: 32,
        users: 64,
        prefill: 0,
        backlog: false,
        liveness_ttl: 0,
        postgres: None,
        router_bin: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| eyre::eyre!("{flag} needs a value"))?;
        let number = || {
            value
                .replace('_', "")
                .parse::<u64>()
                .wrap_err_with(|| format!("{flag} {value:?} is not a count"))
        };
        match flag.as_str() {
            "--pairs" => args.pairs = number()? as usize,
            "--concurrency" => args.concurrency = number()? as usize,
            "--users" => args.users = number()? as usize,
            "--prefill" => args.prefill = number()?,
            "--backlog" => (args.prefill, args.backlog) = (number()?, true),
            "--liveness-ttl" => args.liveness_ttl = number()?,
            "--postgres" => args.postgres = Some(value),
            "--router-bin" => args.router_bin = Some(PathBuf::from(value)),
            other => bail!(
                "unknown flag {other}; flags: --pairs --concurrency --users --prefill \
                 --backlog --liveness-ttl --postgres --router-bin"
            ),
        }
    }
    ensure!(
        args.pairs > 0 && args.concurrency > 0 && args.users > 0,
        "--pairs, --concurrency and --users must be at least 1"
    );
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// User and system CPU seconds `pid` has used (Linux `/proc/<pid>/stat`, fields 14 and 15).
fn cpu_seconds(pid: u32) -> eyre::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .wrap_err("reading the router's CPU time (Linux /proc)")?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| eyre::eyre!("/proc/{pid}/stat has no command name"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> eyre::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| eyre::eyre!("/proc/{pid}/stat is short"))?
            .parse::<f64>()?)
    };
    // Fields 14 and 15 of the whole line are 12 and 13 after the name (state is field 3).
    // The kernel's USER_HZ is 100 on every Linux the project runs on.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// `n` new users, each given ETH for gas and MOR by the test token's owner, staking
/// [`STAKE_MOR`].
async fn stake_users(devnet: &Devnet, n: usize) -> eyre::Result<Vec<PrivateKeySigner>> {
    let chain_id = devnet.deployment().chain_id;
    let mor = devnet.protocol(OWNER).await?.mor();
    let rpc = ProviderBuilder::new().connect_http(devnet.rpc_url().parse()?);
    let mut users = Vec::with_capacity(n);
    for _ in 0..n {
        let mut user = PrivateKeySigner::random();
        user.set_chain_id(Some(chain_id));
        let _: serde_json::Value = rpc
            .raw_request(
                "anvil_setBalance".into(),
                (user.address(), U256::from(10u128.pow(20))),
            )
            .await?;
        mor.mint(user.address(), parse_ether(STAKE_MOR)?).await?;
        let protocol = morpheus_sdk::contracts::Protocol::connect(
            &devnet.rpc_url(),
            devnet.deployment(),
            Some(user.clone()),
        )
        .await?;
        protocol
            .session_router()
            .stake(parse_ether(STAKE_MOR)?)
            .await?;
        users.push(user);
    }
    Ok(users)
}

/// The router binary serving on a free port of 127.0.0.1, as its own process.
struct RouterProcess {
    child: Child,
    url: String,
}

impl RouterProcess {
    async fn start(
        bin: &Path,
        devnet: &Devnet,
        dir: &Path,
        liveness_ttl: u64,
        postgres: Option<&str>,
    ) -> eyre::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let child = devnet
            .router_command(bin, dir, &format!("127.0.0.1:{port}"), postgres)?
            // Every simulated user and the one client address send far above the default
            // rate limits: the benchmark measures the router's work, not its refusals.
            .args([
                "--allow-private-endpoints",
                "--ip-rate",
                "0",
                "--user-rate",
                "0",
            ])
            .args(["--liveness-ttl", &liveness_ttl.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .wrap_err_with(|| format!("starting {}", bin.display()))?;
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{url}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "the router did not become ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, url })
    }

    fn pid(&self) -> eyre::Result<u32> {
        self.child
            .id()
            .ok_or_else(|| eyre::eyre!("the router exited"))
    }

    async fn stop(mut self) -> eyre::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// Stores `n` reported sessions in the router's PostgreSQL database at `url` (created by a first
/// start of the router), spread as [`prefill`] spreads them, over 10,000 users of its own.
fn prefill_postgres(url: &str, n: u64, today: u64, backlog: bool) -> eyre::Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.execute(
        r#"INSERT INTO sessions (session_id, "user", nonce, model_id, day, token_max, provider,
               price_per_token, expires_at, reported, tokens, outcome, amount, endpoint,
               credited, receipt, counted, settled, attempts)
           SELECT '0x' || lpad(to_hex(i), 64, '0'), '0x' || lpad(to_hex(i % 10000), 40, '0'),
               'prefill-' || i, '0x' || repeat('0', 64), $1::bigint - i % 31, 64,
               '0x' || lpad(to_hex(i % 100), 40, '0'), '1',
               CASE WHEN $3::boolean THEN 0 ELSE ($1::bigint - i % 31) * 86400 + i % 86400 END,
               1, 16, 'Credited', '16', NULL, 16, 16, 16, 1, 0
           FROM generate_series(0, $2::bigint - 1) AS i"#,
        &[&i64::try_from(today)?, &i64::try_from(n)?, &backlog],
    )?;
    // What the reports of those sessions added to their providers' days (a build from before
    // those running totals, measured with `--router-bin`, has no such table).
    client.batch_execute(
        "DO $$ BEGIN IF to_regclass('provider_days') IS NOT NULL THEN
             INSERT INTO provider_days (day, provider, credited)
             SELECT day, provider, SUM(amount::numeric)::text FROM sessions
             GROUP BY day, provider;
         END IF; END $$",
    )?;
    if !backlog {
        client.execute(
            "INSERT INTO bootstrap_days
             (day, share, reserve, days_left, share_bps, outstanding, computed_at)
         SELECT $1::bigint - d, '0', '0', 0, 0, '0', 0 FROM generate_series(1, 30) AS d",
            &[&i64::try_from(today)?],
        )?;
    }
    client.batch_execute("ANALYZE")?;
    Ok(())
}

/// Stores `n` reported sessions in the router's database at `path` (created by a first start
/// of the router): spread over the 30 days before `today` and today, 10,000 users with the
/// simulated ones among them, and 100 providers; each expired within its day, and the past
/// days' bootstraps computed (with nothing allotted).
fn prefill(path: &Path, n: u64, users: &[Address], today: u64, backlog: bool) -> eyre::Result<()> {
    let mut conn = rusqlite::Connection::open(path)?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO sessions (session_id, user, nonce, model_id, day, token_max, provider,
                 price_per_token, expires_at, reported, tokens, outcome, amount, endpoint,
                 credited, receipt, counted, settled, attempts)
             VALUES (?1, ?2, ?3, ?4, ?5, 64, ?6, '1', ?7, 1, 16, 'Credited', '16', NULL, 16, 16,
                 16, 1, 0)",
        )?;
        for i in 0..n {
            let user = match i % 10_000 {
                k if (k as usize) < users.len() => {
                    format!("{:?}", users[k as usize]).to_lowercase()
                }
                k => format!("{:?}", Address::left_padding_from(&k.to_be_bytes())),
            };
            let provider = format!("{:?}", Address::with_last_byte((i % 100) as u8));
            insert.execute(rusqlite::params![
                format!("{:?}", B256::left_padding_from(&i.to_be_bytes())),
                user,
                format!("prefill-{i}"),
                format!("{:?}", B256::ZERO),
                (today - i % 31) as i64,
                provider,
                match backlog {
                    true => 0,
                    false => ((today - i % 31) * 86_400 + i % 86_400) as i64,
                },
            ])?;
        }
        // What the reports of those sessions added to their providers' days (a build from
        // before those running totals, measured with `--router-bin`, has no such table).
        let totals: bool = tx.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'provider_days'",
            [],
            |r| r.get(0),
        )?;
        if totals {
            tx.execute(
                "INSERT INTO provider_days (day, provider, credited)
                 SELECT day, provider, CAST(SUM(CAST(amount AS INTEGER)) AS TEXT) FROM sessions
                 GROUP BY day, provider",
                [],
            )?;
        }
        for day in (today - 30..today).filter(|_| !backlog) {
            tx.execute(
                "INSERT INTO bootstrap_days
                     (day, share, reserve, days_left, share_bps, outstanding, computed_at)
                 VALUES (?1, '0', '0', 0, 0, '0', 0)",
                [day as i64],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The bare cryptography of one pair, per pair: the router recovers the request's and the
/// report's signers and signs the assignment (one thread, `rounds` pairs), with libsecp256k1
/// for both, as the router does.
fn crypto_per_pair(
    rounds: u32,
    domain: &alloy::sol_types::Eip712Domain,
    user: &PrivateKeySigner,
    router: &PrivateKeySigner,
    model_id: B256,
) -> eyre::Result<Duration> {
    let request = Signed::sign(request_for(user.address(), model_id), domain, user)?;
    let report = Signed::sign(report_for(B256::repeat_byte(7)), domain, user)?;
    // The fastest signer alloy offers (libsecp256k1), as the router signs.
    let router = router.to_secp256k1();
    let assignment = Assignment {
        sessionId: B256::repeat_byte(7),
        provider: router.address(),
        endpoint: "http://127.0.0.1:1".into(),
        modelId: model_id,
        tokenMax: U256::from(TOKEN_MAX),
        pricePerToken: U256::from(1),
        expiresAt: U256::from(unix_now()),
    };
    let started = Instant::now();
    for _ in 0..rounds {
        ensure!(request.recover(domain)? == user.address());
        ensure!(report.recover(domain)? == user.address());
        std::hint::black_box(Signed::sign(assignment.clone(), domain, &router)?);
    }
    Ok(started.elapsed() / rounds)
}

/// The router's unlabelled figures from its `/metrics`, by name.
async fn router_metrics(url: &str) -> eyre::Result<std::collections::HashMap<String, f64>> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

fn request_for(user: Address, model_id: B256) -> ComputeRequest {
    ComputeRequest {
        user,
        modelId: model_id,
        tokenMax: U256::from(TOKEN_MAX),
        nonce: U256::from_be_bytes(rand::random::<[u8; 32]>()),
        deadline: U256::from(unix_now() + 300),
    }
}

fn report_for(session_id: B256) -> UsageReport {
    UsageReport {
        sessionId: session_id,
        tokens: U256::from(REPORTED_TOKENS),
        ttftMs: U256::from(20),
        durationMs: U256::from(REPORTED_TOKENS * 10),
        passed: true,
    }
}

/// What the pairs of one run came to.
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    refused: Vec<String>,
}

/// `pairs` request+report pairs, `concurrency` at a time, users taken in turn.
async fn run_pairs(
    router: &RouterClient,
    users: &Arc<Vec<Secp256k1Signer>>,
    domain: &alloy::sol_types::Eip712Domain,
    model_id: B256,
    pairs: usize,
    concurrency: usize,
) -> eyre::Result<Run> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (router, users, domain, next) = (
            router.clone(),
            Arc::clone(users),
            domain.clone(),
            Arc::clone(&next),
        );
        tasks.spawn(async move {
            let (mut latencies, mut refused) = (Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pairs {
                    break;
                }
                let user = &users[i % users.len()];
                let began = Instant::now();
                let request = Signed::sign(request_for(user.address(), model_id), &domain, user)?;
                let assignment = match router.request_compute(&request).await {
                    Ok(a) => a,
                    Err(e) => {
                        refused.push(format!("compute: {e}"));
                        continue;
                    }
                };
                let report = Signed::sign(report_for(assignment.message.sessionId), &domain, user)?;
                match router.report_usage(&report).await {
                    Ok(_) => latencies.push(began.elapsed()),
                    Err(e) => refused.push(format!("report: {e}")),
                }
            }
            Ok::<_, eyre::Report>((latencies, refused))
        });
    }
    let (mut latencies, mut refused) = (Vec::with_capacity(pairs), Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (l, r) = done??;
        latencies.extend(l);
        refused.extend(r);
    }
    latencies.sort();
    Ok(Run {
        latencies,
        elapsed: started.elapsed(),
        refused,
    })
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args = parse_args()?;
    let bins: PathBuf = workspace_binaries(
        // The example runs from target/<profile>/examples; the binaries are built one up.
        &std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| eyre::eyre!("the example has no profile directory"))?
            .join("load"),
        &["morpheus-router"],
    );
    let devnet = Devnet::start().await?;
    let model_id = devnet.register_tiny_model(PROVIDER, "tiny").await?;
    let worker = TestWorker::with(devnet.worker_options(PROVIDER, model_id)).await;
    // Capacity for every pair in flight.
    devnet
        .provide(
            PROVIDER,
            &worker.url,
            model_id,
            U256::from(50_000_000_000u64),
            u64::try_from(args.concurrency)? * 4,
        )
        .await?;
    eprintln!("load: staking {} users", args.users);
    let users = Arc::new(stake_users(&devnet, args.users).await?);
    let domain = devnet.deployment().domain();
    let dir = tempfile::tempdir()?;
    let bin = args
        .router_bin
        .clone()
        .unwrap_or_else(|| bins.join("morpheus-router"));

    if args.prefill > 0 {
        // A first start creates the schema; the sessions go in while the router is stopped.
        RouterProcess::start(
            &bin,
            &devnet,
            dir.path(),
            args.liveness_ttl,
            args.postgres.as_deref(),
        )
        .await?
        .stop()
        .await?;
        eprintln!("load: storing {} sessions", args.prefill);
        let today = devnet.now().await? / 86_400;
        let addresses: Vec<Address> = users.iter().map(|u| u.address()).collect();
        let path = dir.path().join("router.db");
        let (n, postgres, backlog) = (args.prefill, args.postgres.clone(), args.backlog);
        tokio::task::spawn_blocking(move || match postgres {
            Some(url) => prefill_postgres(&url, n, today, backlog),
            None => prefill(&path, n, &addresses, today, backlog),
        })
        .await??;
    }
    let process = RouterProcess::start(
        &bin,
        &devnet,
        dir.path(),
        args.liveness_ttl,
        args.postgres.as_deref(),
    )
    .await?;
    let router = RouterClient::new(&process.url)?;
    // The users sign as a client library would at its fastest (libsecp256k1; the same
    // signatures as k256's), so that the load generator leaves the shared cores to the router.
    let signers: Arc<Vec<Secp256k1Signer>> =
        Arc::new(users.iter().map(|u| u.to_secp256k1()).collect());

    // Warm-up: connections, the chain view, the provider's first checks; not counted.
    let warm = run_pairs(&router, &signers, &domain, model_id, 200, args.concurrency).await?;
    ensure!(
        warm.refused.is_empty(),
        "warm-up refused: {:?}",
        &warm.refused[..warm.refused.len().min(3)]
    );
    let cpu_before = cpu_seconds(process.pid()?)?;
    let metrics_before = router_metrics(&process.url).await?;
    let run = run_pairs(
        &router,
        &signers,
        &domain,
        model_id,
        args.pairs,
        args.concurrency,
    )
    .await?;
    let cpu = cpu_seconds(process.pid()?)? - cpu_before;
    let metrics = router_metrics(&process.url).await?;
    let spent = |name: &str| {
        metrics.get(name).copied().unwrap_or(0.0) - metrics_before.get(name).copied().unwrap_or(0.0)
    };
    process.stop().await?;
    worker.stop().await;

    let crypto = crypto_per_pair(2000, &domain, &users[0], &devnet.router_signer(), model_id)?;
    let done = run.latencies.len();
    ensure!(done > 0, "no pair completed: {:?}", run.refused.first());
    let per_pair = Duration::from_secs_f64(cpu / done as f64);
    println!(
        "router load: {} pairs at concurrency {}, {} users, {} stored sessions before{}, \
         liveness proof standing {} s ({}; loopback; processes: router, load generator + worker, \
         anvil{})",
        args.pairs,
        args.concurrency,
        args.users,
        args.prefill,
        if args.backlog {
            " (a backlog: expired, days not computed)"
        } else {
            ""
        },
        args.liveness_ttl,
        if args.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if args.postgres.is_some() {
            ", PostgreSQL"
        } else {
            ""
        },
    );
    println!(
        "  pairs/s               {:10.0}   (target >= 5000)",
        done as f64 / run.elapsed.as_secs_f64()
    );
    println!(
        "  pair latency          p50 {:7.2} ms  p99 {:7.2} ms   (target p99 <= 20 ms)",
        ms(percentile(&run.latencies, 0.5)),
        ms(percentile(&run.latencies, 0.99))
    );
    println!(
        "  router CPU per pair   {:10.1} us",
        per_pair.as_secs_f64() * 1e6
    );
    println!(
        "  bare crypto per pair  {:10.1} us   (2 recoveries + 1 signature, one thread)",
        crypto.as_secs_f64() * 1e6
    );
    println!(
        "  router CPU / crypto   {:10.1}x   (target <= 3x)",
        per_pair.as_secs_f64() / crypto.as_secs_f64()
    );
    let pairs = done as f64;
    println!(
        "  per pair, the router's own /metrics: {:.1} database calls taking {:.0} us, {:.2} chain \
         calls taking {:.0} us (waits included)",
        spent("morpheus_router_db_calls_total") / pairs,
        spent("morpheus_router_db_seconds_total") / pairs * 1e6,
        spent("morpheus_router_chain_calls_total") / pairs,
        spent("morpheus_router_chain_seconds_total") / pairs * 1e6,
    );
    println!(
        "  per pair, calls to the provider: {:.2} liveness challenges, {:.2} receipt requests          ({:.1} sessions each)",
        spent("morpheus_router_liveness_calls_total") / pairs,
        spent("morpheus_router_receipts_calls_total") / pairs,
        pairs / spent("morpheus_router_receipts_calls_total").max(1.0),
    );
    if !run.refused.is_empty() {
        println!(
            "  refused               {:10}   first: {}",
            run.refused.len(),
            run.refused[0]
        );
    }
    Ok(())
}
