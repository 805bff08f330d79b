#!/usr/bin/env bash
# selftest.sh - checks fake_upstream's native provider fakes (Anthropic, Gemini, Azure), its
# path-prefix knobs and a few OpenAI basics, with curl against a fresh server. Every check
# states a status and, mostly, a condition on the answer; the script prints each failure and
# exits 1 if there was one.
#   bash tests/fake_upstream/selftest.sh [PATH/TO/fake_upstream]   (default build/fake_upstream)
# Needs curl and node.
set -uo pipefail

BIN=${1:-build/fake_upstream}
TMP=$(mktemp -d)
PID=
pass=0
fail=0

cleanup() {
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

for tool in curl node; do
	command -v "$tool" >/dev/null || { echo "selftest: $tool is needed" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "selftest: no executable $BIN" >&2; exit 1; }

"$BIN" --listen 127.0.0.1:0 >"$TMP/out" 2>"$TMP/err" &
PID=$!
PORT=
for _ in $(seq 50); do
	PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/out")
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || { echo "selftest: fake_upstream did not start" >&2; cat "$TMP/err" >&2; exit 1; }
U=http://127.0.0.1:$PORT

# The condition is JavaScript over: b (body text), h (response head, lower case), j (body
# parsed as JSON, or null), ev() (Anthropic SSE: [{event, data}]), gd() (Gemini SSE: the
# parsed data of each CRLF-framed event), rc (curl's exit code).
cat >"$TMP/check.js" <<'EOF'
const fs = require('fs');
const b = fs.readFileSync(process.argv[2], 'utf8');
const h = fs.readFileSync(process.argv[3], 'utf8').toLowerCase();
const rc = +process.argv[4];
let j = null;
try { j = JSON.parse(b); } catch (e) { j = null; }
const ev = () => b.split('\n\n').filter((x) => x.trim()).map((x) => {
	const m = /^event: ([a-z_]+)\ndata: (.*)$/s.exec(x);
	if (!m) throw new Error('not an event: ' + JSON.stringify(x));
	return { event: m[1], data: JSON.parse(m[2]) };
});
const gd = () => {
	if (!b.endsWith('\r\n\r\n')) throw new Error('stream does not end in CRLF CRLF');
	return b.slice(0, -4).split('\r\n\r\n').map((x) => {
		if (!x.startsWith('data: ') || x.includes('\n')) throw new Error('bad event ' + x);
		return JSON.parse(x.slice(6));
	});
};
const texts = (parts) => parts.map((p) => p.text).join('');
const words = (n) => Array.from({ length: n }, (_, i) => 'tok' + i).join(' ');
let ok = false;
try { ok = eval(process.env.COND); } catch (e) { console.error('  ' + e.message); }
process.exit(ok ? 0 : 1);
EOF

# t NAME STATUS CONDITION CURL-ARGS... (MSG is passed to the condition as process.env.MSG)
MSG=
t() {
	local name=$1 want=$2 cond=$3 code
	shift 3
	: >"$TMP/body"
	: >"$TMP/head"
	code=$(curl -s -o "$TMP/body" -D "$TMP/head" -w '%{http_code}' "$@")
	RC=$?
	if [ "$code" != "$want" ]; then
		echo "FAIL $name: status $code, want $want: $(head -c 300 "$TMP/body")"
		fail=$((fail + 1))
		return
	fi
	if [ -n "$cond" ] &&
		! MSG=$MSG COND=$cond node "$TMP/check.js" "$TMP/body" "$TMP/head" "$RC"; then
		echo "FAIL $name: condition $cond"
		echo "     body: $(head -c 400 "$TMP/body")"
		fail=$((fail + 1))
		return
	fi
	pass=$((pass + 1))
}

A=(-H 'x-api-key: test-key' -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json')
G=(-H 'x-goog-api-key: test-key' -H 'content-type: application/json')
Z=(-H 'api-key: test-key' -H 'content-type: application/json')
AM=$U/v1/messages
GM=$U/v1beta/models/gemini-x
AZ=$U/openai/deployments/dep-one
V='api-version=2024-10-21'
HELLO='"messages":[{"role":"user","content":"hello world"}]'
TOOLS='"tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},{"name":"other","input_schema":{"type":"object"}}]'
GTOOLS='"tools":[{"functionDeclarations":[{"name":"get_weather","description":"d","parameters":{"type":"object"}},{"name":"other"}]}]'
GHELLO='"contents":[{"role":"user","parts":[{"text":"hello world"}]}]'

# ---------------------------------------------------------------- Anthropic: answers
t 'anthropic: a valid request gets a message' 200 \
	'j.type === "message" && /^msg_fake_\d+$/.test(j.id) && j.role === "assistant" &&
	 j.model === "claude-x" && j.content.length === 1 && j.content[0].type === "text" &&
	 j.content[0].text === words(16) && j.stop_reason === "end_turn" &&
	 j.stop_sequence === null && j.usage.input_tokens === 6 && j.usage.output_tokens === 16 &&
	 j.usage.cache_creation_input_tokens === 0 && j.usage.cache_read_input_tokens === 0' \
	"${A[@]}" "$AM" -d '{"model":"claude-x","max_tokens":100,'"$HELLO"'}'
t 'anthropic: max_tokens cuts the reply' 200 \
	'j.stop_reason === "max_tokens" && j.usage.output_tokens === 5 && j.content[0].text === words(5)' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":5,'"$HELLO"'}'
t 'anthropic: system string counts as a message (11 tokens)' 200 'j.usage.input_tokens === 11' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,"system":"be brief",'"$HELLO"'}'
t 'anthropic: system as text blocks' 200 'j.usage.input_tokens === 11' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,"system":[{"type":"text","text":"be brief"}],'"$HELLO"'}'
t 'anthropic: block content, image base64 and url, prefill' 200 'j.type === "message"' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,"temperature":0.5,"stop_sequences":["x"],"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}},{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},{"role":"assistant","content":"Sure"}]}'
t 'anthropic: x-fake-completion-tokens' 200 'j.usage.output_tokens === 3 && j.content[0].text === words(3)' \
	"${A[@]}" -H 'x-fake-completion-tokens: 3' "$AM" -d '{"model":"m","max_tokens":99,'"$HELLO"'}'
t 'anthropic: x-fake-no-usage' 200 'j.type === "message" && !("usage" in j)' \
	"${A[@]}" -H 'x-fake-no-usage: 1' "$AM" -d '{"model":"m","max_tokens":99,'"$HELLO"'}'
t 'anthropic: cache knobs fill the usage, input_tokens stays' 200 \
	'j.usage.input_tokens === 6 && j.usage.cache_read_input_tokens === 100 &&
	 j.usage.cache_creation_input_tokens === 50' \
	"${A[@]}" -H 'x-fake-cache-read: 100' -H 'x-fake-cache-write: 50' "$AM" \
	-d '{"model":"m","max_tokens":99,'"$HELLO"'}'
t 'anthropic: cache knob in the path' 200 'j.usage.cache_read_input_tokens === 7' \
	"${A[@]}" "$U/k/cache-read=7/v1/messages" -d '{"model":"m","max_tokens":99,'"$HELLO"'}'

# tools
t 'anthropic: weather -> one tool_use' 200 \
	'j.stop_reason === "tool_use" && j.content.length === 1 && j.content[0].type === "tool_use" &&
	 /^toolu_fake_\d+_0$/.test(j.content[0].id) && j.content[0].name === "get_weather" &&
	 JSON.stringify(j.content[0].input) === "{\"city\":\"Paris\"}" && j.usage.output_tokens === 7' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,'"$TOOLS"',"messages":[{"role":"user","content":"What is the Weather?"}]}'
