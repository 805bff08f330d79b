#!/usr/bin/env node
// include-graph.mjs - the include graph of src/, by unit (foo.c and foo.h are one unit, and
// a module's private header foo_internal.h belongs to foo), printed one unit a line with
// what it includes, then the same graph by module (the directories under src/, "top" for
// the files at its root). Exits 1 when either graph has a cycle, printing its members.
//   node scripts/include-graph.mjs [SRC_DIR] [--quiet]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const args = process.argv.slice(2);
const quiet = args.includes('--quiet');
const src = args.find((a) => !a.startsWith('--')) ?? 'src';

function walk(dir, out = []) {
	for (const name of readdirSync(dir).sort()) {
		const p = join(dir, name);
		if (statSync(p).isDirectory()) walk(p, out);
		else if (/\.[ch]$/.test(name)) out.push(p);
	}
	return out;
}

const unitOf = (file) => file.replace(/\.[ch]$/, '').replace(/_internal$/, '');
const moduleOf = (unit) => (unit.includes('/') ? unit.split('/')[0] : 'top');
const graph = new Map();
for (const file of walk(src)) {
	const unit = unitOf(relative(src, file));
	if (!graph.has(unit)) graph.set(unit, new Set());
	for (const m of readFileSync(file, 'utf8').matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
		const dep = unitOf(m[1]);
		if (dep !== unit) graph.get(unit).add(dep);
	}
}

// Tarjan's strongly connected components: a component of more than one node is a cycle.
function cyclesOf(g) {
	let index = 0;
	const idx = new Map(), low = new Map(), onStack = new Set(), stack = [], found = [];
	function strong(v) {
		idx.set(v, index); low.set(v, index); index++;
		stack.push(v); onStack.add(v);
		for (const w of g.get(v) ?? []) {
			if (!g.has(w)) continue;
			if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v), low.get(w))); }
			else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
		}
		if (low.get(v) === idx.get(v)) {
			const comp = [];
			let w;
			do { w = stack.pop(); onStack.delete(w); comp.push(w); } while (w !== v);
			if (comp.length > 1) found.push(comp.sort());
		}
	}
	for (const v of [...g.keys()].sort()) if (!idx.has(v)) strong(v);
	return found;
}

const modules = new Map();
for (const [unit, deps] of graph) {
	const m = moduleOf(unit);
	if (!modules.has(m)) modules.set(m, new Set());
	for (const d of deps) if (moduleOf(d) !== m) modules.get(m).add(moduleOf(d));
}
const cycles = [
	...cyclesOf(graph).map((c) => `include cycle (${c.length} units): ${c.join(' ')}`),
	...cyclesOf(modules).map((c) => `module cycle (${c.length} modules): ${c.join(' ')}`),
];

if (!quiet) {
	for (const [unit, deps] of [...graph].sort())
		console.log(`${unit} -> ${[...deps].sort().join(' ') || '(none)'}`);
	console.log('');
	for (const [m, deps] of [...modules].sort())
		console.log(`${m}/ -> ${[...deps].sort().join(' ') || '(none)'}`);
}
if (cycles.length) {
	for (const c of cycles) console.error(c);
	process.exit(1);
}
console.log(`include graph: ${graph.size} units in ${modules.size} modules, no cycle`);
