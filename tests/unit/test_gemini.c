/* Unit tests for the Gemini kind: OpenAI requests translated to the Gemini
 * API (exact bodies and paths, refusals with their reasons), answers, stream
 * chunks and errors translated back, and the usage arithmetic (thoughts
 * added to the completion, cached tokens inside the prompt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "providers/provider.h"

static struct provider prov = { .kind = PROVIDER_GEMINI };

/* JSON written with ' for " (the tests' JSON holds no apostrophe), in one of
 * a few rotating buffers. */
static const char *J(const char *s)
{
	static char bufs[6][8192];
	static int k;
	char *b = bufs[k++ % 6];
	size_t i;

	assert_true(strlen(s) < sizeof(bufs[0]));
	for (i = 0; s[i]; i++)
		b[i] = s[i] == '\'' ? '"' : s[i];
	b[i] = '\0';
	return b;
}

static void expect_json(const char *got, const char *want)
{
	const char *w = J(want);

	if (!got || strcmp(got, w) != 0)
		fail_msg("got    %s\nwanted %s", got ? got : "(null)", w);
}

/* Prints tree (created set to 0 once checked to be now); caller frees. */
static char *printed(cJSON *tree)
{
	cJSON *created = cJSON_GetObjectItemCaseSensitive(tree, "created");

	if (created) {
		assert_true(cJSON_IsNumber(created));
		assert_true(created->valuedouble >= (double)time(NULL) - 5 &&
			    created->valuedouble <= (double)time(NULL) + 5);
		cJSON_SetNumberValue(created, 0);
	}
	return cJSON_PrintUnformatted(tree);
}

static struct prov_call call_of(const char *raw, cJSON *req, int stream, enum prov_endpoint ep,
				const char *model)
{
	struct prov_call c = { .prov = &prov,
			       .endpoint = ep,
			       .upstream_model = model,
			       .stream = stream,
			       .max_tokens = 4096,
			       .raw = raw,
			       .raw_len = strlen(raw),
			       .req = req,
			       .request_id = "req_t" };

	return c;
}

/* Builds raw (quoted with ') and checks the path and the exact body. */
static void build_ok(const char *raw_sq, int stream, enum prov_endpoint ep, const char *model,
		     const char *path, const char *want)
{
	const char *raw = J(raw_sq);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, stream, ep, model);
	struct prov_request rq;
	int rc;

	assert_non_null(req);
	rc = provider_gemini.build_request(&c, &rq);
	if (rc != TG_OK)
		fail_msg("refused (%d): %s", rc, rq.why);
	assert_string_equal(rq.path, path);
	assert_string_equal(rq.auth_prefix, "x-goog-api-key: ");
	assert_string_equal(rq.headers[0], "");
	assert_int_equal(rq.len, strlen(rq.body));
	expect_json(rq.body, want);
	prov_request_free(&rq);
	cJSON_Delete(req);
}

static void chat_ok(const char *raw, const char *want)
{
	build_ok(raw, 0, PROV_CHAT, "gemini-2.5-flash", "/models/gemini-2.5-flash:generateContent",
		 want);
}

/* A request build_request refuses: TG_EINVAL, why containing why, param. */
static void build_refused(const char *raw_sq, enum prov_endpoint ep, const char *model,
			  const char *why, const char *param)
{
	const char *raw = J(raw_sq);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 0, ep, model);
	struct prov_request rq;

	assert_non_null(req);
	assert_int_equal(provider_gemini.build_request(&c, &rq), TG_EINVAL);
	assert_null(rq.body);
	if (!strstr(rq.why, why))
		fail_msg("why \"%s\" lacks \"%s\"", rq.why, why);
	assert_string_equal(rq.param, param);
	cJSON_Delete(req);
}

static void test_ops(void **state)
{
	(void)state;
	assert_ptr_equal(provider_ops_for(PROVIDER_GEMINI), &provider_gemini);
	assert_string_equal(provider_gemini.kind, "gemini");
	assert_ptr_equal(provider_gemini.forward, prov_http_forward);
	assert_non_null(provider_gemini.stream_free);
	assert_non_null(provider_gemini.map_error);
}

static void test_system_instruction(void **state)
{
	(void)state;
	/* System and developer messages, wherever they stand, join into one
	 * systemInstruction; the cap the gateway reserved is sent. */
	chat_ok("{'model':'pub','messages':[{'role':'system','content':'Be brief.'},"
		"{'role':'user','content':'Hi'},"
		"{'role':'developer','content':[{'type':'text','text':'Use '},"
		"{'type':'text','text':'French.'}]},{'role':'system','content':''}]}",
		"{'contents':[{'role':'user','parts':[{'text':'Hi'}]}],"
		"'systemInstruction':{'parts':[{'text':'Be brief.\\n\\nUse French.'}]},"
		"'generationConfig':{'maxOutputTokens':4096}}");
	/* No system message: no systemInstruction. */
	chat_ok("{'model':'pub','messages':[{'role':'user','content':'Hi'}]}",
		"{'contents':[{'role':'user','parts':[{'text':'Hi'}]}],"
		"'generationConfig':{'maxOutputTokens':4096}}");
	build_refused("{'model':'pub','messages':[{'role':'system','content':[{'type':'image_url',"
		      "'image_url':{'url':'https://x/a.png'}}]}]}",
		      PROV_CHAT, "g", "may only hold text", "messages");
}

static void test_roles_and_merging(void **state)
{
	(void)state;
	/* assistant -> model; consecutive turns of a role merged; an empty
	 * assistant message sends nothing, so the user turns around it merge;
	 * other fields dropped. */
	chat_ok("{'model':'pub','stream_options':{'include_usage':true},'user':'u1','x_fake':1,"
		"'logprobs':true,'messages':[{'role':'user','content':'a'},"
		"{'role':'user','content':[{'type':'text','text':'b'}]},"
		"{'role':'assistant','content':'c'},"
		"{'role':'assistant','content':[{'type':'text','text':'d'}]},"
		"{'role':'user','content':'e'},{'role':'assistant','content':''},"
		"{'role':'user','content':'f'}]}",
		"{'contents':[{'role':'user','parts':[{'text':'a'},{'text':'b'}]},"
		"{'role':'model','parts':[{'text':'c'},{'text':'d'}]},"
		"{'role':'user','parts':[{'text':'e'},{'text':'f'}]}],"
		"'generationConfig':{'maxOutputTokens':4096}}");
	build_refused("{'model':'pub','messages':[{'role':'critic','content':'x'}]}", PROV_CHAT,
		      "g", "role 'critic'", "messages");
	build_refused("{'model':'pub','messages':[{'content':'x'}]}", PROV_CHAT, "g", "'role'",
		      "messages");
}