t 'anthropic: weather in both -> two parallel tool_use' 200 \
	'j.content.length === 2 && j.content[0].input.city === "Paris" &&
	 j.content[1].input.city === "Tokyo" && j.content[1].id.endsWith("_1") &&
	 j.content[0].id !== j.content[1].id && j.usage.output_tokens === 14' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,'"$TOOLS"',"messages":[{"role":"user","content":[{"type":"text","text":"weather in both cities"}]}]}'
t 'anthropic: tool_choice none -> text' 200 'j.content[0].type === "text" && j.stop_reason === "end_turn"' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,'"$TOOLS"',"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"weather"}]}'
t 'anthropic: tool_choice tool forces that tool' 200 'j.content[0].type === "tool_use" && j.content[0].name === "other"' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,'"$TOOLS"',"tool_choice":{"type":"tool","name":"other"},"messages":[{"role":"user","content":"hi"}]}'
ROUND='"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny 21C"}]}]'
t 'anthropic: tool_result round trip' 200 \
	'j.content[0].text === "result: sunny 21C" && j.stop_reason === "end_turn" && j.usage.output_tokens === 5' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":99,'"$TOOLS"','"$ROUND"'}'

# ---------------------------------------------------------------- Anthropic: refusals
# aerr NAME STATUS TYPE MESSAGE-SUBSTRING CURL-ARGS...
aerr() {
	local name=$1 st=$2 type=$3 msg=$4
	shift 4
	MSG=$msg t "anthropic refuses: $name" "$st" \
		'j.type === "error" && j.error.type === "'"$type"'" &&
		 j.error.message.includes(process.env.MSG)' "$@"
}
aerr 'no x-api-key' 401 authentication_error 'x-api-key' \
	-H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'a Bearer token instead of x-api-key' 401 authentication_error 'x-api-key' -H 'Authorization: Bearer k' \
	-H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'no anthropic-version' 400 invalid_request_error 'anthropic-version: header is required' \
	-H 'x-api-key: k' -H 'content-type: application/json' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'a form content-type' 400 invalid_request_error 'Content-Type' \
	-H 'x-api-key: k' -H 'anthropic-version: 2023-06-01' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'malformed JSON' 400 invalid_request_error 'JSON' "${A[@]}" "$AM" -d '{"model":'
aerr 'no model' 400 invalid_request_error 'model: Field required' "${A[@]}" "$AM" -d '{"max_tokens":9,'"$HELLO"'}'
aerr 'no max_tokens' 400 invalid_request_error 'max_tokens: Field required' "${A[@]}" "$AM" -d '{"model":"m",'"$HELLO"'}'
aerr 'max_tokens 0' 400 invalid_request_error 'max_tokens' "${A[@]}" "$AM" -d '{"model":"m","max_tokens":0,'"$HELLO"'}'
aerr 'max_tokens 2.5' 400 invalid_request_error 'max_tokens' "${A[@]}" "$AM" -d '{"model":"m","max_tokens":2.5,'"$HELLO"'}'
aerr 'empty messages' 400 invalid_request_error 'messages' "${A[@]}" "$AM" -d '{"model":"m","max_tokens":9,"messages":[]}'
aerr 'a system role' 400 invalid_request_error 'top-level `system`' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}'
aerr 'a tool role' 400 invalid_request_error "'user' or 'assistant'" "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"tool","content":"x"}]}'
aerr 'an assistant first' 400 invalid_request_error 'first message' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"assistant","content":"hi"},{"role":"user","content":"hi"}]}'
aerr 'two user turns in a row' 400 invalid_request_error 'alternate' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}'
aerr 'empty content' 400 invalid_request_error 'non-empty content' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":""}]}'
aerr 'a final assistant turn ending in a space' 400 invalid_request_error 'trailing whitespace' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b "}]}'
for f in '"n":2' '"stream_options":{"include_usage":true}' '"response_format":{"type":"json_object"}' \
	'"frequency_penalty":0.5' '"tool_calls":[]' '"presence_penalty":0' '"logprobs":true' '"user":"u"'; do
	field=$(echo "$f" | sed 's/^"\([a-z_]*\)".*/\1/')
	aerr "OpenAI field $field" 400 invalid_request_error "$field: Extra inputs are not permitted" \
		"${A[@]}" "$AM" -d '{"model":"m","max_tokens":9,'"$f"','"$HELLO"'}'
done
aerr 'messages[].tool_call_id' 400 invalid_request_error 'messages.0.tool_call_id: Extra inputs are not permitted' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"x","tool_call_id":"c1"}]}'
aerr 'messages[].name' 400 invalid_request_error 'messages.0.name: Extra inputs are not permitted' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"x","name":"bob"}]}'
aerr 'an x_fake body object' 400 invalid_request_error 'x_fake: Extra inputs are not permitted' \
	"${A[@]}" "$AM" -d '{"model":"m","max_tokens":9,"x_fake":{"status":500},'"$HELLO"'}'
aerr 'temperature 1.5' 400 invalid_request_error 'temperature' "${A[@]}" "$AM" -d '{"model":"m","max_tokens":9,"temperature":1.5,'"$HELLO"'}'
aerr 'stop_sequences with a number' 400 invalid_request_error 'stop_sequences.1' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"stop_sequences":["a",1],'"$HELLO"'}'
aerr 'stop_sequences a string' 400 invalid_request_error 'stop_sequences' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"stop_sequences":"a",'"$HELLO"'}'
aerr 'an OpenAI image_url block' 400 invalid_request_error 'image_url' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}'
aerr 'base64 image without media_type' 400 invalid_request_error 'media_type' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"AAAA"}}]}]}'
aerr 'base64 image without data' 400 invalid_request_error 'data' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png"}}]}]}'
aerr 'url image without url' 400 invalid_request_error 'url' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url"}}]}]}'
aerr 'a tool without input_schema' 400 invalid_request_error 'input_schema: Field required' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"tools":[{"name":"f"}],'"$HELLO"'}'
aerr 'an OpenAI-shaped tool' 400 invalid_request_error 'Extra inputs are not permitted' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],'"$HELLO"'}'
aerr 'tool_choice tool without name' 400 invalid_request_error 'name' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,'"$TOOLS"',"tool_choice":{"type":"tool"},'"$HELLO"'}'
aerr 'tool_choice "required"' 400 invalid_request_error 'tool_choice' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,'"$TOOLS"',"tool_choice":{"type":"required"},'"$HELLO"'}'
aerr 'tool_choice as a string' 400 invalid_request_error 'tool_choice' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,'"$TOOLS"',"tool_choice":"auto",'"$HELLO"'}'
aerr 'a tool_result with no tool_use before' 400 invalid_request_error 'unexpected `tool_use_id`' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,'"$TOOLS"',"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_9","content":"x"}]}]}'
aerr 'a tool_result for another id' 400 invalid_request_error 'toolu_2' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,'"$TOOLS"',"messages":[{"role":"user","content":"w"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_2","content":"x"}]}]}'
aerr 'a tool_use left unanswered' 400 invalid_request_error '`tool_use` ids were found without `tool_result`' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,'"$TOOLS"',"messages":[{"role":"user","content":"w"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},{"role":"user","content":"thanks"}]}'
aerr 'tool blocks without tools' 400 invalid_request_error 'must define tools' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"w"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"x"}]}]}'
aerr 'an OpenAI tool message' 400 invalid_request_error 'tool_call_id' "${A[@]}" "$AM" \
	-d '{"model":"m","max_tokens":9,'"$TOOLS"',"messages":[{"role":"user","content":"w"},{"role":"tool","tool_call_id":"c","content":"x"}]}'

