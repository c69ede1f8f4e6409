#!/usr/bin/env node
// Native-solc command line on top of solc-js (WebAssembly), so brownie (py-solc-x) and slither can
// compile offline: no native solc binary can be downloaded on our machines.
// Speaks: --version, --standard-json (stdin), and --combined-json for slither's plain-solc mode.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);

function nativeVersion() {
  // solc-js reports e.g. "0.8.26+commit.8a97fa7a.Emscripten.clang"; py-solc-x parses the native form.
  return solc.version().replace(/\.Emscripten\.clang$/, '.Linux.g++');
}

function optionValues(name) {
  const values = [];
  args.forEach((arg, i) => {
    if (arg === name && i + 1 < args.length) values.push(args[i + 1]);
    else if (arg.startsWith(name + '=')) values.push(arg.slice(name.length + 1));
  });
  return values;
}

const basePath = optionValues('--base-path')[0] || process.cwd();
const searchRoots = [basePath, ...optionValues('--include-path'), ...optionValues('--allow-paths')
  .flatMap((p) => p.split(','))].filter(Boolean);

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath)
    ? [importPath]
    : searchRoots.map((root) => path.resolve(root, importPath));
  for (const candidate of candidates) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) {
      return { contents: fs.readFileSync(candidate, 'utf8') };
    }
  }
  return { error: `File not found: ${importPath} (searched ${searchRoots.join(', ')})` };
}

function compileStandard(input) {
  return solc.compile(typeof input === 'string' ? input : JSON.stringify(input), { import: findImports });
}

function write(text) {
  // process.exit() right after a large write truncates stdout at 64-128 KiB; let node drain it.
  process.stdout.write(text);
}

function combinedJson() {
  const selection = optionValues('--combined-json')[0].split(',');
  const valueOptions = new Set(['--combined-json', '--base-path', '--include-path', '--allow-paths',
    '--evm-version', '--optimize-runs', '--output-dir']);
  const remappings = [];
  const files = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (valueOptions.has(arg)) { i++; continue; }
    if (arg.startsWith('--')) continue;
    if (arg.includes('=')) remappings.push(arg); else files.push(arg);
  }
  const sources = {};
  for (const file of files) sources[file] = { content: fs.readFileSync(file, 'utf8') };
  const runs = optionValues('--optimize-runs')[0];
  const settings = {
    remappings,
    optimizer: { enabled: args.includes('--optimize'), runs: runs ? Number(runs) : 200 },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode', 'evm.deployedBytecode', 'evm.methodIdentifiers',
      'userdoc', 'devdoc'], '': ['ast'] } },
  };
  const evmVersion = optionValues('--evm-version')[0];
  if (evmVersion) settings.evmVersion = evmVersion;
  const output = JSON.parse(compileStandard({ language: 'Solidity', sources, settings }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  (output.errors || []).forEach((e) => process.stderr.write(e.formattedMessage || e.message));
  if (errors.length) { process.exitCode = 1; return; }
  const contracts = {};
  for (const [file, byName] of Object.entries(output.contracts || {})) {
    for (const [name, c] of Object.entries(byName)) {
      const entry = {};
      if (selection.includes('abi')) entry.abi = c.abi;
      if (selection.includes('bin')) entry.bin = c.evm.bytecode.object;
      if (selection.includes('bin-runtime')) entry['bin-runtime'] = c.evm.deployedBytecode.object;
      if (selection.includes('srcmap')) entry.srcmap = c.evm.bytecode.sourceMap;
      if (selection.includes('srcmap-runtime')) entry['srcmap-runtime'] = c.evm.deployedBytecode.sourceMap;
      if (selection.includes('hashes')) entry.hashes = c.evm.methodIdentifiers;
      if (selection.includes('userdoc')) entry.userdoc = c.userdoc;
      if (selection.includes('devdoc')) entry.devdoc = c.devdoc;
      contracts[`${file}:${name}`] = entry;
    }
  }
  const sourceList = Object.keys(output.sources || {});
  const sourcesOut = {};
  for (const file of sourceList) sourcesOut[file] = { AST: output.sources[file].ast, id: output.sources[file].id };
  write(JSON.stringify({ contracts, sourceList, sources: sourcesOut, version: nativeVersion() }));
}

if (args.includes('--version')) {
  write(`solc, the solidity compiler commandline interface\nVersion: ${nativeVersion()}\n`);
} else if (args.includes('--standard-json')) {
  write(compileStandard(fs.readFileSync(0, 'utf8')));
} else if (optionValues('--combined-json').length) {
  combinedJson();
} else {
  process.stderr.write('solc-native.js supports --version, --standard-json and --combined-json only\n');
  process.exitCode = 2;
}