static void test_images(void **state)
{
	(void)state;
	chat_ok("{'model':'pub','messages':[{'role':'user','content':["
		"{'type':'text','text':'What?'},"
		"{'type':'image_url','image_url':{'url':'data:image/png;base64,iVBORw0KGgo='}},"
		"{'type':'image_url','image_url':{'url':'https://ex.com/a/cat.WEBP?x=1.png',"
		"'detail':'low'}},"
		"{'type':'image_url','image_url':{'url':'http://ex.com/pic'}},"
		"{'type':'image_url','image_url':{'url':'https://ex.com/b.gif#top'}}]}]}",
		"{'contents':[{'role':'user','parts':[{'text':'What?'},"
		"{'inlineData':{'mimeType':'image/png','data':'iVBORw0KGgo='}},"
		"{'fileData':{'fileUri':'https://ex.com/a/cat.WEBP?x=1.png',"
		"'mimeType':'image/webp'}},"
		"{'fileData':{'fileUri':'http://ex.com/pic','mimeType':'image/jpeg'}},"
		"{'fileData':{'fileUri':'https://ex.com/b.gif#top','mimeType':'image/gif'}}]}],"
		"'generationConfig':{'maxOutputTokens':4096}}");
	build_refused("{'model':'pub','messages':[{'role':'user','content':[{'type':'image_url',"
		      "'image_url':{'url':'ftp://ex.com/a.png'}}]}]}",
		      PROV_CHAT, "g", "http(s) URL", "messages");
	build_refused("{'model':'pub','messages':[{'role':'user','content':[{'type':'image_url',"
		      "'image_url':{'url':'data:image/png,rawbytes'}}]}]}",
		      PROV_CHAT, "g", "base64", "messages");
}

static void test_tools_and_choice(void **state)
{
	static const char tools[] =
		"'tools':[{'type':'function','function':{'name':'get_weather',"
		"'description':'Weather.','parameters':{'type':'object','properties':{'city':"
		"{'type':'string'}},'required':['city']},'strict':true}},"
		"{'type':'function','function':{'name':'now'}}]";
	static const char decls[] =
		"'tools':[{'functionDeclarations':[{'name':'get_weather','description':'Weather.',"
		"'parameters':{'type':'object','properties':{'city':{'type':'string'}},"
		"'required':['city']}},{'name':'now'}]}]";
	static const struct {
		const char *choice, *config;
	} cases[] = {
		{ "", "" },
		{ ",'tool_choice':'auto'",
		  ",'toolConfig':{'functionCallingConfig':{'mode':'AUTO'}}" },
		{ ",'tool_choice':'required'",
		  ",'toolConfig':{'functionCallingConfig':{'mode':'ANY'}}" },
		{ ",'tool_choice':'none'",
		  ",'toolConfig':{'functionCallingConfig':{'mode':'NONE'}}" },
		{ ",'tool_choice':{'type':'function','function':{'name':'now'}}",
		  ",'toolConfig':{'functionCallingConfig':{'mode':'ANY',"
		  "'allowedFunctionNames':['now']}}" },
	};
	char raw[2048], want[2048];
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		snprintf(raw, sizeof(raw),
			 "{'model':'pub','messages':[{'role':'user','content':'Hi'}],"
			 "'parallel_tool_calls':true,%s%s}",
			 tools, cases[i].choice);
		snprintf(want, sizeof(want),
			 "{'contents':[{'role':'user','parts':[{'text':'Hi'}]}],%s%s,"
			 "'generationConfig':{'maxOutputTokens':4096}}",
			 decls, cases[i].config);
		chat_ok(raw, want);
	}
	build_refused("{'model':'pub','messages':[{'role':'user','content':'Hi'}],"
		      "'tool_choice':'sometimes'}",
		      PROV_CHAT, "g", "auto, required, none", "tool_choice");
	build_refused("{'model':'pub','messages':[{'role':'user','content':'Hi'}],"
		      "'tools':[{'type':'custom','custom':{'name':'x'}}]}",
		      PROV_CHAT, "g", "function tools", "tools");
}