# injected failures in Anthropic's shape
aerr 'x-fake-status 529' 529 overloaded_error 'Overloaded' "${A[@]}" -H 'x-fake-status: 529' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
t 'anthropic: 429 is rate_limit_error with retry-after: 1' 429 \
	'j.error.type === "rate_limit_error" && /\r\nretry-after: 1\r\n/.test(h)' \
	"${A[@]}" -H 'x-fake-status: 429' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'x-fake-status 500' 500 api_error 'injected' "${A[@]}" -H 'x-fake-status: 500' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'x-fake-status 401' 401 authentication_error 'injected' "${A[@]}" -H 'x-fake-status: 401' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'x-fake-status 403' 403 permission_error 'injected' "${A[@]}" -H 'x-fake-status: 403' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'x-fake-status 404' 404 not_found_error 'injected' "${A[@]}" -H 'x-fake-status: 404' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'x-fake-status 413' 413 request_too_large 'injected' "${A[@]}" -H 'x-fake-status: 413' "$AM" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr '/k/status=529' 529 overloaded_error 'Overloaded' "${A[@]}" "$U/k/status=529/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'a bad /k/ knob' 400 invalid_request_error 'bogus' "${A[@]}" "$U/k/bogus=1/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'a bad /k/ value' 400 invalid_request_error 'status' "${A[@]}" "$U/k/status=abc/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'an invalid request even with a status knob' 400 invalid_request_error 'max_tokens' "${A[@]}" \
	"$U/k/status=529/v1/messages" -d '{"model":"m",'"$HELLO"'}'
aerr 'an unknown /v1/messages/ path' 404 not_found_error 'Not Found' "${A[@]}" "$AM/batches" -d '{}'

# ---------------------------------------------------------------- Anthropic: streaming
SEQ='["message_start","content_block_start","ping"].concat(Array(16).fill("content_block_delta"),["content_block_stop","message_delta","message_stop"])'
t 'anthropic stream: events in order, text as a whole' 200 \
	'/content-type: text\/event-stream/.test(h) && (() => { const e = ev();
	 return JSON.stringify(e.map((x) => x.event)) === JSON.stringify('"$SEQ"') &&
	 e.every((x) => x.data.type === x.event) &&
	 e[0].data.message.usage.input_tokens === 6 && e[0].data.message.usage.output_tokens === 1 &&
	 e[0].data.message.content.length === 0 && e[0].data.message.stop_reason === null &&
	 e[1].data.index === 0 && e[1].data.content_block.type === "text" && e[1].data.content_block.text === "" &&
	 e.filter((x) => x.event === "content_block_delta").map((x) => x.data.delta.type === "text_delta" ? x.data.delta.text : "?").join("") === words(16) &&
	 e[e.length - 2].data.delta.stop_reason === "end_turn" && e[e.length - 2].data.delta.stop_sequence === null &&
	 e[e.length - 2].data.usage.output_tokens === 16; })()' \
	"${A[@]}" -N "$AM" -d '{"model":"m","max_tokens":99,"stream":true,'"$HELLO"'}'
t 'anthropic stream: x-fake-chunks 4' 200 \
	'ev().filter((x) => x.event === "content_block_delta").length === 4' \
	"${A[@]}" -H 'x-fake-chunks: 4' -N "$AM" -d '{"model":"m","max_tokens":99,"stream":true,'"$HELLO"'}'
t 'anthropic stream: /k/chunks=2 in the path' 200 \
	'ev().filter((x) => x.event === "content_block_delta").length === 2' \
	"${A[@]}" -N "$U/k/chunks=2/v1/messages" -d '{"model":"m","max_tokens":99,"stream":true,'"$HELLO"'}'
t 'anthropic stream: two tool_use blocks in input_json_delta pieces' 200 \
	'(() => { const e = ev(); const starts = e.filter((x) => x.event === "content_block_start");
	 const json = (i) => e.filter((x) => x.event === "content_block_delta" && x.data.index === i);
	 return starts.length === 2 && starts.every((s, i) => s.data.content_block.type === "tool_use" &&
	   s.data.content_block.name === "get_weather" && JSON.stringify(s.data.content_block.input) === "{}" &&
	   s.data.index === i) &&
	 json(0).length >= 2 && json(0).every((x) => x.data.delta.type === "input_json_delta") &&
	 JSON.parse(json(0).map((x) => x.data.delta.partial_json).join("")).city === "Paris" &&
	 JSON.parse(json(1).map((x) => x.data.delta.partial_json).join("")).city === "Tokyo" &&
	 e.filter((x) => x.event === "content_block_stop").length === 2 &&
	 e[e.length - 2].data.delta.stop_reason === "tool_use" && e[e.length - 1].event === "message_stop"; })()' \
	"${A[@]}" -N "$AM" -d '{"model":"m","max_tokens":99,"stream":true,'"$TOOLS"',"messages":[{"role":"user","content":"weather for both"}]}'
t 'anthropic stream: break-after 3 cuts mid-stream' 200 \
	'(() => { const e = ev(); return e.filter((x) => x.event === "content_block_delta").length === 3 &&
	 !e.some((x) => x.event === "message_stop" || x.event === "content_block_stop"); })()' \
	"${A[@]}" -H 'x-fake-break-after: 3' -N "$AM" -d '{"model":"m","max_tokens":99,"stream":true,'"$HELLO"'}'
t 'anthropic stream: /k/break-after=99 drops just the ending' 200 \
	'(() => { const e = ev(); return e.filter((x) => x.event === "content_block_delta").length === 16 &&
	 !e.some((x) => x.event === "message_delta"); })()' \
	"${A[@]}" -N "$U/k/break-after=99/v1/messages" -d '{"model":"m","max_tokens":99,"stream":true,'"$HELLO"'}'
t 'anthropic stream: no-usage' 200 \
	'(() => { const e = ev(); return !("usage" in e[0].data.message) && !("usage" in e[e.length - 2].data); })()' \
	"${A[@]}" -H 'x-fake-no-usage: 1' -N "$AM" -d '{"model":"m","max_tokens":99,"stream":true,'"$HELLO"'}'

# ---------------------------------------------------------------- Gemini: answers
t 'gemini: a valid request gets candidates and usageMetadata' 200 \
	'j.candidates.length === 1 && j.candidates[0].content.role === "model" &&
	 texts(j.candidates[0].content.parts) === words(16) && j.candidates[0].finishReason === "STOP" &&
	 j.candidates[0].index === 0 && j.usageMetadata.promptTokenCount === 6 &&
	 j.usageMetadata.candidatesTokenCount === 16 && j.usageMetadata.totalTokenCount === 22 &&
	 !("cachedContentTokenCount" in j.usageMetadata) && !("thoughtsTokenCount" in j.usageMetadata) &&
	 j.modelVersion === "gemini-x" && typeof j.responseId === "string"' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: key as a query parameter, lone turn without a role' 200 'j.usageMetadata.promptTokenCount === 6' \
	-H 'content-type: application/json' "$GM:generateContent?key=test-key" -d '{"contents":[{"parts":[{"text":"hello world"}]}]}'
