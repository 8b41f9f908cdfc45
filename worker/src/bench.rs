//! `morpheus-worker bench`: prompt and decode throughput of the engine, time to first token, and
//! the same figures from llama.cpp (`bench/llama_cpp_bench.py`, same GGUF, same prompt, same
//! thread count) measured in the same run, with the memory-bandwidth bound of decoding.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::{
    Error, Result,
    engine::{Engine, EngineConfig, Event, GenerateRequest, Sampling, constrain},
    kernels::Activations,
    metrics::Metrics,
    model::{ModelDir, converter, prepare},
    runtime::{self, Device},
};

/// Benchmark options (the binary's `bench` flags).
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Prepared model directory.
    pub model: PathBuf,
    /// The GGUF it was prepared from, for llama.cpp (`smollm2` or a path); `None` skips llama.cpp.
    pub gguf: Option<String>,
    /// Threads for both engines.
    pub threads: usize,
    /// Prompt length for the prompt-throughput test.
    pub prompt_tokens: usize,
    /// Prompt length of each stream in the decode tests.
    pub stream_prompt_tokens: usize,
    /// Tokens generated per stream.
    pub gen_tokens: u32,
    /// Concurrent stream counts to test.
    pub streams: Vec<usize>,
    /// ONNX Runtime shared library (default: `ORT_DYLIB_PATH`, else found in `.venv`).
    pub ort_lib: Option<PathBuf>,
    /// Rounds of each measurement; the best is reported (for both engines).
    pub repeats: usize,
    /// Python interpreter for the llama.cpp side.
    pub python: Option<PathBuf>,
    /// Python interpreter whose `llama_cpp` package runs the llama.cpp side (default: `python`).
    pub llama_python: Option<PathBuf>,
    /// Directory holding `llama_cpp_bench.py` (default: `$MORPHEUS_PYTHON_DIR`, else the copy
    /// embedded in the binary).
    pub python_dir: Option<PathBuf>,
    /// Write the results here as JSON too.
    pub json: Option<PathBuf>,
    /// Activation modes of the worker's kernels to measure (each against the same llama.cpp run).
    pub activations: Vec<Activations>,
}

const TEXT: &str = "The history of the city begins with a small settlement on the river, where traders \
    met to exchange salt, grain and cloth. Over the centuries the settlement grew into a market town, \
    then a fortified city with walls, bridges and a cathedral whose bells could be heard for miles. ";