static void test_tool_calls_and_results(void **state)
{
	(void)state;
	/* Results answered out of order get the names of their own calls; the
	 * parallel results and the next user text go in one user turn. */
	chat_ok("{'model':'pub','messages':[{'role':'user','content':'Paris and Tokyo?'},"
		"{'role':'assistant','content':null,'tool_calls':["
		"{'id':'call_a','type':'function','function':{'name':'get_weather',"
		"'arguments':'{\\'city\\':\\'Paris\\'}'}},"
		"{'id':'call_b','type':'function','function':{'name':'get_time','arguments':''}}]},"
		"{'role':'tool','tool_call_id':'call_b','content':'noon'},"
		"{'role':'tool','tool_call_id':'call_a','content':'{\\'temp\\':21}'},"
		"{'role':'user','content':'Thanks'}]}",
		"{'contents':[{'role':'user','parts':[{'text':'Paris and Tokyo?'}]},"
		"{'role':'model','parts':[{'functionCall':{'name':'get_weather','args':"
		"{'city':'Paris'}}},{'functionCall':{'name':'get_time','args':{}}}]},"
		"{'role':'user','parts':[{'functionResponse':{'name':'get_time','response':"
		"{'content':'noon'}}},{'functionResponse':{'name':'get_weather','response':"
		"{'temp':21}}},{'text':'Thanks'}]}],"
		"'generationConfig':{'maxOutputTokens':4096}}");
	/* Text and a call in one assistant message; a JSON text that is not an
	 * object is sent as content. */
	chat_ok("{'model':'pub','messages':[{'role':'user','content':'q'},"
		"{'role':'assistant','content':'Let me look.','tool_calls':[{'id':'x1',"
		"'type':'function','function':{'name':'f','arguments':'{}'}}]},"
		"{'role':'tool','tool_call_id':'x1','content':[{'type':'text','text':'[1,2]'}]}]}",
		"{'contents':[{'role':'user','parts':[{'text':'q'}]},"
		"{'role':'model','parts':[{'text':'Let me look.'},"
		"{'functionCall':{'name':'f','args':{}}}]},"
		"{'role':'user','parts':[{'functionResponse':{'name':'f','response':"
		"{'content':'[1,2]'}}}]}],'generationConfig':{'maxOutputTokens':4096}}");
	build_refused("{'model':'pub','messages':[{'role':'user','content':'q'},"
		      "{'role':'assistant','tool_calls':[{'id':'c1','type':'function',"
		      "'function':{'name':'f','arguments':'{}'}}]},"
		      "{'role':'tool','tool_call_id':'call_z','content':'x'}]}",
		      PROV_CHAT, "g", "'call_z' answers no tool call", "messages");
	/* A result before its call does not count. */
	build_refused(
		"{'model':'pub','messages':[{'role':'tool','tool_call_id':'c1','content':'x'},"
		"{'role':'assistant','tool_calls':[{'id':'c1','type':'function',"
		"'function':{'name':'f','arguments':'{}'}}]}]}",
		PROV_CHAT, "g", "'c1' answers no tool call", "messages");
	build_refused("{'model':'pub','messages':[{'role':'user','content':'q'},"
		      "{'role':'assistant','tool_calls':[{'id':'c1','type':'function',"
		      "'function':{'name':'f','arguments':'{oops'}}]}]}",
		      PROV_CHAT, "g", "of tool call 'f' are not a JSON object", "messages");
}

static void test_generation_config(void **state)
{
	(void)state;
	/* max_completion_tokens wins over max_tokens; json_schema's schema goes
	 * as responseJsonSchema. */
	chat_ok("{'model':'pub','messages':[{'role':'user','content':'x'}],'temperature':0.5,"
		"'top_p':0.9,'max_tokens':100,'max_completion_tokens':50,'stop':['END','STOP'],"
		"'n':2,'seed':7,'presence_penalty':0.25,'frequency_penalty':-0.5,"
		"'response_format':{'type':'json_schema','json_schema':{'name':'r','strict':true,"
		"'schema':{'type':'object','properties':{'a':{'type':'integer'}}}}},"
		"'logit_bias':{},'top_logprobs':2}",
		"{'contents':[{'role':'user','parts':[{'text':'x'}]}],'generationConfig':{"
		"'temperature':0.5,'topP':0.9,'maxOutputTokens':50,'stopSequences':['END','STOP'],"
		"'candidateCount':2,'seed':7,'presencePenalty':0.25,'frequencyPenalty':-0.5,"
		"'responseMimeType':'application/json','responseJsonSchema':{'type':'object',"
		"'properties':{'a':{'type':'integer'}}}}}");
	chat_ok("{'model':'pub','messages':[{'role':'user','content':'x'}],'max_tokens':100,"
		"'stop':'END','response_format':{'type':'json_object'}}",
		"{'contents':[{'role':'user','parts':[{'text':'x'}]}],'generationConfig':{"
		"'maxOutputTokens':100,'stopSequences':['END'],"
		"'responseMimeType':'application/json'}}");
	chat_ok("{'model':'pub','messages':[{'role':'user','content':'x'}],'max_tokens':null,"
		"'response_format':{'type':'text'}}",
		"{'contents':[{'role':'user','parts':[{'text':'x'}]}],'generationConfig':{"
		"'maxOutputTokens':4096}}");
	build_refused("{'model':'pub','messages':[{'role':'user','content':'x'}],"
		      "'response_format':{'type':'json_schema','json_schema':{'name':'r'}}}",
		      PROV_CHAT, "g", "json_schema.schema", "response_format");
}

static void test_stream_path(void **state)
{
	(void)state;
	build_ok("{'model':'pub','stream':true,'stream_options':{'include_usage':true},"
		 "'messages':[{'role':'user','content':'Hi'}]}",
		 1, PROV_CHAT, "gemini-2.0-flash-lite",
		 "/models/gemini-2.0-flash-lite:streamGenerateContent?alt=sse",
		 "{'contents':[{'role':'user','parts':[{'text':'Hi'}]}],"
		 "'generationConfig':{'maxOutputTokens':4096}}");
}

static void test_embeddings_body(void **state)
{
	(void)state;
	build_ok("{'model':'e','input':['hello','world'],'dimensions':256,"
		 "'encoding_format':'float','user':'u'}",
		 0, PROV_EMBEDDINGS, "text-embedding-004",
		 "/models/text-embedding-004:batchEmbedContents",
		 "{'requests':[{'model':'models/text-embedding-004','content':{'parts':"
		 "[{'text':'hello'}]},'outputDimensionality':256},"
		 "{'model':'models/text-embedding-004','content':{'parts':[{'text':'world'}]},"
		 "'outputDimensionality':256}]}");
	build_ok("{'model':'e','input':'one'}", 0, PROV_EMBEDDINGS, "gemini-embedding-001",
		 "/models/gemini-embedding-001:batchEmbedContents",
		 "{'requests':[{'model':'models/gemini-embedding-001','content':{'parts':"
		 "[{'text':'one'}]}}]}");
}