t 'gemini: maxOutputTokens cuts the reply' 200 \
	'j.candidates[0].finishReason === "MAX_TOKENS" && j.usageMetadata.candidatesTokenCount === 3 &&
	 texts(j.candidates[0].content.parts) === words(3)' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GHELLO"',"generationConfig":{"maxOutputTokens":3,"temperature":0.2,"topP":0.9,"topK":40,"stopSequences":["x"],"candidateCount":1,"responseMimeType":"text/plain","seed":1,"presencePenalty":0,"frequencyPenalty":0,"thinkingConfig":{"thinkingBudget":0}}}'
t 'gemini: snake_case field names are proto JSON too' 200 'j.usageMetadata.candidatesTokenCount === 2 && j.usageMetadata.promptTokenCount === 11' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GHELLO"',"system_instruction":{"parts":[{"text":"be brief"}]},"generation_config":{"max_output_tokens":2}}'
t 'gemini: systemInstruction counts' 200 'j.usageMetadata.promptTokenCount === 11' \
	"${G[@]}" "$GM:generateContent" -d '{"systemInstruction":{"parts":[{"text":"be brief"}]},'"$GHELLO"'}'
t 'gemini: inlineData and fileData parts' 200 'j.candidates.length === 1' \
	"${G[@]}" "$GM:generateContent" -d '{"contents":[{"role":"user","parts":[{"text":"see"},{"inlineData":{"mimeType":"image/png","data":"iVBOR"}},{"fileData":{"mimeType":"application/pdf","fileUri":"https://x/f"}}]}]}'
t 'gemini: cache and thoughts knobs' 200 \
	'j.usageMetadata.promptTokenCount === 16 && j.usageMetadata.cachedContentTokenCount === 10 &&
	 j.usageMetadata.thoughtsTokenCount === 5 && j.usageMetadata.candidatesTokenCount === 16 &&
	 j.usageMetadata.totalTokenCount === 37' \
	"${G[@]}" -H 'x-fake-cache-read: 10' -H 'x-fake-thoughts: 5' "$GM:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: thoughts knob in the path' 200 'j.usageMetadata.thoughtsTokenCount === 4 && j.usageMetadata.totalTokenCount === 26' \
	"${G[@]}" "$U/k/thoughts=4/v1beta/models/gemini-x:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: x-fake-no-usage' 200 'j.candidates.length === 1 && !("usageMetadata" in j)' \
	"${G[@]}" -H 'x-fake-no-usage: 1' "$GM:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: x-fake-completion-tokens' 200 'j.usageMetadata.candidatesTokenCount === 4' \
	"${G[@]}" -H 'x-fake-completion-tokens: 4' "$GM:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: weather -> functionCall' 200 \
	'(() => { const p = j.candidates[0].content.parts; return p.length === 1 &&
	 p[0].functionCall.name === "get_weather" && p[0].functionCall.args.city === "Paris" &&
	 j.candidates[0].finishReason === "STOP"; })()' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GTOOLS"',"contents":[{"role":"user","parts":[{"text":"weather?"}]}]}'
t 'gemini: both -> two functionCalls' 200 \
	'(() => { const p = j.candidates[0].content.parts; return p.length === 2 &&
	 p[0].functionCall.args.city === "Paris" && p[1].functionCall.args.city === "Tokyo"; })()' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GTOOLS"',"contents":[{"role":"user","parts":[{"text":"weather in both"}]}]}'
t 'gemini: mode NONE -> text' 200 'texts(j.candidates[0].content.parts) === words(16)' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GTOOLS"',"toolConfig":{"functionCallingConfig":{"mode":"NONE"}},"contents":[{"role":"user","parts":[{"text":"weather"}]}]}'
t 'gemini: mode ANY with allowedFunctionNames forces a call' 200 \
	'j.candidates[0].content.parts[0].functionCall.name === "other"' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GTOOLS"',"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["other"]}},"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'
GROUND='"contents":[{"role":"user","parts":[{"text":"weather?"}]},{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]},{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"temp":21}}}]}]'
t 'gemini: functionResponse round trip' 200 \
	'texts(j.candidates[0].content.parts) === "result: {\"temp\":21}" && j.candidates[0].finishReason === "STOP"' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GTOOLS"','"$GROUND"'}'
t 'gemini: blocked -> promptFeedback SAFETY and no candidates' 200 \
	'j.promptFeedback.blockReason === "SAFETY" && !("candidates" in j) && j.usageMetadata.promptTokenCount === 5' \
	"${G[@]}" "$GM:generateContent" -d '{"contents":[{"role":"user","parts":[{"text":"blocked"}]}]}'

# ---------------------------------------------------------------- Gemini: refusals
# gerr NAME STATUS STATUS-NAME MESSAGE-SUBSTRING CURL-ARGS...
gerr() {
	local name=$1 st=$2 sname=$3 msg=$4
	shift 4
	MSG=$msg t "gemini refuses: $name" "$st" \
		'j.error.code === '"$st"' && j.error.status === "'"$sname"'" &&
		 j.error.message.includes(process.env.MSG)' "$@"
}
gerr 'no API key' 403 PERMISSION_DENIED 'unregistered callers' -H 'content-type: application/json' "$GM:generateContent" -d '{'"$GHELLO"'}'
gerr 'a bearer token only' 401 UNAUTHENTICATED 'invalid authentication credentials' -H 'Authorization: Bearer k' \
	-H 'content-type: application/json' "$GM:generateContent" -d '{'"$GHELLO"'}'
gerr 'an empty key' 403 PERMISSION_DENIED 'unregistered' -H 'x-goog-api-key;' "$GM:generateContent?key=" -d '{'"$GHELLO"'}'
gerr 'streamGenerateContent without alt=sse' 400 INVALID_ARGUMENT 'alt=sse' "${G[@]}" "$GM:streamGenerateContent" -d '{'"$GHELLO"'}'
gerr 'an unknown method' 404 NOT_FOUND 'not found' "${G[@]}" "$GM:chat" -d '{'"$GHELLO"'}'
gerr 'malformed JSON' 400 INVALID_ARGUMENT 'Invalid JSON payload' "${G[@]}" "$GM:generateContent" -d '{"contents":'
gerr 'no contents' 400 INVALID_ARGUMENT 'contents is not specified' "${G[@]}" "$GM:generateContent" -d '{}'
gerr 'empty contents' 400 INVALID_ARGUMENT 'contents is not specified' "${G[@]}" "$GM:generateContent" -d '{"contents":[]}'
for f in 'messages' 'model' 'max_tokens' 'stream' 'temperature'; do
	gerr "top-level $f" 400 INVALID_ARGUMENT "Unknown name \"$f\"" "${G[@]}" "$GM:generateContent" \
		-d '{'"$GHELLO"',"'"$f"'":1}'
