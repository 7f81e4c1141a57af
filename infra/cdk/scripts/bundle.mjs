// Copies what the construct reads at synth time into assets/, so that the packed package works without the
// repository: the Cargo workspace (Cargo.toml, Cargo.lock, and each member's Cargo.toml and src/, so that
// `cargo build --locked` resolves the same workspace), statemachine/batch.asl.json and the two files of
// infra/events/. Run by `npm run build`, and so by `npm pack` (prepack). Fails, naming the file, when the
// workspace needs something the copy leaves out.

import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repo = resolve(pkg, '..', '..');
const out = join(pkg, 'assets');
const DATA_FILES = [
  'statemachine/batch.asl.json',
  'infra/events/batch-event.schema.json',
  'infra/events/bedrock-job-events.pattern.json',
];

function fail(message) {
  console.error(`bundle: ${message}`);
  process.exit(1);
}

function copy(rel) {
  const from = join(repo, rel);
  if (!existsSync(from)) {
    fail(`${rel} does not exist in ${repo}`);
  }
  mkdirSync(dirname(join(out, rel)), { recursive: true });
  // Editor and OS leftovers (dot files) stay behind.
  cpSync(from, join(out, rel), { recursive: true, filter: (src) => !src.slice(from.length).includes('/.') });
}

/** The [workspace] members of the root manifest: plain folder names, as this workspace has them. */
function workspaceMembers(manifest) {
  const workspace = manifest.split(/^\[/m).find((section) => section.startsWith('workspace]'));
  const list = workspace?.match(/^members\s*=\s*\[([^\]]*)\]/m);
  if (!list) {
    fail('no [workspace] members list in Cargo.toml');
  }
  const members = [...list[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  for (const m of members) {
    if (/[*?[]/.test(m)) {
      fail(`workspace member "${m}" is a glob; list the folders, or teach this script to expand it`);
    }
  }
  return members;
}

function filesUnder(dir) {
  return readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => statSync(f).isFile());
}

if (!existsSync(join(repo, 'Cargo.toml')) || !existsSync(join(repo, 'infra', 'cdk', 'package.json'))) {
  fail(`${repo} is not the batchdrop repository; the package is bundled from infra/cdk of a checkout`);
}
rmSync(out, { recursive: true, force: true });
const rootManifest = readFileSync(join(repo, 'Cargo.toml'), 'utf8');
copy('Cargo.lock');
for (const member of workspaceMembers(rootManifest)) {
  const dir = member === '.' ? '' : `${member}/`;
  copy(`${dir}Cargo.toml`);
  copy(`${dir}src`);
  if (existsSync(join(repo, dir, 'build.rs'))) {
    copy(`${dir}build.rs`);
  }
}
DATA_FILES.forEach(copy);

// What the copy must hold for cargo: each target's path (`path = "…"` of [lib], [[bin]] and the like; inline
// dependency tables are on their dependency's line), a custom build script, and each file that an
// include_str! or include_bytes! names.
const problems = [];
for (const file of filesUnder(out)) {
  const rel = relative(out, file);
  const text = readFileSync(file, 'utf8');
  const needed = [];
  if (rel.endsWith('Cargo.toml')) {
    needed.push(...[...text.matchAll(/^(?:path|build)\s*=\s*"([^"]+)"/gm)].map((m) => m[1]));
  } else if (rel.endsWith('.rs')) {
    for (const m of text.matchAll(/include_(?:str|bytes)!\s*\(\s*("([^"]*)")?/g)) {
      if (m[2] === undefined) {
        problems.push(`${rel}: an include_str!/include_bytes! of a computed path, which this script cannot follow`);
      } else {
        needed.push(m[2]);
      }
    }
  }
  for (const n of needed) {
    if (!existsSync(resolve(dirname(file), n))) {
      problems.push(`${rel} needs ${n}, which the copy leaves out (add it to scripts/bundle.mjs)`);
    }
  }
}
if (problems.length > 0) {
  rmSync(out, { recursive: true, force: true });
  fail(problems.join('\n'));
}
const count = filesUnder(out).length;
console.log(`bundle: ${count} files (Cargo workspace, state machine, event files) in ${relative(pkg, out)}/`);