static void test_refusals(void **state)
{
	static const char *const bad_models[] = { "models/gemini-2.5-flash", "gem ini",
						  "gemini?alt=json", "" };
	size_t i;

	(void)state;
	build_refused("{'model':'e','input':[[1,2,3]]}", PROV_EMBEDDINGS, "text-embedding-004",
		      "Gemini embeddings take text input, not token arrays.", "input");
	build_refused("{'model':'e','input':[1,2,3]}", PROV_EMBEDDINGS, "text-embedding-004",
		      "Gemini embeddings take text input, not token arrays.", "input");
	for (i = 0; i < TG_ARRAY_LEN(bad_models); i++) {
		build_refused("{'model':'pub','messages':[{'role':'user','content':'x'}]}",
			      PROV_CHAT, bad_models[i], "may only hold letters", "model");
		build_refused("{'model':'e','input':'x'}", PROV_EMBEDDINGS, bad_models[i],
			      "may only hold letters", "model");
	}
}

/* parse_response on body (quoted with '): the return code, *answer printed
 * (created checked and zeroed) into *text. */
static int parse(const char *req_sq, enum prov_endpoint ep, const char *body_sq, char **text,
		 struct prov_usage *u)
{
	const char *raw = J(req_sq), *body = J(body_sq);
	cJSON *req = cJSON_Parse(raw), *answer = NULL;
	struct prov_call c = call_of(raw, req, 0, ep, "gemini-2.5-flash");
	int flags = -1, rc;

	assert_non_null(req);
	rc = provider_gemini.parse_response(&c, body, strlen(body), &answer, &flags, u);
	assert_int_equal(flags, 0);
	*text = answer ? printed(answer) : NULL;
	cJSON_Delete(answer);
	cJSON_Delete(req);
	return rc;
}

static const char chat_req[] = "{'model':'pub','messages':[{'role':'user','content':'Hi'}]}";

static void test_answer_text_usage(void **state)
{
	struct prov_usage u = { 0 };
	char *text;

	(void)state;
	assert_int_equal(
		parse(chat_req, PROV_CHAT,
		      "{'candidates':[{'content':{'role':'model','parts':[{'text':'Let me think',"
		      "'thought':true},{'text':'Hello'},{'text':' there'}]},'finishReason':'STOP',"
		      "'index':0}],'usageMetadata':{'promptTokenCount':100,"
		      "'candidatesTokenCount':20,'totalTokenCount':150,"
		      "'cachedContentTokenCount':40,'thoughtsTokenCount':30},"
		      "'modelVersion':'gemini-2.5-flash-001','responseId':'abc123'}",
		      &text, &u),
		TG_OK);
	expect_json(text,
		    "{'id':'chatcmpl-abc123','object':'chat.completion','created':0,"
		    "'model':'gemini-2.5-flash-001','choices':[{'index':0,'message':{"
		    "'role':'assistant','content':'Hello there'},'logprobs':null,"
		    "'finish_reason':'stop'}],'usage':{'prompt_tokens':100,"
		    "'completion_tokens':50,'total_tokens':150,'prompt_tokens_details':"
		    "{'cached_tokens':40},'completion_tokens_details':{'reasoning_tokens':30}}}");
	cJSON_free(text);
	assert_int_equal(u.have, 1);
	assert_int_equal(u.prompt, 100);
	assert_int_equal(u.cached, 40);
	assert_int_equal(u.completion, 50);
	assert_int_equal(u.reasoning, 30);
	assert_int_equal(u.cache_write, 0);
}

static void test_answer_function_calls(void **state)
{
	struct prov_usage u = { 0 };
	cJSON *a;
	char *text;

	(void)state;
	assert_int_equal(
		parse(chat_req, PROV_CHAT,
		      "{'candidates':[{'content':{'role':'model','parts':[{'functionCall':{"
		      "'id':'fc-1','name':'get_weather','args':{'city':'Paris'}}},"
		      "{'functionCall':{'name':'get_time','args':{}}},"
		      "{'functionCall':{'name':'ping'}}]},'finishReason':'STOP'}]}",
		      &text, &u),
		TG_OK);
	/* No responseId: a random id; no modelVersion: the upstream name. */
	a = cJSON_Parse(text);
	cJSON_free(text);
	assert_non_null(a);
	text = cJSON_GetObjectItemCaseSensitive(a, "id")->valuestring;
	assert_int_equal(strncmp(text, "chatcmpl-", 9), 0);
	assert_int_equal(strlen(text), 9 + 24);
	cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(a, "id"), "X");
	text = cJSON_PrintUnformatted(a);
	expect_json(text,
		    "{'id':'X','object':'chat.completion','created':0,'model':'gemini-2.5-flash',"
		    "'choices':[{'index':0,'message':{'role':'assistant','content':null,"
		    "'tool_calls':[{'id':'fc-1','type':'function','function':{'name':'get_weather',"
		    "'arguments':'{\\'city\\':\\'Paris\\'}'}},{'id':'call_1','type':'function',"
		    "'function':{'name':'get_time','arguments':'{}'}},{'id':'call_2',"
		    "'type':'function','function':{'name':'ping','arguments':'{}'}}]},"
		    "'logprobs':null,'finish_reason':'tool_calls'}]}");
	cJSON_free(text);
	cJSON_Delete(a);
	assert_int_equal(u.have, 0); /* no usageMetadata */
}

/* The finish_reason of choice i in the printed answer text. */
static void expect_finish(const char *text, int i, const char *finish, const char *content)
{
	cJSON *a = cJSON_Parse(text);
	cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "choices"), i);
	cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
	cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");

	assert_non_null(ch);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(ch, "index")->valuedouble, i);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(ch, "finish_reason")->valuestring,
			    finish);
	if (content)
		assert_string_equal(cJSON_GetStringValue(c), content);
	else
		assert_true(cJSON_IsNull(c));
	cJSON_Delete(a);
}