done
gerr 'an assistant role' 400 INVALID_ARGUMENT 'valid role' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","parts":[{"text":"a"}]},{"role":"assistant","parts":[{"text":"b"}]}]}'
gerr 'a system role' 400 INVALID_ARGUMENT 'valid role' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"system","parts":[{"text":"a"}]}]}'
gerr 'a missing role in a multi-turn request' 400 INVALID_ARGUMENT 'valid role' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"parts":[{"text":"a"}]},{"role":"model","parts":[{"text":"b"}]}]}'
gerr 'OpenAI-style content' 400 INVALID_ARGUMENT 'Unknown name "content"' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","content":"hi"}]}'
gerr 'empty parts' 400 INVALID_ARGUMENT 'parts must not be empty' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","parts":[]}]}'
gerr 'a part with no data' 400 INVALID_ARGUMENT "oneof field 'data'" "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","parts":[{}]}]}'
gerr 'a part with two data fields' 400 INVALID_ARGUMENT 'already set' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","parts":[{"text":"a","inlineData":{"mimeType":"image/png","data":"AA"}}]}]}'
gerr 'a part with an unknown field' 400 INVALID_ARGUMENT 'Unknown name "type"' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","parts":[{"type":"text","text":"a"}]}]}'
gerr 'inlineData without data' 400 INVALID_ARGUMENT 'data' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","parts":[{"inlineData":{"mimeType":"image/png"}}]}]}'
gerr 'fileData without fileUri' 400 INVALID_ARGUMENT 'file_uri' "${G[@]}" "$GM:generateContent" \
	-d '{"contents":[{"role":"user","parts":[{"fileData":{"mimeType":"image/png"}}]}]}'
gerr 'functionCall without name' 400 INVALID_ARGUMENT 'Name is required' "${G[@]}" "$GM:generateContent" \
	-d '{'"$GTOOLS"',"contents":[{"role":"user","parts":[{"text":"a"}]},{"role":"model","parts":[{"functionCall":{"args":{}}}]}]}'
gerr 'an unknown generationConfig field' 400 INVALID_ARGUMENT "Unknown name \"max_tokens\" at 'generation_config'" \
	"${G[@]}" "$GM:generateContent" -d '{'"$GHELLO"',"generationConfig":{"max_tokens":5}}'
gerr 'generationConfig.response_format' 400 INVALID_ARGUMENT 'Unknown name "response_format"' \
	"${G[@]}" "$GM:generateContent" -d '{'"$GHELLO"',"generationConfig":{"response_format":{}}}'
gerr 'a string temperature' 400 INVALID_ARGUMENT "generation_config.temperature" \
	"${G[@]}" "$GM:generateContent" -d '{'"$GHELLO"',"generationConfig":{"temperature":"hot"}}'
gerr 'maxOutputTokens 0' 400 INVALID_ARGUMENT "max_output_tokens" \
	"${G[@]}" "$GM:generateContent" -d '{'"$GHELLO"',"generationConfig":{"maxOutputTokens":0}}'
gerr 'systemInstruction with an unknown field' 400 INVALID_ARGUMENT "at 'system_instruction'" \
	"${G[@]}" "$GM:generateContent" -d '{"systemInstruction":{"parts":[{"text":"x"}],"content":"y"},'"$GHELLO"'}'
gerr 'an OpenAI-shaped tool' 400 INVALID_ARGUMENT 'Unknown name "type"' "${G[@]}" "$GM:generateContent" \
	-d '{"tools":[{"type":"function","function":{"name":"f"}}],'"$GHELLO"'}'
gerr 'a bad function name' 400 INVALID_ARGUMENT 'Invalid function name' "${G[@]}" "$GM:generateContent" \
	-d '{"tools":[{"functionDeclarations":[{"name":"get weather"}]}],'"$GHELLO"'}'
gerr 'a bad calling mode' 400 INVALID_ARGUMENT "function_calling_config.mode" "${G[@]}" "$GM:generateContent" \
	-d '{'"$GTOOLS"',"toolConfig":{"functionCallingConfig":{"mode":"REQUIRED"}},'"$GHELLO"'}'
gerr 'a functionResponse with no call before' 400 INVALID_ARGUMENT 'function call turn' "${G[@]}" "$GM:generateContent" \
	-d '{'"$GTOOLS"',"contents":[{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"t":1}}}]}]}'
gerr 'a functionResponse naming another function' 400 INVALID_ARGUMENT '"other"' "${G[@]}" "$GM:generateContent" \
	-d '{'"$GTOOLS"',"contents":[{"role":"user","parts":[{"text":"w"}]},{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{}}}]},{"role":"user","parts":[{"functionResponse":{"name":"other","response":{"t":1}}}]}]}'
gerr 'a functionResponse in a function role' 400 INVALID_ARGUMENT 'valid role' "${G[@]}" "$GM:generateContent" \
	-d '{'"$GTOOLS"',"contents":[{"role":"user","parts":[{"text":"w"}]},{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{}}}]},{"role":"function","parts":[{"functionResponse":{"name":"get_weather","response":{"t":1}}}]}]}'
gerr 'x-fake-status 429' 429 RESOURCE_EXHAUSTED 'injected' "${G[@]}" -H 'x-fake-status: 429' "$GM:generateContent" -d '{'"$GHELLO"'}'
gerr 'x-fake-status 503' 503 UNAVAILABLE 'injected' "${G[@]}" -H 'x-fake-status: 503' "$GM:generateContent" -d '{'"$GHELLO"'}'
gerr '/k/status=500' 500 INTERNAL 'injected' "${G[@]}" "$U/k/status=500/v1beta/models/gemini-x:generateContent" -d '{'"$GHELLO"'}'
gerr 'a bad /k/ knob' 400 INVALID_ARGUMENT 'latency' "${G[@]}" "$U/k/latency=5/v1beta/models/gemini-x:generateContent" -d '{'"$GHELLO"'}'
gerr 'an unknown /v1beta/ path' 404 NOT_FOUND 'not found' "${G[@]}" "$U/v1beta/files" -d '{}'

# ---------------------------------------------------------------- Gemini: streaming
t 'gemini stream: CRLF-framed data events, no [DONE], last one finishes' 200 \
	'/content-type: text\/event-stream/.test(h) && !b.includes("[DONE]") && (() => { const d = gd();
	 const last = d[d.length - 1];
	 return d.length === 16 && d.every((x) => x.candidates[0].content.role === "model") &&
	 d.map((x) => texts(x.candidates[0].content.parts)).join("") === words(16) &&
	 d.slice(0, -1).every((x) => !("finishReason" in x.candidates[0])) &&
	 last.candidates[0].finishReason === "STOP" && last.usageMetadata.promptTokenCount === 6 &&
	 last.usageMetadata.candidatesTokenCount === 16 && last.usageMetadata.totalTokenCount === 22 &&
	 d.every((x) => x.responseId === d[0].responseId && x.modelVersion === "gemini-x"); })()' \
	"${G[@]}" -N "$GM:streamGenerateContent?alt=sse" -d '{'"$GHELLO"'}'
t 'gemini stream: x-fake-chunks 3, key in the query' 200 'gd().length === 3' \
	-H 'x-fake-chunks: 3' -N "$GM:streamGenerateContent?alt=sse&key=k" -d '{'"$GHELLO"'}'
t 'gemini stream: /k/latency-ms=50,chunks=2' 200 'gd().length === 2' \
	"${G[@]}" -N "$U/k/latency-ms=50,chunks=2/v1beta/models/gemini-x:streamGenerateContent?alt=sse" -d '{'"$GHELLO"'}'
t 'gemini stream: break-after 2 leaves it unfinished' 200 \
	'(() => { const d = gd(); return d.length === 2 && d.every((x) => !("finishReason" in x.candidates[0])); })()' \
	"${G[@]}" -H 'x-fake-break-after: 2' -N "$GM:streamGenerateContent?alt=sse" -d '{'"$GHELLO"'}'
t 'gemini stream: functionCalls in one chunk' 200 \
	'(() => { const d = gd(); return d.length === 1 && d[0].candidates[0].content.parts.length === 2 &&
	 d[0].candidates[0].finishReason === "STOP"; })()' \
	"${G[@]}" -N "$GM:streamGenerateContent?alt=sse" -d '{'"$GTOOLS"',"contents":[{"role":"user","parts":[{"text":"weather both"}]}]}'

