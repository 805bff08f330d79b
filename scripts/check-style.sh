#!/usr/bin/env bash
# check-style.sh - the style checks of docs/CODE_STYLE.md; `make check-style` runs it, and
# `make test` runs it first. Over the C files of src/ and tests/ (tests/fixtures and
# node_modules excluded):
#   1. no line over 100 columns (a tab advances to the next multiple of 8, a UTF-8
#      character is one column);
#   2. clang-format (the .clang-format at the top) would change nothing;
#   3. no include cycle between the units or the modules of src/ (scripts/include-graph.mjs;
#      run it alone to see the whole graph).
# Every check runs; each problem is printed as FILE:LINE: what. Exits 1 when one failed.
#   scripts/check-style.sh          CLANG_FORMAT=clang-format-14 picks another binary
set -uo pipefail
cd "$(dirname "$0")/.."

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
MAX_COLS=100
failed=()

mapfile -t files < <(find src tests -name '*.[ch]' -not -path '*/node_modules/*' \
	-not -path 'tests/fixtures/*' | LC_ALL=C sort)
if [ ${#files[@]} -eq 0 ]; then
	echo "check-style: no C files found under src/ and tests/" >&2
	exit 1
fi

# 1. Line length.
if ! node - "$MAX_COLS" "${files[@]}" <<'EOF'; then
const [max, ...files] = process.argv.slice(2);
const { readFileSync } = require('node:fs');
let n = 0;
for (const f of files) {
	readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
		let col = 0;
		for (const ch of line) col = ch === '\t' ? col + 8 - (col % 8) : col + 1;
		if (col > +max) {
			console.error(`${f}:${i + 1}: ${col} columns (at most ${max})`);
			n++;
		}
	});
}
if (n) {
	console.error(`check-style: ${n} lines over ${max} columns`);
	process.exit(1);
}
EOF
	failed+=("line length")
fi

# 2. clang-format. Its messages are FILE:LINE:COL: error: code should be clang-formatted;
# at most 10 a file, so an unformatted file does not bury the rest.
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
	echo "check-style: $CLANG_FORMAT not found (Debian package clang-format; make deps-apt)" >&2
	failed+=("clang-format")
elif ! out=$("$CLANG_FORMAT" --style=file --dry-run --Werror --ferror-limit=10 "${files[@]}" 2>&1)
then
	echo "$out" >&2
	n=$(echo "$out" | grep -oE '^[^ :]+:[0-9]+:[0-9]+: error' | cut -d: -f1 | sort -u | wc -l)
	echo "check-style: $n files differ from clang-format; fix one with: $CLANG_FORMAT -i FILE" >&2
	failed+=("clang-format")
fi

# 3. Include cycles.
node scripts/include-graph.mjs --quiet src || failed+=("include cycles")

if [ ${#failed[@]} -gt 0 ]; then
	echo "check-style: FAILED: $(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')" >&2
	exit 1
fi
echo "check-style: ${#files[@]} files, every check passed"