static void test_answer_finish_reasons(void **state)
{
	static const struct {
		const char *reason, *finish;
	} cases[] = {
		{ "MAX_TOKENS", "length" },
		{ "SAFETY", "content_filter" },
		{ "RECITATION", "content_filter" },
		{ "PROHIBITED_CONTENT", "content_filter" },
		{ "SPII", "content_filter" },
		{ "BLOCKLIST", "content_filter" },
		{ "IMAGE_SAFETY", "content_filter" },
		{ "OTHER", "stop" },
		{ "MALFORMED_FUNCTION_CALL", "stop" },
	};
	struct prov_usage u = { 0 };
	char body[512], *text;
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		/* Two candidates: the second is cut or filtered with no content. */
		snprintf(body, sizeof(body),
			 "{'candidates':[{'content':{'parts':[{'text':'one two'}]},"
			 "'finishReason':'STOP','index':0},{'finishReason':'%s','index':1}]}",
			 cases[i].reason);
		assert_int_equal(parse(chat_req, PROV_CHAT, body, &text, &u), TG_OK);
		expect_finish(text, 0, "stop", "one two");
		expect_finish(text, 1, cases[i].finish, NULL);
		cJSON_free(text);
	}
	assert_int_equal(parse(chat_req, PROV_CHAT,
			       "{'candidates':[{'content':{'parts':[{'text':'cut'}]},"
			       "'finishReason':'MAX_TOKENS'}]}",
			       &text, &u),
			 TG_OK);
	expect_finish(text, 0, "length", "cut");
	cJSON_free(text);
}

static void test_answer_prompt_blocked(void **state)
{
	struct prov_usage u = { 0 };
	char *text;

	(void)state;
	assert_int_equal(parse(chat_req, PROV_CHAT,
			       "{'promptFeedback':{'blockReason':'PROHIBITED_CONTENT'},"
			       "'usageMetadata':{'promptTokenCount':12,'totalTokenCount':12}}",
			       &text, &u),
			 TG_EPERM);
	expect_json(text, "{'error':{'message':'Gemini blocked the prompt (PROHIBITED_CONTENT).',"
			  "'type':'invalid_request_error','param':null,'code':'content_filter'}}");
	cJSON_free(text);
	assert_int_equal(u.have, 1);
	assert_int_equal(u.prompt, 12);
	assert_int_equal(u.completion, 0);
}

static void test_answer_embeddings(void **state)
{
	struct prov_usage u = { 0 };
	char *text;

	(void)state;
	/* ceil(5/4) + ceil(2/4) = 3 estimated tokens; usage not reported. */
	assert_int_equal(parse("{'model':'e','input':['abcde','xy']}", PROV_EMBEDDINGS,
			       "{'embeddings':[{'values':[0.5,-1]},{'values':[0.25,3]}]}", &text,
			       &u),
			 TG_OK);
	expect_json(text, "{'object':'list','data':[{'object':'embedding','index':0,"
			  "'embedding':[0.5,-1]},{'object':'embedding','index':1,"
			  "'embedding':[0.25,3]}],'model':'gemini-2.5-flash','usage':{"
			  "'prompt_tokens':3,'total_tokens':3}}");
	cJSON_free(text);
	assert_int_equal(u.have, 0);
	/* base64: little-endian float32s. */
	assert_int_equal(parse("{'model':'e','input':'abcdefghi','encoding_format':'base64'}",
			       PROV_EMBEDDINGS,
			       "{'embeddings':[{'values':[1,-2,0.5,0.1]},{'values':[0.25,3]}]}",
			       &text, &u),
			 TG_OK);
	expect_json(text, "{'object':'list','data':[{'object':'embedding','index':0,"
			  "'embedding':'AACAPwAAAMAAAAA/zczMPQ=='},{'object':'embedding','index':1,"
			  "'embedding':'AACAPgAAQEA='}],'model':'gemini-2.5-flash','usage':{"
			  "'prompt_tokens':3,'total_tokens':3}}");
	cJSON_free(text);
	assert_int_equal(u.have, 0);
	assert_int_equal(parse("{'model':'e','input':'x'}", PROV_EMBEDDINGS,
			       "{'embeddings':[{'values':['x']}]}", &text, &u),
			 TG_EINVAL);
	assert_null(text);
}

static void test_answer_not_object(void **state)
{
	static const char *const bodies[] = { "[1]", "oops", "", "'text'", "{'a':1" };
	struct prov_usage u = { 0 };
	char *text;
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(bodies); i++) {
		assert_int_equal(parse(chat_req, PROV_CHAT, bodies[i], &text, &u), TG_EINVAL);
		assert_null(text);
		assert_int_equal(parse("{'model':'e','input':'x'}", PROV_EMBEDDINGS, bodies[i],
				       &text, &u),
				 TG_EINVAL);
		assert_null(text);
	}
	assert_int_equal(u.have, 0);
}