# ---------------------------------------------------------------- Gemini: embeddings
EMB='{"requests":[{"model":"models/emb-x","content":{"parts":[{"text":"hello"}]}},{"model":"models/emb-x","content":{"parts":[{"text":"other"}]}},{"model":"models/emb-x","content":{"parts":[{"text":"hello"}]}}]}'
t 'gemini: batchEmbedContents' 200 \
	'j.embeddings.length === 3 && j.embeddings.every((e) => e.values.length === 8 &&
	 e.values.every((v) => v >= -1 && v <= 1)) &&
	 JSON.stringify(j.embeddings[0].values) === JSON.stringify(j.embeddings[2].values) &&
	 JSON.stringify(j.embeddings[0].values) !== JSON.stringify(j.embeddings[1].values)' \
	"${G[@]}" "$U/v1beta/models/emb-x:batchEmbedContents" -d "$EMB"
cp "$TMP/body" "$TMP/gemini-emb"
export GEMB=$TMP/gemini-emb
t 'embeddings: the same text gives the same values on OpenAI and Gemini' 200 \
	'JSON.stringify(j.data[0].embedding) === JSON.stringify(JSON.parse(require("fs").readFileSync(process.env.GEMB, "utf8")).embeddings[0].values)' \
	"$U/v1/embeddings" -d '{"model":"m","input":"hello"}'
gerr 'batchEmbedContents with another model' 400 INVALID_ARGUMENT 'models/emb-x' "${G[@]}" "$U/v1beta/models/emb-x:batchEmbedContents" \
	-d '{"requests":[{"model":"models/other","content":{"parts":[{"text":"hello"}]}}]}'
gerr 'batchEmbedContents without the models/ prefix' 400 INVALID_ARGUMENT 'models/emb-x' "${G[@]}" "$U/v1beta/models/emb-x:batchEmbedContents" \
	-d '{"requests":[{"model":"emb-x","content":{"parts":[{"text":"hello"}]}}]}'
gerr 'batchEmbedContents with OpenAI input' 400 INVALID_ARGUMENT 'Unknown name "input"' "${G[@]}" "$U/v1beta/models/emb-x:batchEmbedContents" \
	-d '{"input":["hello"]}'
t 'gemini: embedContent' 200 'j.embedding.values.length === 8' \
	"${G[@]}" "$U/v1beta/models/emb-x:embedContent" -d '{"content":{"parts":[{"text":"hello"}]}}'

# ---------------------------------------------------------------- Azure
t 'azure: chat answered as OpenAI with model = deployment' 200 \
	'j.object === "chat.completion" && j.model === "dep-one" && j.choices[0].message.content === words(16) &&
	 j.usage.prompt_tokens === 6' \
	"${Z[@]}" "$AZ/chat/completions?$V" -d '{'"$HELLO"'}'
t 'azure: a body model is replaced by the deployment' 200 'j.model === "dep-one"' \
	"${Z[@]}" "$AZ/chat/completions?$V" -d '{"model":"gpt-4o",'"$HELLO"'}'
t 'azure: embeddings' 200 'j.object === "list" && j.model === "dep-one" && j.data[0].embedding.length === 8' \
	"${Z[@]}" "$AZ/embeddings?$V" -d '{"input":"hello"}'
t 'azure refuses: no api-key' 401 'j.error.code === "401" && j.error.message.startsWith("Access denied due to invalid subscription key or wrong API endpoint")' \
	-H 'content-type: application/json' "$AZ/chat/completions?$V" -d '{'"$HELLO"'}'
t 'azure refuses: Authorization: Bearer only' 401 'j.error.code === "401" && j.error.message.startsWith("Access denied")' \
	-H 'Authorization: Bearer sk-test' -H 'content-type: application/json' "$AZ/chat/completions?$V" -d '{'"$HELLO"'}'
t 'azure refuses: no api-version' 404 'j.error.code === "404" && j.error.message === "Resource not found"' \
	"${Z[@]}" "$AZ/chat/completions" -d '{'"$HELLO"'}'
t 'azure refuses: an unknown path' 404 'j.error.code === "404" && j.error.message === "Resource not found"' \
	"${Z[@]}" "$AZ/completions?$V" -d '{'"$HELLO"'}'
t 'azure: x-fake-status 429 with retry-after' 429 \
	'j.error.message === "injected failure" && j.error.type === "invalid_request_error" && /\r\nretry-after: 1\r\n/.test(h)' \
	"${Z[@]}" -H 'x-fake-status: 429' "$AZ/chat/completions?$V" -d '{'"$HELLO"'}'
t 'azure: /k/status=500' 500 'j.error.type === "server_error"' \
	"${Z[@]}" "$U/k/status=500/openai/deployments/d/chat/completions?$V" -d '{'"$HELLO"'}'
t 'azure: stream ends with [DONE]' 200 'b.trimEnd().endsWith("data: [DONE]") && b.includes("\"model\":\"dep-one\"")' \
	"${Z[@]}" -N "$AZ/chat/completions?$V" -d '{"stream":true,'"$HELLO"'}'
t 'azure: /k/break-after=2 cuts the stream' 200 \
	'(b.match(/"content":"[^"]/g) || []).length === 2 && !b.includes("[DONE]") && !b.includes("finish_reason\":\"stop")' \
	"${Z[@]}" -N "$U/k/break-after=2/openai/deployments/d/chat/completions?$V" -d '{"stream":true,'"$HELLO"'}'
t 'azure: x_fake body knobs still work' 200 'j.usage.completion_tokens === 2' \
	"${Z[@]}" "$AZ/chat/completions?$V" -d '{"x_fake":{"completion_tokens":2},'"$HELLO"'}'

