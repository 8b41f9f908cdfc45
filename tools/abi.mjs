#!/usr/bin/env node
// Keeps sdk/abi/ in step with the forge artifacts the SDK binds and deploys.
//
//   node tools/abi.mjs sync    rewrite sdk/abi/<Contract>.json from out/
//   node tools/abi.mjs check   exit 1, naming each file, when sdk/abi/ differs from out/
//
// Each file holds the contract's ABI and creation bytecode: the SDK's `sol!` bindings read the
// ABI, and its testing module deploys from the bytecode, so integrators need no Solidity tools.
// bytecode_hash = "none" in foundry.toml keeps the bytecode independent of file paths.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONTRACTS = {
  ComputePool: 'ComputePool.sol',
  FixedAggregator: 'FixedAggregator.sol',
  FixedPriceSource: 'FixedPriceSource.sol',
  ProviderRegistry: 'ProviderRegistry.sol',
  SessionRouter: 'SessionRouter.sol',
  TestMOR: 'TestMOR.sol',
};

function wanted(name, file) {
  const artifact = path.join(root, 'out', file, `${name}.json`);
  if (!fs.existsSync(artifact)) {
    console.error(`abi: ${path.relative(root, artifact)} is missing: run 'forge build' first`);
    process.exit(2);
  }
  const { abi, bytecode } = JSON.parse(fs.readFileSync(artifact, 'utf8'));
  return `${JSON.stringify({ abi, bytecode: bytecode.object }, null, 2)}\n`;
}

const mode = process.argv[2];
if (mode !== 'sync' && mode !== 'check') {
  console.error('usage: node tools/abi.mjs sync|check');
  process.exit(2);
}
const dir = path.join(root, 'sdk', 'abi');
fs.mkdirSync(dir, { recursive: true });
let drift = 0;
for (const [name, file] of Object.entries(CONTRACTS)) {
  const target = path.join(dir, `${name}.json`);
  const text = wanted(name, file);
  const current = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : null;
  if (current === text) continue;
  if (mode === 'sync') {
    fs.writeFileSync(target, text);
    console.log(`abi: wrote sdk/abi/${name}.json`);
  } else {
    console.error(`abi: sdk/abi/${name}.json differs from out/${file}/${name}.json: run 'make abi'`);
    drift++;
  }
}
process.exit(drift ? 1 : 0);