static void test_extract_usage(void **state)
{
	static const struct {
		const char *json;
		int have;
		int64_t prompt, cached, completion, reasoning;
	} cases[] = {
		{ "{'usageMetadata':{'promptTokenCount':10,'candidatesTokenCount':5}}", 1, 10, 0, 5,
		  0 },
		{ "{'usageMetadata':{'promptTokenCount':10,'candidatesTokenCount':5,"
		  "'thoughtsTokenCount':7,'cachedContentTokenCount':4}}",
		  1, 10, 4, 12, 7 },
		/* cached above the prompt is not believed */
		{ "{'usageMetadata':{'promptTokenCount':3,'cachedContentTokenCount':9}}", 1, 3, 0,
		  0, 0 },
		{ "{'usageMetadata':{'candidatesTokenCount':5}}", 0, 0, 0, 0, 0 },
		{ "{'usageMetadata':{'promptTokenCount':-1}}", 0, 0, 0, 0, 0 },
		{ "{'usage':{'prompt_tokens':3}}", 0, 0, 0, 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		cJSON *o = cJSON_Parse(J(cases[i].json));
		struct prov_usage u = { 0 };

		assert_non_null(o);
		assert_int_equal(provider_gemini.extract_usage(o, &u), cases[i].have);
		assert_int_equal(u.have, cases[i].have);
		assert_int_equal(u.prompt, cases[i].prompt);
		assert_int_equal(u.cached, cases[i].cached);
		assert_int_equal(u.completion, cases[i].completion);
		assert_int_equal(u.reasoning, cases[i].reasoning);
		cJSON_Delete(o);
	}
}

/* --- streams --- */

struct rec {
	int n, stop_at;
	double created;
	char *out[16];
};

static int record(void *ud, cJSON *chunk, const char *data, size_t len, int flags)
{
	struct rec *r = ud;
	cJSON *created = cJSON_GetObjectItemCaseSensitive(chunk, "created");

	assert_non_null(chunk);
	assert_null(data);
	assert_int_equal(len, 0);
	assert_int_equal(flags, 0);
	assert_true(r->n < 16);
	/* Every chunk of a stream has the same created. */
	if (created && r->created)
		assert_true(created->valuedouble == r->created);
	else if (created)
		r->created = created->valuedouble;
	r->out[r->n++] = printed(chunk);
	cJSON_Delete(chunk);
	return r->stop_at && r->n >= r->stop_at ? 7 : 0;
}

static void rec_free(struct rec *r)
{
	int i;

	for (i = 0; i < r->n; i++)
		cJSON_free(r->out[i]);
	r->n = 0;
}

static int feed(struct prov_stream *s, const char *data_sq, struct rec *r)
{
	const char *data = J(data_sq);

	return provider_gemini.parse_stream_event(s, NULL, data, strlen(data), record, r);
}

#define CHUNK_HEAD                                                          \
	"{'id':'chatcmpl-r1','object':'chat.completion.chunk','created':0," \
	"'model':'gemini-2.5-flash-002',"

static void test_stream_text(void **state)
{
	const char *raw = J(chat_req);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 1, PROV_CHAT, "gemini-2.5-flash");
	struct prov_usage u = { 0 };
	struct prov_stream s = { .call = &c, .usage = &u };
	struct rec r = { 0 };

	(void)state;
	assert_int_equal(feed(&s,
			      "{'candidates':[{'content':{'role':'model','parts':[{'text':'Hel'}]},"
			      "'index':0}],'usageMetadata':{'promptTokenCount':10,"
			      "'candidatesTokenCount':1,'totalTokenCount':11},"
			      "'modelVersion':'gemini-2.5-flash-002','responseId':'r1'}",
			      &r),
			 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(s.done, 0);
	assert_int_equal(u.have, 1);
	assert_int_equal(u.completion, 1);
	assert_non_null(s.state);
	assert_int_equal(
		feed(&s,
		     "{'candidates':[{'content':{'role':'model','parts':[{'text':'hmm',"
		     "'thought':true},{'text':'lo'}]},'index':0}],'usageMetadata':{"
		     "'promptTokenCount':10,'candidatesTokenCount':2,'totalTokenCount':12},"
		     "'modelVersion':'gemini-2.5-flash-002','responseId':'r1'}",
		     &r),
		0);
	assert_int_equal(r.n, 3);
	assert_int_equal(s.done, 0);
	assert_int_equal(
		feed(&s,
		     "{'candidates':[{'content':{'role':'model','parts':[{'text':'!'}]},"
		     "'finishReason':'STOP','index':0}],'usageMetadata':{"
		     "'promptTokenCount':10,'candidatesTokenCount':3,'thoughtsTokenCount':5,"
		     "'cachedContentTokenCount':4,'totalTokenCount':18},"
		     "'modelVersion':'gemini-2.5-flash-002','responseId':'r1'}",
		     &r),
		0);
	assert_int_equal(r.n, 6);
	expect_json(r.out[0], CHUNK_HEAD "'choices':[{'index':0,'delta':{'role':'assistant',"
					 "'content':''},'finish_reason':null}]}");
	expect_json(r.out[1], CHUNK_HEAD "'choices':[{'index':0,'delta':{'content':'Hel'},"
					 "'finish_reason':null}]}");
	expect_json(r.out[2], CHUNK_HEAD "'choices':[{'index':0,'delta':{'content':'lo'},"
					 "'finish_reason':null}]}");
	expect_json(r.out[3], CHUNK_HEAD "'choices':[{'index':0,'delta':{'content':'!'},"
					 "'finish_reason':null}]}");
	expect_json(r.out[4], CHUNK_HEAD "'choices':[{'index':0,'delta':{},"
					 "'finish_reason':'stop'}]}");
	expect_json(r.out[5], CHUNK_HEAD "'choices':[],'usage':{'prompt_tokens':10,"
					 "'completion_tokens':8,'total_tokens':18,"
					 "'prompt_tokens_details':{'cached_tokens':4},"
					 "'completion_tokens_details':{'reasoning_tokens':5}}}");
	assert_int_equal(s.done, 1);
	assert_int_equal(u.have, 1);
	assert_int_equal(u.prompt, 10);
	assert_int_equal(u.cached, 4);
	assert_int_equal(u.completion, 8);
	assert_int_equal(u.reasoning, 5);
	provider_gemini.stream_free(&s);
	assert_null(s.state);
	rec_free(&r);
	cJSON_Delete(req);
}

static void test_stream_function_call(void **state)
{
	const char *raw = J(chat_req);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 1, PROV_CHAT, "gemini-2.5-flash");
	struct prov_usage u = { 0 };
	struct prov_stream s = { .call = &c, .usage = &u };
	struct rec r = { 0 };

	(void)state;
	assert_int_equal(feed(&s,
			      "{'candidates':[{'content':{'role':'model','parts':[{'functionCall':{"
			      "'name':'get_weather','args':{'city':'Paris'}}},{'functionCall':{"
			      "'id':'fc-9','name':'get_time','args':{}}}]},'finishReason':'STOP',"
			      "'index':0}],'usageMetadata':{'promptTokenCount':20,"
			      "'candidatesTokenCount':9,'totalTokenCount':29},"
			      "'modelVersion':'gemini-2.5-flash-002','responseId':'r1'}",
			      &r),
			 0);
	assert_int_equal(r.n, 5);
	expect_json(r.out[0], CHUNK_HEAD "'choices':[{'index':0,'delta':{'role':'assistant',"
					 "'content':''},'finish_reason':null}]}");
	expect_json(r.out[1],
		    CHUNK_HEAD "'choices':[{'index':0,'delta':{'tool_calls':[{"
			       "'index':0,'id':'call_0','type':'function','function':{"
			       "'name':'get_weather','arguments':'{\\'city\\':\\'Paris\\'}'"
			       "}}]},'finish_reason':null}]}");
	expect_json(r.out[2], CHUNK_HEAD "'choices':[{'index':0,'delta':{'tool_calls':[{"
					 "'index':1,'id':'fc-9','type':'function','function':{"
					 "'name':'get_time','arguments':'{}'}}]},"
					 "'finish_reason':null}]}");
	expect_json(r.out[3], CHUNK_HEAD "'choices':[{'index':0,'delta':{},"
					 "'finish_reason':'tool_calls'}]}");
	expect_json(r.out[4], CHUNK_HEAD "'choices':[],'usage':{'prompt_tokens':20,"
					 "'completion_tokens':9,'total_tokens':29,"
					 "'prompt_tokens_details':{'cached_tokens':0},"
					 "'completion_tokens_details':{'reasoning_tokens':0}}}");
	assert_int_equal(s.done, 1);
	assert_int_equal(u.completion, 9);
	provider_gemini.stream_free(&s);
	rec_free(&r);
	cJSON_Delete(req);
}

