// Tests of tools/solc, the WebAssembly-backed compiler forge runs: through forge itself, on a
// throw-away project that uses this repository's foundry.toml settings and node_modules.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const solc = path.join(root, 'tools', 'solc');
const forge = path.join(root, 'node_modules', '.bin', 'forge');

function project(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solc-wrapper-'));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'foundry.toml'), [
    '[profile.default]',
    'src = "src"', 'test = "test"', 'libs = ["node_modules"]',
    `solc = "${solc}"`, 'offline = true', 'auto_detect_solc = false',
    'remappings = [',
    '  "forge-std/=node_modules/@layerzerolabs/toolbox-foundry/lib/forge-std/",',
    '  "@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/",',
    ']', ''].join('\n'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('--version prints the native form forge parses', () => {
  const r = run(solc, ['--version']);
  assert.equal(r.code, 0);
  assert.match(r.out.trim().split('\n').pop(), /^Version: 0\.8\.\d+\+commit\.[0-9a-f]{8}$/);
});

test('unsupported flags are refused with their name', () => {
  const r = run(solc, ['--bin', 'x.sol']);
  assert.equal(r.code, 2);
  assert.match(r.out, /unsupported argument '--bin'/);
});

test('invalid standard JSON comes back as a JSON error, not a crash', () => {
  const r = run(solc, ['--standard-json'], { input: '{not json' });
  assert.equal(r.code, 0);
  const out = JSON.parse(r.out);
  assert.equal(out.errors[0].severity, 'error');
  assert.match(out.errors[0].message, /not valid JSON/);
});

test('imports forge did not inline resolve through remappings and include paths', () => {
  const dir = project({ 'lib/dep/B.sol': 'pragma solidity ^0.8.0; contract B { uint256 public x = 7; }\n' });
  const input = {
    language: 'Solidity',
    sources: { 'A.sol': { content: 'pragma solidity ^0.8.0; import "dep/B.sol"; contract A is B {}' } },
    settings: { remappings: ['dep/=lib/dep/'], outputSelection: { '*': { '*': ['abi'] } } },
  };
  const r = run(solc, ['--standard-json', '--base-path', dir], { input: JSON.stringify(input) });
  const out = JSON.parse(r.out);
  assert.deepEqual((out.errors || []).filter((e) => e.severity === 'error'), []);
  assert.ok(out.contracts['A.sol'].A);
});

test('forge builds a contract importing OpenZeppelin and a test importing forge-std', () => {
  const dir = project({
    'src/Owned.sol': 'pragma solidity ^0.8.24;\nimport {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";\n' +
      'contract Owned is Ownable { constructor() Ownable(msg.sender) {} }\n',
    'test/Owned.t.sol': 'pragma solidity ^0.8.24;\nimport {Test} from "forge-std/Test.sol";\nimport {Owned} from "../src/Owned.sol";\n' +
      'contract OwnedTest is Test { function test_Owner() public { assertEq(new Owned().owner(), address(this)); } }\n',
  });
  const r = run(forge, ['test'], { cwd: dir });
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /\[PASS\] test_Owner\(\)/);
});

test('a compile error reaches forge with its file and line', () => {
  const dir = project({ 'src/Broken.sol': 'pragma solidity ^0.8.24;\n\ncontract Broken {\n    uint256 x = ;\n}\n' });
  const r = run(forge, ['build'], { cwd: dir });
  assert.notEqual(r.code, 0);
  assert.match(r.out, /src\/Broken\.sol:4:/);
});