/// Runs the benchmark and prints a table.
pub fn run(args: &BenchOptions) -> Result<()> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let lib = match &args.ort_lib {
        Some(p) => p.clone(),
        None => runtime::ort_library(&cwd)?,
    };
    let env = runtime::environment(&lib)?;
    let model = ModelDir::open(&args.model)?;
    let max_streams = args.streams.iter().copied().max().unwrap_or(1);
    let mut prompt = Vec::new();
    let mut ours = serde_json::Map::new();
    let mut memory = Value::Null;
    for &activations in &args.activations {
        let cfg = EngineConfig {
            max_batch: max_streams,
            // Room for the prefix-cache test's 1,000-token prefix and its questions.
            max_context: (args.prompt_tokens + args.gen_tokens as usize + 8)
                .max(PREFIX_TOKENS + 128),
            threads: args.threads,
            device: Device::Cpu,
            // The shared-prompt test sends SHARED_REQUESTS at once, whatever the streams asked.
            max_queue: max_streams.max(SHARED_REQUESTS) * 2,
            activations,
            ..Default::default()
        };
        let engine = Engine::start(&env, &model, &cfg, Arc::new(Metrics::new()))?;
        if prompt.is_empty() {
            let mut text = String::new();
            while model.encode(&text)?.len() < args.prompt_tokens {
                text.push_str(TEXT);
            }
            prompt = model.encode(&text)?;
            prompt.truncate(args.prompt_tokens);
        }
        info!(target: "worker::bench", activations = activations.as_str(), "measuring the engine");
        ours.insert(
            activations.as_str().into(),
            measure(&engine, &model, &prompt, args)?,
        );
        if memory.is_null() {
            // The first engine, alive after serving every test: nothing else has run in this
            // process yet.
            memory = resident_memory(&model, &cfg)?;
        }
        engine.shutdown();
    }
    info!(target: "worker::bench", "measuring batched prefill");
    let batched = batched_prefill(&env, &model, &prompt, args, max_streams)?;
    info!(target: "worker::bench", "measuring memory read bandwidth");
    let bandwidth = read_bandwidth(args.threads);
    let llama = match &args.gguf {
        Some(g) => llama_cpp(args, g, &prompt, &cwd)?,
        None => Value::Null,
    };
    let bytes = token_bytes(args, &model, &cwd)?;
    let report = json!({
        "threads": args.threads,
        "kernel_isa": format!("{:?}", crate::kernels::Isa::select()),
        "read_bandwidth_gb_s": bandwidth / 1e9,
        "token_bytes": bytes,
        "decode_bound_tps": bandwidth / bytes,
        "morpheus": ours,
        "batched_prefill": batched,
        "memory": memory,
        "llama_cpp": llama,
    });
    print_table(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn measure(
    engine: &Engine,
    model: &ModelDir,
    prompt: &[u32],
    args: &BenchOptions,
) -> Result<Value> {
    let greedy = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    let request = |p: &[u32], n: u32| GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::new(p.to_vec(), n, greedy)
    };
    // Warm-up, then the prompt test (one token out: the time is the prompt's).
    wait(engine.submit(request(&prompt[..16.min(prompt.len())], 2))?)?;
    let mut best_pp: f64 = 0.0;
    for round in 0..args.repeats {
        // A new text each round: the same prompt again would come from the prefix cache.
        let mut fresh = prompt.to_vec();
        let by = (round * 5 + 1) % fresh.len().max(1);
        fresh.rotate_left(by);
        let (ttft, _) = wait(engine.submit(request(&fresh, 1))?)?;
        best_pp = best_pp.max(prompt.len() as f64 / ttft);
    }
    let short = &prompt[..args.stream_prompt_tokens.min(prompt.len())];
    let mut streams = serde_json::Map::new();
    for &s in &args.streams {
        // Best of a few rounds: the machine may be shared; both engines get the same treatment.
        let mut best = (0.0f64, f64::MAX, f64::MAX);
        for _ in 0..args.repeats {
            let start = Instant::now();
            let rxs = (0..s)
                .map(|_| engine.submit(request(short, args.gen_tokens)))
                .collect::<Result<Vec<_>>>()?;
            let results = rxs.into_iter().map(wait).collect::<Result<Vec<_>>>()?;
            let total = start.elapsed().as_secs_f64();
            let ttfts: Vec<f64> = results.iter().map(|r| r.0).collect();
            let last_first = ttfts.iter().copied().fold(0.0, f64::max);
            let tokens: u32 = results.iter().map(|r| r.1.saturating_sub(1)).sum();
            best.0 = best.0.max(f64::from(tokens) / (total - last_first));
            best.1 = best.1.min(ttfts.iter().sum::<f64>() / s as f64);
            best.2 = best.2.min(ttfts.iter().copied().fold(f64::MAX, f64::min));
        }
        streams.insert(
            s.to_string(),
            json!({ "decode_tps": best.0, "ttft_ms_mean": best.1 * 1000.0, "ttft_ms_first": best.2 * 1000.0 }),
        );
    }
    let constrained = constrained(engine, model, args)?;
    let prefix = prefix_cache(engine, model, args)?;
    Ok(
        json!({ "engine": "morpheus-worker (onnxruntime)", "prompt_tokens": prompt.len(), "prompt_tps": best_pp, "streams": streams, "constrained": constrained, "prefix_cache": prefix }),
    )
}