static void test_stream_error_block_and_stop(void **state)
{
	const char *raw = J(chat_req);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 1, PROV_CHAT, "gemini-2.5-flash");
	struct prov_usage u = { 0 };
	struct prov_stream s = { .call = &c, .usage = &u };
	struct rec r = { 0 };

	(void)state;
	/* Not JSON: nothing for the client. */
	assert_int_equal(feed(&s, "keep-alive", &r), 0);
	assert_int_equal(r.n, 0);
	assert_int_equal(feed(&s,
			      "{'error':{'code':429,'message':'Quota exceeded.',"
			      "'status':'RESOURCE_EXHAUSTED'}}",
			      &r),
			 0);
	assert_int_equal(r.n, 1);
	expect_json(r.out[0], "{'error':{'message':'Gemini: Quota exceeded.',"
			      "'type':'rate_limit_exceeded','code':'resource_exhausted',"
			      "'param':null}}");
	assert_int_equal(s.done, 0);
	rec_free(&r);
	provider_gemini.stream_free(&s);

	/* A prompt blocked before a word: the stream ends filtered. */
	assert_int_equal(feed(&s,
			      "{'promptFeedback':{'blockReason':'SAFETY'},'usageMetadata':{"
			      "'promptTokenCount':5,'totalTokenCount':5},'responseId':'r1',"
			      "'modelVersion':'gemini-2.5-flash-002'}",
			      &r),
			 0);
	assert_int_equal(r.n, 3);
	expect_json(r.out[1], CHUNK_HEAD "'choices':[{'index':0,'delta':{},"
					 "'finish_reason':'content_filter'}]}");
	assert_int_equal(s.done, 1);
	assert_int_equal(u.prompt, 5);
	rec_free(&r);
	provider_gemini.stream_free(&s);
	s.done = 0;

	/* emit's non-zero comes back at once: no further chunk is made. */
	r.stop_at = 1;
	assert_int_equal(feed(&s,
			      "{'candidates':[{'content':{'parts':[{'text':'a'}]},"
			      "'finishReason':'STOP'}],'responseId':'r1'}",
			      &r),
			 7);
	assert_int_equal(r.n, 1);
	assert_int_equal(s.done, 0);
	rec_free(&r);
	provider_gemini.stream_free(&s);
	cJSON_Delete(req);
}

/* --- errors --- */

static void map(int status, const char *body, size_t n, struct prov_error *e)
{
	struct prov_call c = call_of("{}", NULL, 0, PROV_CHAT, "gemini-2.5-flash");

	memset(e, 0x55, sizeof(*e));
	provider_gemini.map_error(&c, status, body, n, e);
}

static void expect_error(int status, const char *body_sq, int want_status, const char *type,
			 const char *code, const char *message)
{
	const char *body = J(body_sq);
	struct prov_error e;

	map(status, body, strlen(body), &e);
	assert_int_equal(e.status, want_status);
	assert_string_equal(e.type, type);
	assert_string_equal(e.code, code);
	assert_string_equal(e.message, message);
}

static void test_map_error(void **state)
{
	static const char cut[] =
		"{'error':{'code':400,'message':'x','status':'INVALID_ARGUMENT'}}";
	char big[1200];
	struct prov_error e;
	size_t n;
	int i;

	(void)state;
	expect_error(429,
		     "{'error':{'code':429,'message':'Resource has been exhausted (e.g. check "
		     "quota).','status':'RESOURCE_EXHAUSTED','details':[]}}",
		     429, "rate_limit_exceeded", "resource_exhausted",
		     "Gemini: Resource has been exhausted (e.g. check quota).");
	expect_error(503,
		     "{'error':{'code':503,'message':'The model is overloaded.',"
		     "'status':'UNAVAILABLE'}}",
		     503, "server_error", "unavailable", "Gemini: The model is overloaded.");
	expect_error(500,
		     "{'error':{'code':500,'message':'An internal error has occurred.',"
		     "'status':'INTERNAL'}}",
		     502, "server_error", "internal", "Gemini: An internal error has occurred.");
	expect_error(504,
		     "{'error':{'code':504,'message':'Deadline.','status':'DEADLINE_EXCEEDED'}}",
		     504, "server_error", "deadline_exceeded", "Gemini: Deadline.");
	expect_error(400,
		     "{'error':{'code':400,'message':'The input token count (1200000) exceeds the "
		     "maximum number of tokens allowed (1048576).','status':'INVALID_ARGUMENT'}}",
		     400, "invalid_request_error", "context_length_exceeded",
		     "Gemini: The input token count (1200000) exceeds the maximum number of tokens "
		     "allowed (1048576).");
	expect_error(400,
		     "{'error':{'code':400,'message':'Invalid JSON payload received.',"
		     "'status':'INVALID_ARGUMENT'}}",
		     400, "invalid_request_error", "invalid_argument",
		     "Gemini: Invalid JSON payload received.");
	expect_error(403,
		     "{'error':{'code':403,'message':'Permission denied.',"
		     "'status':'PERMISSION_DENIED'}}",
		     403, "permission_denied", "permission_denied", "Gemini: Permission denied.");
	expect_error(502, "<html>Bad Gateway</html>", 502, "server_error", "",
		     "Gemini answered HTTP 502.");
	expect_error(404, "", 404, "not_found_error", "", "Gemini answered HTTP 404.");
	/* The body is n bytes, not up to a NUL: cut short, it is not JSON. */
	map(400, J(cut), strlen(cut) - 2, &e);
	assert_string_equal(e.message, "Gemini answered HTTP 400.");
	assert_string_equal(e.code, "");
	/* A long message is cut at a character boundary. */
	n = (size_t)snprintf(big, sizeof(big), "%s", J("{'error':{'code':400,'message':'"));
	for (i = 0; i < 350; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "\xc3\xa9");
	snprintf(big + n, sizeof(big) - n, "%s", J("','status':'INVALID_ARGUMENT'}}"));
	map(400, big, strlen(big), &e);
	assert_int_equal(strncmp(e.message, "Gemini: \xc3\xa9", 10), 0);
	assert_true(strlen(e.message) < sizeof(e.message));
	assert_true(strlen(e.message) >= sizeof(e.message) - 3);
	assert_int_equal(utf8_valid_prefix(e.message, strlen(e.message)), strlen(e.message));
}

