#!/usr/bin/env node
// Compiles every contracts/*.sol with the pinned solc-js (node_modules/solc) for
// EVM `paris` (the private chain is London-era Clique and rejects PUSH0), and
// writes one artifact per contract to .tools/contracts/<Name>.json:
//   { contractName, sourceName, abi, bytecode, deployedBytecode, solcVersion,
//     evmVersion, optimizer, sourceSha256 }
// The output is deterministic: the same sources and compiler give byte-identical
// files wherever the repository is checked out (sources are keyed by their path
// relative to the repository). A manifest (.tools/contracts/manifest.json)
// records the inputs; when they are unchanged the compiler is not even loaded.
// Exits non-zero with the compiler's messages on any error.
//
// Usage: node scripts/compile_contracts.js [--src DIR] [--out DIR] [--force]
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const EVM_VERSION = "paris";
const OPTIMIZER = { enabled: true, runs: 200 };
const MANIFEST = "manifest.json";

function usage(message) {
  process.stderr.write(`compile_contracts: ${message}\n`);
  process.stderr.write("usage: node scripts/compile_contracts.js [--src DIR] [--out DIR] [--force]\n");
  process.exit(2);
}

function parseArgs(argv) {
  const options = {
    src: path.join(ROOT, "contracts"),
    out: path.join(ROOT, ".tools", "contracts"),
    force: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--force") options.force = true;
    else if (arg === "--src" || arg === "--out") {
      if (i + 1 >= argv.length) usage(`${arg} needs a directory`);
      options[arg.slice(2)] = path.resolve(argv[++i]);
    } else usage(`unknown argument ${arg}`);
  }
  return options;
}

const sha256 = (text) => crypto.createHash("sha256").update(text).digest("hex");

// The key of a source in the compiler input (and so in the metadata hash at the
// end of the bytecode): relative to the repository when inside it, so the build
// does not depend on where the repository lives.
function sourceKey(file) {
  const relative = path.relative(ROOT, file);
  if (!relative.startsWith("..") && !path.isAbsolute(relative)) return relative.split(path.sep).join("/");
  return path.basename(file);
}

function readSources(srcDir) {
  if (!fs.existsSync(srcDir)) usage(`no such directory: ${srcDir}`);
  const files = fs
    .readdirSync(srcDir)
    .filter((name) => name.endsWith(".sol"))
    .sort();
  const sources = {};
  for (const name of files) {
    const file = path.join(srcDir, name);
    sources[sourceKey(file)] = { content: fs.readFileSync(file, "utf8") };
  }
  return sources;
}

function compilerInput(sources) {
  return {
    language: "Solidity",
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: OPTIMIZER,
      metadata: { bytecodeHash: "ipfs" },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
}

function installedSolcVersion() {
  const pkg = path.join(ROOT, "node_modules", "solc", "package.json");
  if (!fs.existsSync(pkg)) {
    process.stderr.write("compile_contracts: solc is not installed in node_modules; run make bootstrap\n");
    process.exit(1);
  }
  return JSON.parse(fs.readFileSync(pkg, "utf8")).version;
}

function readManifest(outDir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(outDir, MANIFEST), "utf8"));
  } catch {
    return null;
  }
}

function upToDate(manifest, inputSha256, solcPackageVersion, outDir) {
  return (
    manifest !== null &&
    manifest.inputSha256 === inputSha256 &&
    manifest.solcPackageVersion === solcPackageVersion &&
    Array.isArray(manifest.contracts) &&
    manifest.contracts.every((name) => fs.existsSync(path.join(outDir, `${name}.json`)))
  );
}

// Write through a temporary file so a reader never sees half an artifact.
function writeAtomically(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function compile(input) {
  const solc = require("solc");
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const messages = output.errors || [];
  for (const message of messages) {
    process.stderr.write(message.formattedMessage || `${message.severity}: ${message.message}\n`);
  }
  if (messages.some((message) => message.severity === "error")) {
    process.stderr.write("compile_contracts: compilation failed\n");
    process.exit(1);
  }
  return { output, solcVersion: solc.version() };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const sources = readSources(options.src);
  const input = compilerInput(sources);
  const solcPackageVersion = installedSolcVersion();
  const inputSha256 = sha256(JSON.stringify(input));
  const previous = readManifest(options.out);
  if (!options.force && upToDate(previous, inputSha256, solcPackageVersion, options.out)) {
    console.log(`compile_contracts: ${previous.contracts.length} contract(s) up to date in ${options.out}`);
    return;
  }

  const { output, solcVersion } = compile(input);
  fs.mkdirSync(options.out, { recursive: true });
  const written = [];
  for (const sourceName of Object.keys(sources)) {
    const contracts = (output.contracts && output.contracts[sourceName]) || {};
    for (const contractName of Object.keys(contracts).sort()) {
      const evm = contracts[contractName].evm;
      if (!evm.bytecode.object) continue; // interfaces and abstract contracts
      if (written.includes(contractName)) {
        process.stderr.write(`compile_contracts: two contracts are named ${contractName}\n`);
        process.exit(1);
      }
      const artifact = {
        contractName,
        sourceName,
        abi: contracts[contractName].abi,
        bytecode: `0x${evm.bytecode.object}`,
        deployedBytecode: `0x${evm.deployedBytecode.object}`,
        solcVersion,
        evmVersion: EVM_VERSION,
        optimizer: OPTIMIZER,
        sourceSha256: sha256(sources[sourceName].content),
      };
      writeAtomically(path.join(options.out, `${contractName}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
      written.push(contractName);
    }
  }
  // Artifacts of contracts that no longer exist would be loaded as if current.
  for (const stale of (previous && previous.contracts) || []) {
    if (!written.includes(stale)) fs.rmSync(path.join(options.out, `${stale}.json`), { force: true });
  }
  const manifest = { inputSha256, solcPackageVersion, solcVersion, evmVersion: EVM_VERSION, contracts: written };
  writeAtomically(path.join(options.out, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`compile_contracts: compiled ${written.join(", ") || "nothing"} (solc ${solcVersion}, evm ${EVM_VERSION}) into ${options.out}`);
}

main();