# ---------------------------------------------------------------- OpenAI (unchanged) and path knobs
t 'openai: chat as before' 200 'j.id.startsWith("chatcmpl-fake-") && j.usage.prompt_tokens === 6 && j.usage.completion_tokens === 16' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: /k/completion-tokens=3' 200 'j.usage.completion_tokens === 3' \
	"$U/k/completion-tokens=3/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: /k/status=502' 502 'j.error.type === "server_error" && j.error.message === "injected failure"' \
	"$U/k/status=502/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: a bad /k/ knob' 400 'j.error.type === "invalid_request_error" && j.error.message.includes("nope")' \
	"$U/k/nope=1/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: /k/ tag with bad characters' 400 'j.error.message.includes("tag")' \
	"$U/k/tag=a+b/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: /k/ knobs need a value' 400 'j.error.message.includes("chunks")' \
	"$U/k/chunks/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: stream with /k/chunks=2 and [DONE]' 200 \
	'(b.match(/"content":"[^"]/g) || []).length === 2 && b.trimEnd().endsWith("data: [DONE]")' \
	-N "$U/k/chunks=2/v1/chat/completions" -d '{"model":"m","stream":true,'"$HELLO"'}'
t 'latency-ms in the path holds the answer (curl gives up)' 000 'rc === 28' \
	-m 0.5 "${A[@]}" "$U/k/latency-ms=2000/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
start=$(date +%s%N)
t 'latency-ms in the path, then the answer' 200 'j.type === "message"' \
	"${A[@]}" "$U/k/latency-ms=300/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
took=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$took" -ge 300 ]; then pass=$((pass + 1)); else echo "FAIL latency-ms=300 answered in ${took} ms"; fail=$((fail + 1)); fi

# fail-first: the first N requests to the exact prefix fail, then it answers
P1=$U/k/fail-first=2,tag=a1/v1/messages
aerr 'fail-first=2: first' 503 api_error 'injected' "${A[@]}" "$P1" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'fail-first=2: second' 503 api_error 'injected' "${A[@]}" "$P1" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
t 'anthropic fail-first=2: third answers' 200 'j.type === "message"' "${A[@]}" "$P1" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
t 'anthropic fail-first=2: and stays answered' 200 'j.type === "message"' "${A[@]}" "$P1" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'fail-first: an invalid request does not count' 400 invalid_request_error 'max_tokens' "${A[@]}" \
	"$U/k/fail-first=1,status=529,tag=a2/v1/messages" -d '{"model":"m",'"$HELLO"'}'
aerr 'fail-first=1,status=529: first' 529 overloaded_error 'Overloaded' "${A[@]}" \
	"$U/k/fail-first=1,status=529,tag=a2/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
t 'anthropic fail-first=1,status=529: second answers' 200 'j.type === "message"' "${A[@]}" \
	"$U/k/fail-first=1,status=529,tag=a2/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
P2=$U/k/fail-first=1,status=429/v1beta/models/gemini-x:generateContent
gerr 'fail-first=1,status=429: first' 429 RESOURCE_EXHAUSTED 'injected' "${G[@]}" "$P2" -d '{'"$GHELLO"'}'
t 'gemini fail-first=1: second answers' 200 'j.candidates.length === 1' "${G[@]}" "$P2" -d '{'"$GHELLO"'}'
P3=$U/k/fail-first=1,tag=z/openai/deployments/d/chat/completions?$V
t 'azure fail-first=1: first is 503' 503 'j.error.message === "injected failure"' "${Z[@]}" "$P3" -d '{'"$HELLO"'}'
t 'azure fail-first=1: second answers' 200 'j.model === "d"' "${Z[@]}" "$P3" -d '{'"$HELLO"'}'
P4=$U/k/fail-first=1,tag=o/v1/chat/completions
t 'openai fail-first=1: first is 503' 503 'j.error.type === "server_error"' "$P4" -d '{"model":"m",'"$HELLO"'}'
t 'openai fail-first=1: second answers' 200 'j.object === "chat.completion"' "$P4" -d '{"model":"m",'"$HELLO"'}'
t 'fail-first counts each prefix apart' 503 'j.error.type === "server_error"' \
	"$U/k/fail-first=1,tag=o2/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'

# OpenAI (and Azure) tool calls
OTOOLS='"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},{"type":"function","function":{"name":"other"}}]'
OCALL='{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]}'
# od: the OpenAI SSE data events, parsed (up to [DONE])
ODS='b.split("\n\n").filter((x) => x.startsWith("data: ") && x !== "data: [DONE]").map((x) => JSON.parse(x.slice(6)))'
OARGS='((n) => { const a = []; for (const e of eval(process.env.ODS)) for (const t of e.choices[0]?.delta?.tool_calls ?? []) {
	 a[t.index] = a[t.index] || { id: "", name: "", args: "", pieces: 0 };
	 if (t.id) a[t.index].id = t.id; if (t.function?.name) a[t.index].name = t.function.name;
	 if (t.function?.arguments) { a[t.index].args += t.function.arguments; a[t.index].pieces++; } } return a; })()'
export ODS
t 'openai: "weather" with tools gets a tool call' 200 \
	'const m = j.choices[0].message; m.content === null && m.tool_calls.length === 1 &&
	 /^call_fake_\d+_0$/.test(m.tool_calls[0].id) && m.tool_calls[0].type === "function" &&
	 m.tool_calls[0].function.name === "get_weather" &&
	 JSON.parse(m.tool_calls[0].function.arguments).city === "Paris" &&
	 j.choices[0].finish_reason === "tool_calls" && j.usage.completion_tokens === 7' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"messages":[{"role":"user","content":"What is the weather in Paris?"}]}'
t 'openai: "both" gets two parallel calls' 200 \
	'const c = j.choices[0].message.tool_calls; c.length === 2 && c[0].id !== c[1].id &&
	 JSON.parse(c[1].function.arguments).city === "Tokyo" && j.usage.completion_tokens === 14' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"messages":[{"role":"user","content":"weather in both cities"}]}'
t 'openai: tool_choice none answers words' 200 'j.choices[0].message.content === words(16) && !j.choices[0].message.tool_calls' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"tool_choice":"none","messages":[{"role":"user","content":"weather?"}]}'
t 'openai: no weather, no call' 200 'j.choices[0].message.content === words(16) && j.choices[0].finish_reason === "stop"' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"messages":[{"role":"user","content":"hello"}]}'
t 'openai: tool_choice required calls the first tool' 200 'j.choices[0].message.tool_calls[0].function.name === "get_weather"' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"tool_choice":"required","messages":[{"role":"user","content":"hello"}]}'
t 'openai: a named tool_choice calls that tool' 200 'j.choices[0].message.tool_calls[0].function.name === "other"' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"tool_choice":{"type":"function","function":{"name":"other"}},"messages":[{"role":"user","content":"hello"}]}'
t 'openai: a tool result is echoed as "result: ..."' 200 \
	'j.choices[0].message.content === "result: 18C and sunny" && j.choices[0].finish_reason === "stop" &&
	 j.usage.completion_tokens === 6' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"messages":[{"role":"user","content":"weather?"},'"$OCALL"',{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"}]}'
t 'openai: a tool result cut by max_tokens' 200 \
	'j.choices[0].message.content === "result: " && j.choices[0].finish_reason === "length" && j.usage.completion_tokens === 2' \
	"$U/v1/chat/completions" -d '{"model":"m","max_tokens":2,'"$OTOOLS"',"messages":[{"role":"user","content":"weather?"},'"$OCALL"',{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"}]}'
t 'openai refuses: a tool message with no call before it' 400 \
	'j.error.message.includes("must be a response to a preceeding message with '"'"'tool_calls'"'"'") && j.error.param === "messages.[1].role"' \
	"$U/v1/chat/completions" -d '{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_1","content":"x"}]}'
t 'openai refuses: a tool message answering an unknown id' 400 'j.error.message.includes("preceeding")' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"messages":[{"role":"user","content":"w"},'"$OCALL"',{"role":"tool","tool_call_id":"call_1","content":"x"},{"role":"tool","tool_call_id":"call_2","content":"y"}]}'
t 'openai refuses: a tool call left unanswered' 400 \
	'j.error.message.includes("did not have response messages: call_1") && j.error.param === "messages.[1].role"' \
	"$U/v1/chat/completions" -d '{"model":"m",'"$OTOOLS"',"messages":[{"role":"user","content":"w"},'"$OCALL"',{"role":"user","content":"and?"}]}'
t 'openai refuses: a tool without a function name' 400 'j.error.param === "tools[0].function.name"' \
	"$U/v1/chat/completions" -d '{"model":"m","tools":[{"type":"function","function":{}}],'"$HELLO"'}'
t 'openai: a streamed tool call: head, arguments in 2 pieces, tool_calls, [DONE]' 200 \
	'const a = '"$OARGS"'; const ev = eval(process.env.ODS);
	 a.length === 1 && /^call_fake_\d+_0$/.test(a[0].id) && a[0].name === "get_weather" && a[0].pieces === 2 &&
	 JSON.parse(a[0].args).city === "Paris" && ev[0].choices[0].delta.role === "assistant" &&
	 ev[0].choices[0].delta.content === null &&
	 ev.some((e) => e.choices[0]?.finish_reason === "tool_calls") &&
	 ev[ev.length - 1].usage.completion_tokens === 7 && b.trimEnd().endsWith("data: [DONE]")' \
	-N "$U/v1/chat/completions" -d '{"model":"m","stream":true,"stream_options":{"include_usage":true},'"$OTOOLS"',"messages":[{"role":"user","content":"weather?"}]}'