/// Mean TTFT of `streams` new requests submitted at once (distinct prompts of 8 tokens and of
/// the decode tests' length, one token out), prefilled together against one at a time; best of
/// `repeats` rounds, without the prefix cache (so no round reuses another's prompts).
fn batched_prefill(
    env: &Arc<ort::environment::Environment>,
    model: &ModelDir,
    prompt: &[u32],
    args: &BenchOptions,
    streams: usize,
) -> Result<Value> {
    let greedy = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    let mut out = Vec::new();
    for len in [8, args.stream_prompt_tokens] {
        // Each request: the first `len` tokens of `prompt`, rotated.
        let len = len.min(prompt.len());
        let mut ttft = [f64::MAX; 2];
        for (i, batched) in [true, false].into_iter().enumerate() {
            let cfg = EngineConfig {
                max_batch: streams,
                max_context: len + 8,
                threads: args.threads,
                device: Device::Cpu,
                max_queue: streams * 2,
                prefix_cache: false,
                batch_prefill: batched,
                ..Default::default()
            };
            let engine = Engine::start(env, model, &cfg, Arc::new(Metrics::new()))?;
            wait(engine.submit(GenerateRequest::new(prompt[..len].to_vec(), 1, greedy))?)?;
            for _ in 0..args.repeats.max(1) {
                let rxs = (0..streams)
                    .map(|s| {
                        let mut p = prompt[..len].to_vec();
                        p.rotate_left((s * 3) % len.max(1));
                        engine.submit(GenerateRequest {
                            ignore_eos: true,
                            ..GenerateRequest::new(p, 1, greedy)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let results = rxs.into_iter().map(wait).collect::<Result<Vec<_>>>()?;
                let mean = results.iter().map(|r| r.0).sum::<f64>() / streams as f64;
                ttft[i] = ttft[i].min(mean);
            }
            engine.shutdown();
        }
        out.push(
            json!({ "streams": streams, "prompt_tokens": len, "batched_ttft_ms": ttft[0] * 1000.0,
                         "alone_ttft_ms": ttft[1] * 1000.0, "ratio": ttft[0] / ttft[1] }),
        );
    }
    Ok(Value::Array(out))
}

/// Length of the shared prefix in the prefix-cache test.
const PREFIX_TOKENS: usize = 1000;

/// Requests sent at once on one system prompt in the prefix-cache test.
const SHARED_REQUESTS: usize = 4;

/// TTFT of a follow-up sharing a [`PREFIX_TOKENS`]-token prefix with the request before it,
/// against the first request on that prefix (cold: each round's prefixes are the text rotated, so
/// they share nothing with the rounds before); and the mean TTFT of [`SHARED_REQUESTS`] requests
/// sent at once on one such prefix (later ones copy it from the first while it runs) against as
/// many on prefixes of their own. Best of `repeats` rounds each.
fn prefix_cache(engine: &Engine, model: &ModelDir, args: &BenchOptions) -> Result<Value> {
    let greedy = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    let mut text = String::new();
    while model.encode(&text)?.len() < PREFIX_TOKENS {
        text.push_str(TEXT);
    }
    let mut base = model.encode(&text)?;
    base.truncate(PREFIX_TOKENS);
    let question = |n: usize| model.encode(&format!(" Question {n}: what happened next?"));
    // The text rotated by `by`: rotations a few tokens apart share no prefix.
    let rotated = |by: usize| {
        let mut p = base.clone();
        p.rotate_left(by);
        p
    };
    let request = |prompt: Vec<u32>| GenerateRequest {
        ignore_eos: true,
        ..GenerateRequest::new(prompt, 4, greedy)
    };
    // Mean TTFT of `prompts` submitted at once.
    let at_once = |prompts: Vec<Vec<u32>>| -> Result<f64> {
        let n = prompts.len() as f64;
        let rxs = prompts
            .into_iter()
            .map(|p| engine.submit(request(p)))
            .collect::<Result<Vec<_>>>()?;
        let ttfts = rxs.into_iter().map(wait).collect::<Result<Vec<_>>>()?;
        Ok(ttfts.iter().map(|t| t.0).sum::<f64>() / n)
    };
    let (mut cold, mut warm) = (f64::MAX, f64::MAX);
    let (mut shared, mut apart) = (f64::MAX, f64::MAX);
    for round in 0..args.repeats.max(1) {
        // Each round's rotations: 7 apart, so no two rounds' meet.
        let at = round * 7;
        let prefix = rotated(at + 1);
        let ask = |q: Vec<u32>| -> Result<f64> {
            let prompt = [prefix.as_slice(), &q].concat();
            Ok(wait(engine.submit(request(prompt))?)?.0)
        };
        cold = cold.min(ask(question(1)?)?);
        warm = warm.min(ask(question(2)?)?);
        let one = rotated(at + 2);
        shared = shared.min(at_once(
            (0..SHARED_REQUESTS)
                .map(|i| Ok([one.as_slice(), &question(10 + i)?].concat()))
                .collect::<Result<_>>()?,
        )?);
        apart = apart.min(at_once(
            (0..SHARED_REQUESTS)
                .map(|i| Ok([rotated(at + 3 + i).as_slice(), &question(10 + i)?].concat()))
                .collect::<Result<_>>()?,
        )?);
    }
    Ok(json!({
        "prefix_tokens": PREFIX_TOKENS, "cold_ttft_ms": cold * 1000.0, "warm_ttft_ms": warm * 1000.0,
        "ratio": warm / cold, "shared_requests": SHARED_REQUESTS,
        "shared_ttft_ms_mean": shared * 1000.0, "apart_ttft_ms_mean": apart * 1000.0,
        "shared_ratio": shared / apart,
    }))
}

/// The constrained-decoding test: a request and its schema. A long string (the one-token check
/// passes nearly always), and records (keys, numbers and strings in turn: the mask is needed
/// more often).
fn bench_schemas() -> [(&'static str, &'static str, Value); 2] {
    [
        (
            "string",
            "Tell the history of a city on a river, in JSON with the key \"history\".",
            json!({"type": "object", "properties": {"history": {"type": "string"}},
                   "required": ["history"]}),
        ),
        (
            "records",
            "List ten events of a city's history as JSON records: year, event, and whether the city had walls then.",
            json!({"type": "array", "minItems": 3, "items": {"type": "object", "properties": {
                "year": {"type": "integer"}, "event": {"type": "string"}, "walled": {"type": "boolean"}
            }, "required": ["year", "event", "walled"]}}),
        ),
    ]
}

/// Tokens generated in the constrained-decoding test (at most; an answer may end before).
const CONSTRAINED_TOKENS: u32 = 192;

/// One stream's decode speed held to a JSON schema against the same prompt free, for as many
/// tokens as the constrained answer took (the best of `repeats` rounds each).
fn constrained(engine: &Engine, model: &ModelDir, args: &BenchOptions) -> Result<Value> {
    let greedy = Sampling {
        temperature: 0.0,
        top_p: 1.0,
        seed: 0,
    };
    let timed = |request: GenerateRequest| -> Result<(f64, u32)> {
        let start = Instant::now();
        let (ttft, tokens) = wait(engine.submit(request)?)?;
        let decode = start.elapsed().as_secs_f64() - ttft;
        Ok((
            f64::from(tokens.saturating_sub(1)) / decode.max(1e-9),
            tokens,
        ))
    };
    let mut out = serde_json::Map::new();
    for (name, ask, schema) in bench_schemas() {
        let text = model.chat.render(&[
            morpheus_sdk::openai::ChatMessage::system("You are a helpful assistant."),
            morpheus_sdk::openai::ChatMessage::user(ask),
        ])?;
        let prompt = model.encode(&text)?;
        let grammar = Arc::new(
            constrain::compile(&schema).map_err(|e| Error::InvalidRequest(e.to_string()))?,
        );
        let (mut with, mut free, mut tokens) = (0.0f64, 0.0f64, 0);
        let before = engine.metrics().constrained_counts();
        for _ in 0..args.repeats {
            let (tps, n) = timed(GenerateRequest {
                grammar: Some(grammar.clone()),
                ..GenerateRequest::new(prompt.clone(), CONSTRAINED_TOKENS, greedy)
            })?;
            with = with.max(tps);
            tokens = n;
            let (tps, _) = timed(GenerateRequest {
                ignore_eos: true,
                ..GenerateRequest::new(prompt.clone(), n.max(2), greedy)
            })?;
            free = free.max(tps);
        }
        let after = engine.metrics().constrained_counts();
        let masked = (after.1 - before.1) as f64 / ((after.0 - before.0) as f64).max(1.0);
        out.insert(
            name.into(),
            json!({ "tokens": tokens, "constrained_tps": with, "free_tps": free, "ratio": with / free.max(1e-9), "masked_share": masked }),
        );
    }
    Ok(Value::Object(out))
}

/// Waits for a generation; returns (seconds to first token, tokens generated).
fn wait(mut rx: tokio::sync::mpsc::UnboundedReceiver<Event>) -> Result<(f64, u32)> {
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            Event::Text { .. } => {}
            Event::Done(c) => return Ok((c.ttft.as_secs_f64(), c.completion_tokens)),
            Event::Failed(m) => return Err(Error::Engine(m)),
        }
    }
    Err(Error::EngineStopped)
}

fn llama_cpp(args: &BenchOptions, gguf: &str, prompt: &[u32], cwd: &Path) -> Result<Value> {
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| prepare::default_python(cwd));
    let gguf_path = if Path::new(gguf).is_file() {
        gguf.to_string()
    } else {
        let out = Command::new(&python)
            .env(
                "PYTHONPATH",
                converter::python_dir(args.python_dir.as_deref())?,
            )
            .args(["-m", "morpheus_model", "locate", gguf])
            .output()
            .map_err(|e| Error::Prepare(format!("cannot run {}: {e}", python.display())))?;
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ids =
        std::env::temp_dir().join(format!("morpheus-bench-prompt-{}.json", std::process::id()));
    std::fs::write(&ids, serde_json::to_string(prompt)?).map_err(|e| Error::io(&ids, e))?;
    let script = converter::llama_bench_script(args.python_dir.as_deref())?;
    info!(target: "worker::bench", gguf = %gguf_path, "measuring llama.cpp");
    let streams: Vec<String> = args.streams.iter().map(ToString::to_string).collect();
    let llama_python = args.llama_python.as_ref().unwrap_or(&python);
    let out = Command::new(llama_python)
        .arg(&script)
        .args(["--gguf", &gguf_path, "--threads", &args.threads.to_string()])
        .arg("--prompt-ids")
        .arg(&ids)
        .args([
            "--stream-prompt-tokens",
            &args.stream_prompt_tokens.to_string(),
        ])
        .args([
            "--gen",
            &args.gen_tokens.to_string(),
            "--streams",
            &streams.join(","),
        ])
        .output()
        .map_err(|e| Error::Prepare(format!("cannot run {}: {e}", llama_python.display())))?;
    let _ = std::fs::remove_file(&ids);
    if !out.status.success() {
        warn!(target: "worker::bench", stderr = %String::from_utf8_lossy(&out.stderr), "llama.cpp benchmark failed");
        return Ok(Value::Null);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("null");
    Ok(serde_json::from_str(line)?)
}

/// Bytes of weights one decoded token reads, as the GGUF stores them (`python -m morpheus_model
/// token-bytes`): one stream can decode at most the read bandwidth over it, tokens per second.
fn token_bytes(args: &BenchOptions, model: &ModelDir, cwd: &Path) -> Result<f64> {
    let python = args
        .python
        .clone()
        .unwrap_or_else(|| prepare::default_python(cwd));
    let gguf = model.weights_path();
    let out = Command::new(&python)
        .env(
            "PYTHONPATH",
            converter::python_dir(args.python_dir.as_deref())?,
        )
        .args(["-m", "morpheus_model", "token-bytes"])
        .arg(&gguf)
        .output()
        .map_err(|e| Error::Prepare(format!("cannot run {}: {e}", python.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<f64>() {
        Ok(bytes) if out.status.success() && bytes > 0.0 => Ok(bytes),
        _ => Err(Error::Prepare(format!(
            "cannot count the bytes a token reads in {}: {}",
            gguf.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// Bytes per second read by `threads` threads summing a buffer far larger than the caches.
fn read_bandwidth(threads: usize) -> f64 {
    let len: usize = 256 << 20; // u64s: 2 GiB
    let buf: Vec<u64> = (0..len as u64).collect();
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let chunk = len.div_ceil(threads.max(1));
        let sum: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().fold(0u64, |a, &x| a.wrapping_add(x))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(sum);
        best = best.max((len * 8) as f64 / start.elapsed().as_secs_f64());
    }
    best
}

/// The process's resident memory now and at its peak (`/proc/self/status`), against what the
/// model needs: its GGUF's size plus its KV cache at the engine's batch and context (f32 keys and
/// values of every layer; allocated whole, backed as far as sequences reach).
fn resident_memory(model: &ModelDir, cfg: &EngineConfig) -> Result<Value> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::io("/proc/self/status", e))?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    let gguf = std::fs::metadata(model.weights_path())
        .map_err(|e| Error::io(model.weights_path(), e))?
        .len();
    let m = &model.meta;
    let kv = (m.num_layers
        * 2
        * cfg.max_batch
        * m.num_kv_heads
        * cfg.max_context.min(m.context_length)
        * m.head_dim
        * 4) as u64;
    let (rss, peak) = (kib("VmRSS:"), kib("VmHWM:"));
    // The part of the cache the tests reached, and the rest of the process with a full cache:
    // what a worker whose every slot reached the context would hold.
    let kv_resident = crate::engine::kv_resident_bytes();
    let full = rss.map(|r| (r.saturating_sub(kv_resident) + kv) as f64 / (gguf + kv) as f64);
    Ok(json!({
        "resident_bytes": rss,
        "peak_resident_bytes": peak,
        // Of the resident memory: the process's own, and the mapped files' (the graph's weights).
        "anonymous_bytes": kib("RssAnon:"),
        "file_bytes": kib("RssFile:"),
        "gguf_bytes": gguf,
        "kv_cache_bytes": kv,
        "kv_resident_bytes": kv_resident,
        "full_cache_ratio": full,
        "ratio": rss.map(|r| r as f64 / (gguf + kv) as f64),
        "peak_ratio": peak.map(|p| p as f64 / (gguf + kv) as f64),
    }))
}

fn print_table(r: &Value) {
    println!();
    println!(
        "threads {} | read bandwidth {:.1} GB/s | a token reads {:.1} MB of weights | one-stream bound {:.0} tok/s",
        r["threads"],
        r["read_bandwidth_gb_s"].as_f64().unwrap_or(0.0),
        r["token_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        r["decode_bound_tps"].as_f64().unwrap_or(0.0)
    );
    println!(
        "kernels {} | llama.cpp's CPU features: {}",
        r["kernel_isa"].as_str().unwrap_or("-"),
        r["llama_cpp"]["cpu_features"].as_str().unwrap_or("-")
    );
    if let Some(modes) = r["morpheus"].as_object() {
        for (mode, ours) in modes {
            print_mode(r, mode, ours);
        }
    }
    let m = &r["memory"];
    if let (Some(rss), Some(ratio)) = (m["resident_bytes"].as_f64(), m["ratio"].as_f64()) {
        let mb = |v: &Value| v.as_f64().unwrap_or(0.0) / 1e6;
        println!(
            "resident memory serving: {:.0} MB (peak {:.0} MB; {:.0} MB own, {:.0} MB mapped \
             files) vs GGUF {:.0} MB + KV cache {:.0} MB = {:.2}x (peak {:.2}x; target <= 1.15x)",
            rss / 1e6,
            mb(&m["peak_resident_bytes"]),
            mb(&m["anonymous_bytes"]),
            mb(&m["file_bytes"]),
            mb(&m["gguf_bytes"]),
            mb(&m["kv_cache_bytes"]),
            ratio,
            m["peak_ratio"].as_f64().unwrap_or(0.0),
        );
        println!(
            "  of it the KV cache reached so far {:.0} MB; with every slot at the full context: \
             {:.2}x",
            mb(&m["kv_resident_bytes"]),
            m["full_cache_ratio"].as_f64().unwrap_or(0.0),
        );
    }
    for b in r["batched_prefill"].as_array().into_iter().flatten() {
        let Some(ratio) = b["ratio"].as_f64() else {
            continue;
        };
        println!(
            "TTFT of {} new {}-token requests at once (mean): {} ms prefilled together vs {} ms one at a time = {:.0}%",
            b["streams"],
            b["prompt_tokens"],
            b["batched_ttft_ms"].as_f64().unwrap_or(0.0).round(),
            b["alone_ttft_ms"].as_f64().unwrap_or(0.0).round(),
            ratio * 100.0
        );
    }
}

fn print_mode(r: &Value, mode: &str, ours: &Value) {
    let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.1}"));
    let theirs = &r["llama_cpp"];
    println!();
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        format!("activations {mode}"),
        "morpheus",
        "llama.cpp",
        "ratio"
    );
    let row = |name: &str, a: &Value, b: &Value| {
        let ratio = match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
            _ => "-".into(),
        };
        println!("{name:<28} {:>12} {:>12} {ratio:>8}", f(a), f(b));
    };
    row(
        &format!("prompt tok/s ({} tokens)", ours["prompt_tokens"]),
        &ours["prompt_tps"],
        &theirs["prompt_tps"],
    );
    if let Some(streams) = ours["streams"].as_object() {
        // JSON object keys come back in text order ("1", "16", "4"): print by stream count.
        let mut streams: Vec<_> = streams.iter().collect();
        streams.sort_by_key(|(s, _)| s.parse::<usize>().unwrap_or(usize::MAX));
        for (s, v) in streams {
            row(
                &format!("decode tok/s, {s} streams"),
                &v["decode_tps"],
                &theirs["streams"][s]["decode_tps"],
            );
            row(
                &format!("TTFT ms (mean), {s} streams"),
                &v["ttft_ms_mean"],
                &theirs["streams"][s]["ttft_ms_mean"],
            );
        }
    }
    let p = &ours["prefix_cache"];
    if let Some(ratio) = p["ratio"].as_f64() {
        println!(
            "follow-up TTFT, {}-token shared prefix: {} ms vs {} ms cold = {:.0}% (target <= 20%)",
            p["prefix_tokens"],
            f(&p["warm_ttft_ms"]),
            f(&p["cold_ttft_ms"]),
            ratio * 100.0
        );
    }
    if let Some(ratio) = p["shared_ratio"].as_f64() {
        println!(
            "{} requests at once on one {}-token system prompt: mean TTFT {} ms vs {} ms on prompts of their own = {:.0}%",
            p["shared_requests"],
            p["prefix_tokens"],
            f(&p["shared_ttft_ms_mean"]),
            f(&p["apart_ttft_ms_mean"]),
            ratio * 100.0
        );
    }
    if let Some(runs) = ours["constrained"].as_object() {
        for (name, v) in runs {
            println!(
                "json_schema ({name}, {} tokens, {:.0}% masked): {} tok/s vs {} free = {:.0}% (target >= 90%)",
                v["tokens"],
                v["masked_share"].as_f64().unwrap_or(0.0) * 100.0,
                f(&v["constrained_tps"]),
                f(&v["free_tps"]),
                v["ratio"].as_f64().unwrap_or(0.0) * 100.0
            );
        }
    }
    if let (Some(one), Some(bound)) = (
        ours["streams"]["1"]["decode_tps"].as_f64(),
        r["decode_bound_tps"].as_f64(),
    ) {
        let llama = theirs["streams"]["1"]["decode_tps"]
            .as_f64()
            .map_or(String::new(), |t| {
                format!(" (llama.cpp {:.0}%)", 100.0 * t / bound)
            });
        println!(
            "one-stream decode = {:.0}% of the bandwidth bound of the bytes a token reads{llama} (target >= 50%)",
            100.0 * one / bound
        );
    }
}