/* --- out of memory --- */

static long fail_at = -1, allocs;

static void *failing_malloc(size_t n)
{
	if (fail_at >= 0 && allocs++ >= fail_at)
		return NULL;
	return malloc(n);
}

/* cJSON's allocations fail from the fail_at-th on (-1: never). */
static void cjson_failing(long at)
{
	cJSON_Hooks h = { at >= 0 ? failing_malloc : malloc, free };

	fail_at = at;
	allocs = 0;
	cJSON_InitHooks(&h);
}

static int drop(void *ud, cJSON *chunk, const char *data, size_t len, int flags)
{
	(void)data;
	(void)len;
	(void)flags;
	(*(int *)ud)++;
	cJSON_Delete(chunk);
	return 0;
}

/* Every cJSON allocation of a build, a parse and a stream event may fail:
 * each gives up cleanly (no crash; no leak under the sanitizer) until all
 * succeed. */
static void test_out_of_memory(void **state)
{
	const char *raw = J("{'model':'pub','messages':[{'role':'system','content':'S'},"
			    "{'role':'user','content':[{'type':'text','text':'q'},"
			    "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAAA'}},"
			    "{'type':'image_url','image_url':{'url':'https://e.com/a.png'}}]},"
			    "{'role':'assistant','content':'c','tool_calls':[{'id':'c1',"
			    "'type':'function','function':{'name':'f','arguments':'{}'}}]},"
			    "{'role':'tool','tool_call_id':'c1','content':'{}'}],"
			    "'tools':[{'type':'function','function':{'name':'f','parameters':{}}}],"
			    "'tool_choice':{'type':'function','function':{'name':'f'}},"
			    "'stop':['x'],'temperature':1,'response_format':{'type':'json_schema',"
			    "'json_schema':{'schema':{'type':'object'}}}}");
	const char *answer = J("{'candidates':[{'content':{'parts':[{'text':'a'},"
			       "{'functionCall':{'name':'f','args':{'k':1}}}]},"
			       "'finishReason':'STOP'}],'usageMetadata':{'promptTokenCount':3,"
			       "'candidatesTokenCount':2},'responseId':'r'}");
	cJSON *req = cJSON_Parse(raw), *out;
	struct prov_call c = call_of(raw, req, 1, PROV_CHAT, "g");
	struct prov_request rq;
	struct prov_usage u;
	long at;
	int rc, flags, ok = 0, n;

	(void)state;
	assert_non_null(req);
	for (at = 0; at < 100000 && ok < 3; at++) {
		struct prov_stream s = { .call = &c, .usage = &u };

		ok = 0;
		cjson_failing(at);
		rc = provider_gemini.build_request(&c, &rq);
		cjson_failing(-1);
		/* An argument text that cannot be parsed reads as not JSON. */
		assert_true(rc == TG_OK || rc == TG_ENOMEM || rc == TG_EINVAL);
		if (rc == TG_OK) {
			ok++;
			prov_request_free(&rq);
		}
		out = NULL;
		cjson_failing(at);
		rc = provider_gemini.parse_response(&c, answer, strlen(answer), &out, &flags, &u);
		cjson_failing(-1);
		assert_true(rc == TG_OK || rc == TG_ENOMEM || rc == TG_EINVAL);
		assert_true((rc == TG_OK) == (out != NULL));
		ok += rc == TG_OK;
		cJSON_Delete(out);
		n = 0;
		cjson_failing(at);
		rc = provider_gemini.parse_stream_event(&s, NULL, answer, strlen(answer), drop, &n);
		cjson_failing(-1);
		assert_true(rc == 0 || rc == TG_ENOMEM);
		ok += rc == 0 && n == 5 && s.done;
		provider_gemini.stream_free(&s);
	}
	assert_int_equal(ok, 3);
	assert_true(at > 20); /* the early failures were seen */
	cJSON_Delete(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_system_instruction),
		cmocka_unit_test(test_roles_and_merging),
		cmocka_unit_test(test_images),
		cmocka_unit_test(test_tools_and_choice),
		cmocka_unit_test(test_tool_calls_and_results),
		cmocka_unit_test(test_generation_config),
		cmocka_unit_test(test_stream_path),
		cmocka_unit_test(test_embeddings_body),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_answer_text_usage),
		cmocka_unit_test(test_answer_function_calls),
		cmocka_unit_test(test_answer_finish_reasons),
		cmocka_unit_test(test_answer_prompt_blocked),
		cmocka_unit_test(test_answer_embeddings),
		cmocka_unit_test(test_answer_not_object),
		cmocka_unit_test(test_extract_usage),
		cmocka_unit_test(test_stream_text),
		cmocka_unit_test(test_stream_function_call),
		cmocka_unit_test(test_stream_error_block_and_stop),
		cmocka_unit_test(test_map_error),
		cmocka_unit_test(test_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
