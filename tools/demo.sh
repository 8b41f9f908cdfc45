#!/usr/bin/env bash
# `make demo`: the real flow on a local chain, as far as the system exists.
#   1. anvil (from node_modules) and the contracts deployed by script/Deploy.s.sol
#   2. the protocol through the SDK: provider registers, claims a model and bids; a user stakes;
#      the router's voucher is claimed on-chain
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=node_modules/.bin
PORT=${DEMO_PORT:-8545}
RPC=http://127.0.0.1:$PORT
# anvil's account 0: deploys and owns the local contracts.
DEPLOYER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
LOG_DIR=.devnet
mkdir -p "$LOG_DIR" deployments

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

if "$BIN/cast" chain-id --rpc-url "$RPC" >/dev/null 2>&1; then
  echo "demo: something already answers on $RPC; stop it or set DEMO_PORT" >&2
  exit 1
fi

say "local chain: anvil on $RPC (log: $LOG_DIR/anvil.log)"
"$BIN/anvil" --port "$PORT" >"$LOG_DIR/anvil.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do "$BIN/cast" chain-id --rpc-url "$RPC" >/dev/null 2>&1 && break; sleep 0.2; done

say "contracts: forge script script/Deploy.s.sol"
"$BIN/forge" script script/Deploy.s.sol --rpc-url "$RPC" --broadcast --private-key "$DEPLOYER_KEY" \
  >"$LOG_DIR/deploy.log" 2>&1 || { cat "$LOG_DIR/deploy.log"; exit 1; }
cat deployments/31337.json

# The pool's budget is 1% of its balance at the start of a UTC day; it was funded just now, so
# move the chain to the next day, as the protocol would live it.
"$BIN/cast" rpc --rpc-url "$RPC" evm_increaseTime 86400 >/dev/null
"$BIN/cast" rpc --rpc-url "$RPC" evm_mine >/dev/null

say "protocol through morpheus-sdk: register, claim model, bid, stake, voucher, on-chain claim"
cargo run -q -p morpheus-sdk --example quickstart -- "$RPC" deployments/31337.json

say "done"