t 'openai: two streamed calls with x-fake-chunks 4' 200 \
	'const a = '"$OARGS"'; a.length === 2 && a.every((c) => c.pieces === 4) && JSON.parse(a[1].args).city === "Tokyo"' \
	-N -H 'x-fake-chunks: 4' "$U/v1/chat/completions" -d '{"model":"m","stream":true,'"$OTOOLS"',"messages":[{"role":"user","content":"weather, both"}]}'
t 'openai: break-after cuts a tool-call stream' 200 \
	'const a = '"$OARGS"'; a.length === 1 && a[0].pieces === 1 && !b.includes("[DONE]") && !b.includes("tool_calls\"}")' \
	-N "$U/k/break-after=1/v1/chat/completions" -d '{"model":"m","stream":true,'"$OTOOLS"',"messages":[{"role":"user","content":"weather?"}]}'
t 'openai: a streamed tool result' 200 \
	'eval(process.env.ODS).map((e) => e.choices[0]?.delta?.content ?? "").join("") === "result: 18C and sunny"' \
	-N "$U/v1/chat/completions" -d '{"model":"m","stream":true,'"$OTOOLS"',"messages":[{"role":"user","content":"weather?"},'"$OCALL"',{"role":"tool","tool_call_id":"call_1","content":"18C and sunny"}]}'
t 'azure: tool calls as on OpenAI' 200 \
	'j.model === "d" && JSON.parse(j.choices[0].message.tool_calls[0].function.arguments).city === "Paris"' \
	"${Z[@]}" "$U/openai/deployments/d/chat/completions?$V" -d '{'"$OTOOLS"',"messages":[{"role":"user","content":"weather?"}]}'

# context-window: an input over N tokens is refused as each provider refuses it ("hello
# world" is 6 tokens)
CTX_OAI='j.error.message === "This model'"'"'s maximum context length is 5 tokens. However, your messages resulted in 6 tokens." &&
	 j.error.type === "invalid_request_error" && j.error.param === "messages" &&
	 j.error.code === "context_length_exceeded"'
t 'openai: /k/context-window=5 refuses 6 tokens' 400 "$CTX_OAI" \
	"$U/k/context-window=5/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: x-fake-context-window header' 400 "$CTX_OAI" \
	-H 'x-fake-context-window: 5' "$U/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: x_fake.context_window' 400 "$CTX_OAI" \
	"$U/v1/chat/completions" -d '{"model":"m","x_fake":{"context_window":5},'"$HELLO"'}'
t 'openai: a stream over the window is refused before it starts' 400 "$CTX_OAI" \
	"$U/k/context-window=5/v1/chat/completions" -d '{"model":"m","stream":true,'"$HELLO"'}'
t 'openai: an input at the window is answered' 200 'j.usage.prompt_tokens === 6' \
	"$U/k/context-window=6/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'openai: embeddings ignore the window' 200 'j.data.length === 1' \
	"$U/k/context-window=1/v1/embeddings" -d '{"model":"m","input":"hello world"}'
t 'openai: context-window=0 is a bad knob' 400 'j.error.message.includes("context-window")' \
	"$U/k/context-window=0/v1/chat/completions" -d '{"model":"m",'"$HELLO"'}'
t 'azure: /k/context-window=5 refuses in the OpenAI shape' 400 "$CTX_OAI" \
	"${Z[@]}" "$U/k/context-window=5/openai/deployments/d/chat/completions?$V" -d '{'"$HELLO"'}'
aerr 'context-window=5: prompt is too long' 400 invalid_request_error 'prompt is too long: 6 tokens > 5 maximum' \
	"${A[@]}" "$U/k/context-window=5/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
MSG='prompt is too long: 6 tokens > 5 maximum' t 'anthropic: the whole message is the provider'"'"'s' 400 \
	'j.error.message === process.env.MSG' \
	"${A[@]}" -H 'x-fake-context-window: 5' "$AM" -d '{"model":"m","max_tokens":9,"stream":true,'"$HELLO"'}'
aerr 'context-window counts the cache knobs' 400 invalid_request_error 'prompt is too long: 14 tokens > 13 maximum' \
	"${A[@]}" "$U/k/context-window=13,cache-read=5,cache-write=3/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
t 'anthropic: an input at the window is answered' 200 'j.usage.input_tokens === 6' \
	"${A[@]}" "$U/k/context-window=6/v1/messages" -d '{"model":"m","max_tokens":9,'"$HELLO"'}'
aerr 'an invalid request is refused as such, whatever the window' 400 invalid_request_error 'max_tokens' \
	"${A[@]}" "$U/k/context-window=1/v1/messages" -d '{"model":"m",'"$HELLO"'}'
MSG='The input token count (6) exceeds the maximum number of tokens allowed (5).'
t 'gemini: context-window=5: the input token count exceeds' 400 \
	'j.error.code === 400 && j.error.status === "INVALID_ARGUMENT" && j.error.message === process.env.MSG' \
	"${G[@]}" "$U/k/context-window=5/v1beta/models/gemini-x:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: a stream over the window is refused before it starts' 400 \
	'j.error.status === "INVALID_ARGUMENT" && j.error.message === process.env.MSG' \
	"${G[@]}" "$U/k/context-window=5/v1beta/models/gemini-x:streamGenerateContent?alt=sse" -d '{'"$GHELLO"'}'
MSG=
gerr 'context-window counts cachedContentTokenCount' 400 INVALID_ARGUMENT 'input token count (16) exceeds the maximum number of tokens allowed (15)' \
	"${G[@]}" -H 'x-fake-cache-read: 10' "$U/k/context-window=15/v1beta/models/gemini-x:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: an input at the window is answered' 200 'j.usageMetadata.promptTokenCount === 6' \
	"${G[@]}" "$U/k/context-window=6/v1beta/models/gemini-x:generateContent" -d '{'"$GHELLO"'}'
t 'gemini: embeddings ignore the window' 200 'j.embedding.values.length === 8' \
	"${G[@]}" "$U/k/context-window=1/v1beta/models/emb-x:embedContent" -d '{"content":{"parts":[{"text":"hello world"}]}}'

# /fake/stats counts the new routes, failures included
curl -s "$U/fake/stats" >"$TMP/s0"
export S0=$TMP/s0
curl -s -o /dev/null "$AM" -d '{}'
curl -s -o /dev/null "$GM:generateContent" -d '{}'
curl -s -o /dev/null "$GM:generateContent" -d '{}'
curl -s -o /dev/null "$AZ/chat/completions" -d '{}'
t 'stats: anthropic +1, gemini +2, azure +1, requests +4, chat +0' 200 \
	'(() => { const s0 = JSON.parse(require("fs").readFileSync(process.env.S0, "utf8"));
	 return j.anthropic - s0.anthropic === 1 && j.gemini - s0.gemini === 2 && j.azure - s0.azure === 1 &&
	 j.requests - s0.requests === 4 && j.chat === s0.chat && j.embeddings === s0.embeddings; })()' \
	"$U/fake/stats"
t 'health' 200 'b === "ok"' "$U/health"

echo "selftest: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
