/* Unit tests for the Anthropic kind: OpenAI requests translated to the
 * Messages API (exact bodies, headers and refusals with their reasons),
 * answers, stream events and errors translated back, JSON mode through a
 * forced tool, and the usage arithmetic (cache reads and writes added to the
 * prompt). */
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

static struct provider prov = { .kind = PROVIDER_ANTHROPIC };

/* JSON written with ' for " (the tests' JSON holds no apostrophe), in one of
 * a few rotating buffers. */
static const char *J(const char *s)
{
	static char bufs[8][8192];
	static int k;
	char *b = bufs[k++ % 8];
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

static struct prov_call call_of(const char *raw, cJSON *req, int stream, enum prov_endpoint ep)
{
	struct prov_call c = { .prov = &prov,
			       .endpoint = ep,
			       .upstream_model = "claude-up",
			       .stream = stream,
			       .max_tokens = 4096,
			       .raw = raw,
			       .raw_len = strlen(raw),
			       .req = req,
			       .request_id = "req_t" };

	return c;
}

/* Builds raw (quoted with ') and checks the request line up and the exact
 * body. */
static void build_ok(const char *raw_sq, const char *want)
{
	const char *raw = J(raw_sq);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 0, PROV_CHAT);
	struct prov_request rq;
	int rc;

	assert_non_null(req);
	rc = provider_anthropic.build_request(&c, &rq);
	if (rc != TG_OK)
		fail_msg("refused (%d): %s", rc, rq.why);
	assert_string_equal(rq.path, "/messages");
	assert_string_equal(rq.auth_prefix, "x-api-key: ");
	assert_string_equal(rq.headers[0], "anthropic-version: 2023-06-01");
	assert_string_equal(rq.headers[1], "");
	assert_int_equal(rq.len, strlen(rq.body));
	expect_json(rq.body, want);
	prov_request_free(&rq);
	cJSON_Delete(req);
}

/* A request build_request refuses: TG_EINVAL, why containing why, param. */
static void build_refused(const char *raw_sq, enum prov_endpoint ep, const char *why,
			  const char *param)
{
	const char *raw = J(raw_sq);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 0, ep);
	struct prov_request rq;

	assert_non_null(req);
	assert_int_equal(provider_anthropic.build_request(&c, &rq), TG_EINVAL);
	assert_null(rq.body);
	if (!strstr(rq.why, why))
		fail_msg("why \"%s\" lacks \"%s\"", rq.why, why);
	assert_string_equal(rq.param, param);
	cJSON_Delete(req);
}

static void test_ops(void **state)
{
	(void)state;
	assert_ptr_equal(provider_ops_for(PROVIDER_ANTHROPIC), &provider_anthropic);
	assert_string_equal(provider_anthropic.kind, "anthropic");
	assert_ptr_equal(provider_anthropic.forward, prov_http_forward);
	assert_non_null(provider_anthropic.stream_free);
	assert_non_null(provider_anthropic.map_error);
}

static void test_system_and_merging(void **state)
{
	(void)state;
	/* System and developer messages, wherever they stand, become the
	 * system text; consecutive turns of one role merge; the sampling
	 * fields are renamed (temperature capped at 1) and OpenAI-only fields
	 * dropped; the cap the gateway reserved is the max_tokens. */
	build_ok(
		"{'model':'pub','messages':[{'role':'system','content':'S1'},"
		"{'role':'user','content':'a'},"
		"{'role':'developer','content':[{'type':'text','text':'S'},"
		"{'type':'text','text':'2'}]},"
		"{'role':'user','content':'b'},{'role':'assistant','content':'c'},"
		"{'role':'assistant','content':[{'type':'text','text':'d'}]},"
		"{'role':'user','content':'e'}],"
		"'temperature':1.5,'top_p':0.9,'user':'u1','frequency_penalty':1,"
		"'presence_penalty':0.5,'seed':7,'logit_bias':{'1':2},"
		"'stream_options':{'include_usage':true},'x_fake':true,'n':1}",
		"{'model':'claude-up','max_tokens':4096,'temperature':1,'top_p':0.9,"
		"'metadata':{'user_id':'u1'},'system':'S1\\n\\nS2','messages':["
		"{'role':'user','content':[{'type':'text','text':'a'},{'type':'text','text':'b'}]},"
		"{'role':'assistant','content':[{'type':'text','text':'c'},"
		"{'type':'text','text':'d'}]},"
		"{'role':'user','content':[{'type':'text','text':'e'}]}]}");
	/* temperature within range passes as it is; stream asked for */
	build_ok("{'model':'pub','messages':[{'role':'user','content':'q'}],'temperature':0.5,"
		 "'stream':true}",
		 "{'model':'claude-up','max_tokens':4096,'temperature':0.5,'stream':true,"
		 "'messages':[{'role':'user','content':[{'type':'text','text':'q'}]}]}");
}

static void test_version_header(void **state)
{
	const char *raw = J("{'model':'pub','messages':[{'role':'user','content':'q'}]}");
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 0, PROV_CHAT);
	struct prov_request rq;

	(void)state;
	snprintf(prov.api_version, sizeof(prov.api_version), "2099-01-01");
	assert_int_equal(provider_anthropic.build_request(&c, &rq), TG_OK);
	prov.api_version[0] = '\0';
	assert_string_equal(rq.headers[0], "anthropic-version: 2099-01-01");
	assert_string_equal(rq.headers[1], "");
	/* The key is not the kind's to place anywhere. */
	assert_null(strstr(rq.body, "key"));
	prov_request_free(&rq);
	cJSON_Delete(req);
}

static void test_leading_assistant(void **state)
{
	(void)state;
	/* A conversation that starts with the assistant's turn gets a minimal
	 * user turn before it. */
	build_ok("{'model':'pub','messages':[{'role':'system','content':'S'},"
		 "{'role':'assistant','content':'Hello!'},{'role':'user','content':'Hi'}]}",
		 "{'model':'claude-up','max_tokens':4096,'system':'S','messages':["
		 "{'role':'user','content':[{'type':'text','text':'(continue)'}]},"
		 "{'role':'assistant','content':[{'type':'text','text':'Hello!'}]},"
		 "{'role':'user','content':[{'type':'text','text':'Hi'}]}]}");
	/* Nothing but a system prompt: nothing to answer. */
	build_refused("{'model':'pub','messages':[{'role':'system','content':'S'},"
		      "{'role':'user','content':''}]}",
		      PROV_CHAT, "at least one user or assistant message", "messages");
	build_refused("{'model':'pub','messages':[{'role':'function','content':'x'}]}", PROV_CHAT,
		      "role 'function'", "messages");
}

static void test_final_assistant(void **state)
{
	(void)state;
	/* A final assistant turn is a prefill: no trailing whitespace. */
	build_ok("{'model':'pub','messages':[{'role':'user','content':'q'},"
		 "{'role':'assistant','content':[{'type':'text','text':'A'},"
		 "{'type':'text','text':'Sure, \\n'},{'type':'text','text':' '}]}]}",
		 "{'model':'claude-up','max_tokens':4096,'messages':["
		 "{'role':'user','content':[{'type':'text','text':'q'}]},"
		 "{'role':'assistant','content':[{'type':'text','text':'A'},"
		 "{'type':'text','text':'Sure,'}]}]}");
	/* Only whitespace: the turn goes. */
	build_ok("{'model':'pub','messages':[{'role':'user','content':'q'},"
		 "{'role':'assistant','content':'  '}]}",
		 "{'model':'claude-up','max_tokens':4096,'messages':["
		 "{'role':'user','content':[{'type':'text','text':'q'}]}]}");
	/* Earlier assistant turns keep theirs. */
	build_ok("{'model':'pub','messages':[{'role':'user','content':'q'},"
		 "{'role':'assistant','content':'a '},{'role':'user','content':'r'}]}",
		 "{'model':'claude-up','max_tokens':4096,'messages':["
		 "{'role':'user','content':[{'type':'text','text':'q'}]},"
		 "{'role':'assistant','content':[{'type':'text','text':'a '}]},"
		 "{'role':'user','content':[{'type':'text','text':'r'}]}]}");
}

static void test_images(void **state)
{
	(void)state;
	build_ok("{'model':'pub','messages':[{'role':'user','content':["
		 "{'type':'text','text':'look'},{'type':'text','text':''},"
		 "{'type':'image_url','image_url':{'url':'data:image/png;base64,iVBORw0KGgo='}},"
		 "{'type':'image_url','image_url':{'url':'https://e.com/cat.jpg',"
		 "'detail':'high'}}]}]}",
		 "{'model':'claude-up','max_tokens':4096,'messages':[{'role':'user','content':["
		 "{'type':'text','text':'look'},"
		 "{'type':'image','source':{'type':'base64','media_type':'image/png',"
		 "'data':'iVBORw0KGgo='}},"
		 "{'type':'image','source':{'type':'url','url':'https://e.com/cat.jpg'}}]}]}");
	build_refused("{'model':'pub','messages':[{'role':'user','content':["
		      "{'type':'image_url','image_url':{'url':'ftp://e.com/a.png'}}]}]}",
		      PROV_CHAT, "http(s) URL or a base64 data URL", "messages");
	build_refused("{'model':'pub','messages':[{'role':'user','content':["
		      "{'type':'image_url','image_url':{'url':'data:image/png,raw'}}]}]}",
		      PROV_CHAT, "data:<type>;base64,<data>", "messages");
	build_refused("{'model':'pub','messages':[{'role':'user','content':["
		      "{'type':'input_audio','input_audio':{'data':'AA','format':'wav'}}]}]}",
		      PROV_CHAT, "'input_audio' cannot be sent to Anthropic", "messages");
}

#define TOOLS_SQ                                                                                \
	"'tools':[{'type':'function','function':{'name':'get_weather','description':'Weather'," \
	"'parameters':{'type':'object','properties':{'city':{'type':'string'}}}}},"             \
	"{'type':'function','function':{'name':'now'}}]"
#define TOOLS_WANT                                                                                \
	"'tools':[{'name':'get_weather','description':'Weather','input_schema':{'type':'object'," \
	"'properties':{'city':{'type':'string'}}}},"                                              \
	"{'name':'now','input_schema':{'type':'object','properties':{}}}]"
#define Q_SQ "'messages':[{'role':'user','content':'q'}]"
#define Q_WANT "'messages':[{'role':'user','content':[{'type':'text','text':'q'}]}]"

static void test_tools_and_choice(void **state)
{
	static const struct {
		const char *extra, *choice;
	} cases[] = {
		{ "", "" },
		{ ",'tool_choice':'auto'", ",'tool_choice':{'type':'auto'}" },
		{ ",'tool_choice':'required'", ",'tool_choice':{'type':'any'}" },
		{ ",'tool_choice':'none'", ",'tool_choice':{'type':'none'}" },
		{ ",'tool_choice':{'type':'function','function':{'name':'now'}}",
		  ",'tool_choice':{'type':'tool','name':'now'}" },
		{ ",'parallel_tool_calls':false",
		  ",'tool_choice':{'type':'auto','disable_parallel_tool_use':true}" },
		{ ",'parallel_tool_calls':true", "" },
		{ ",'tool_choice':'required','parallel_tool_calls':false",
		  ",'tool_choice':{'type':'any','disable_parallel_tool_use':true}" },
	};
	char raw[2048], want[2048];
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		snprintf(raw, sizeof(raw), "{'model':'pub'," Q_SQ "," TOOLS_SQ "%s}",
			 cases[i].extra);
		snprintf(want, sizeof(want),
			 "{'model':'claude-up','max_tokens':4096," Q_WANT "," TOOLS_WANT "%s}",
			 cases[i].choice);
		build_ok(raw, want);
	}
	/* No tools: "auto" and "none" mean nothing, a forced call is refused. */
	build_ok("{'model':'pub'," Q_SQ ",'tool_choice':'none','parallel_tool_calls':false}",
		 "{'model':'claude-up','max_tokens':4096," Q_WANT "}");
	build_refused("{'model':'pub'," Q_SQ ",'tool_choice':'required'}", PROV_CHAT,
		      "needs 'tools'", "tool_choice");
	build_refused("{'model':'pub'," Q_SQ ",'tools':[{'type':'retrieval'}]}", PROV_CHAT,
		      "function tools only", "tools");
	build_refused("{'model':'pub'," Q_SQ "," TOOLS_SQ ",'tool_choice':'sometimes'}", PROV_CHAT,
		      "'tool_choice' must be", "tool_choice");
}

static void test_tool_calls_and_results(void **state)
{
	(void)state;
	/* The assistant's calls become tool_use blocks (content null is fine);
	 * the two results in a row one user turn of two tool_result blocks. */
	build_ok("{'model':'pub','messages':[{'role':'user','content':'Weather?'},"
		 "{'role':'assistant','content':null,'tool_calls':["
		 "{'id':'call_1','type':'function','function':{'name':'get_weather',"
		 "'arguments':'{\\'city\\':\\'Paris\\'}'}},"
		 "{'id':'call_2','type':'function','function':{'name':'now','arguments':''}}]},"
		 "{'role':'tool','tool_call_id':'call_1','content':'sunny'},"
		 "{'role':'tool','tool_call_id':'call_2',"
		 "'content':[{'type':'text','text':'noon'}]}]}",
		 "{'model':'claude-up','max_tokens':4096,'messages':["
		 "{'role':'user','content':[{'type':'text','text':'Weather?'}]},"
		 "{'role':'assistant','content':[{'type':'tool_use','id':'call_1',"
		 "'name':'get_weather','input':{'city':'Paris'}},"
		 "{'type':'tool_use','id':'call_2','name':'now','input':{}}]},"
		 "{'role':'user','content':[{'type':'tool_result','tool_use_id':'call_1',"
		 "'content':'sunny'},{'type':'tool_result','tool_use_id':'call_2',"
		 "'content':'noon'}]}]}");
	/* Text and calls in one assistant message: the text first. */
	build_ok("{'model':'pub','messages':[{'role':'user','content':'q'},"
		 "{'role':'assistant','content':'Let me see.','tool_calls':["
		 "{'id':'c1','type':'function','function':{'name':'now','arguments':'{}'}}]},"
		 "{'role':'tool','tool_call_id':'c1','content':'12:00'},"
		 "{'role':'user','content':'and?'}]}",
		 "{'model':'claude-up','max_tokens':4096,'messages':["
		 "{'role':'user','content':[{'type':'text','text':'q'}]},"
		 "{'role':'assistant','content':[{'type':'text','text':'Let me see.'},"
		 "{'type':'tool_use','id':'c1','name':'now','input':{}}]},"
		 "{'role':'user','content':[{'type':'tool_result','tool_use_id':'c1',"
		 "'content':'12:00'},{'type':'text','text':'and?'}]}]}");
	build_refused("{'model':'pub','messages':[{'role':'user','content':'q'},"
		      "{'role':'assistant','tool_calls':[{'id':'c1','type':'function',"
		      "'function':{'name':'get_weather','arguments':'{city'}}]}]}",
		      PROV_CHAT, "arguments of tool call 'get_weather' are not a JSON object",
		      "messages");
	build_refused("{'model':'pub','messages':[{'role':'user','content':'q'},"
		      "{'role':'assistant','tool_calls':[{'id':'c1','type':'function',"
		      "'function':{'name':'f','arguments':'[1]'}}]}]}",
		      PROV_CHAT, "not a JSON object", "messages");
	build_refused("{'model':'pub','messages':[{'role':'user','content':'q'},"
		      "{'role':'tool','content':'x'}]}",
		      PROV_CHAT, "needs its 'tool_call_id'", "messages");
}

static void test_max_tokens_and_stop(void **state)
{
	(void)state;
	build_ok("{'model':'pub'," Q_SQ ",'max_tokens':100}",
		 "{'model':'claude-up','max_tokens':100," Q_WANT "}");
	build_ok("{'model':'pub'," Q_SQ ",'max_tokens':100,'max_completion_tokens':50}",
		 "{'model':'claude-up','max_tokens':50," Q_WANT "}");
	build_ok("{'model':'pub'," Q_SQ ",'max_tokens':null,'stop':'END'}",
		 "{'model':'claude-up','max_tokens':4096,'stop_sequences':['END']," Q_WANT "}");
	build_ok("{'model':'pub'," Q_SQ ",'stop':['a','b']}",
		 "{'model':'claude-up','max_tokens':4096,'stop_sequences':['a','b']," Q_WANT "}");
	build_ok("{'model':'pub'," Q_SQ ",'stop':null}",
		 "{'model':'claude-up','max_tokens':4096," Q_WANT "}");
	build_refused("{'model':'pub'," Q_SQ ",'stop':[1]}", PROV_CHAT, "'stop' must be", "stop");
}

#define JSON_DESC "Give your answer as the input of this tool: JSON that matches its schema."

static void test_json_mode(void **state)
{
	(void)state;
	build_ok("{'model':'pub'," Q_SQ ",'response_format':{'type':'json_schema',"
		 "'json_schema':{'name':'person','strict':true,'schema':{'type':'object',"
		 "'properties':{'name':{'type':'string'}},'required':['name']}}}}",
		 "{'model':'claude-up','max_tokens':4096," Q_WANT ",'tools':[{'name':'person',"
		 "'description':'" JSON_DESC "','input_schema':{'type':'object',"
		 "'properties':{'name':{'type':'string'}},'required':['name']}}],"
		 "'tool_choice':{'type':'tool','name':'person'}}");
	/* A name Anthropic would refuse: the default one. */
	build_ok("{'model':'pub'," Q_SQ ",'response_format':{'type':'json_schema',"
		 "'json_schema':{'name':'a b','description':'D','schema':{'type':'object'}}}}",
		 "{'model':'claude-up','max_tokens':4096," Q_WANT ",'tools':[{'name':'json_output',"
		 "'description':'D','input_schema':{'type':'object'}}],"
		 "'tool_choice':{'type':'tool','name':'json_output'}}");
	build_ok("{'model':'pub'," Q_SQ ",'response_format':{'type':'json_object'}}",
		 "{'model':'claude-up','max_tokens':4096," Q_WANT ",'tools':[{'name':'json_output',"
		 "'description':'" JSON_DESC "','input_schema':{'type':'object'}}],"
		 "'tool_choice':{'type':'tool','name':'json_output'}}");
	build_ok("{'model':'pub'," Q_SQ ",'response_format':{'type':'text'}}",
		 "{'model':'claude-up','max_tokens':4096," Q_WANT "}");
	build_refused("{'model':'pub'," Q_SQ "," TOOLS_SQ
		      ",'response_format':{'type':'json_object'}}",
		      PROV_CHAT, "cannot be used together with 'tools'", "response_format");
	build_refused("{'model':'pub'," Q_SQ ",'response_format':{'type':'json_schema',"
		      "'json_schema':{'name':'x'}}}",
		      PROV_CHAT, "needs json_schema.schema", "response_format");
	build_refused("{'model':'pub'," Q_SQ ",'response_format':{'type':'yaml'}}", PROV_CHAT,
		      "'yaml' is not known", "response_format");
}

static void test_refusals(void **state)
{
	(void)state;
	build_refused("{'model':'pub'," Q_SQ ",'n':2}", PROV_CHAT,
		      "Anthropic returns one choice per request; n must be 1.", "n");
	build_refused("{'model':'pub'," Q_SQ ",'logprobs':true}", PROV_CHAT, "log probabilities",
		      "logprobs");
	build_refused("{'model':'pub'," Q_SQ ",'top_logprobs':3}", PROV_CHAT, "log probabilities",
		      "top_logprobs");
	build_refused("{'model':'pub','input':'x'}", PROV_EMBEDDINGS,
		      "Anthropic has no embeddings API; use a model of another provider.", "model");
	/* logprobs false and top_logprobs 0 ask for nothing */
	build_ok("{'model':'pub'," Q_SQ ",'logprobs':false,'top_logprobs':0}",
		 "{'model':'claude-up','max_tokens':4096," Q_WANT "}");
}

/* --- answers --- */

/* Parses answer (quoted with ') for a call of request raw_sq and checks the
 * printed OpenAI answer. */
static void answer_ok(const char *raw_sq, const char *answer_sq, const char *want,
		      struct prov_usage *u)
{
	const char *raw = J(raw_sq), *body = J(answer_sq);
	cJSON *req = cJSON_Parse(raw), *out = NULL;
	struct prov_call c = call_of(raw, req, 0, PROV_CHAT);
	int flags = -1;
	char *s;

	assert_non_null(req);
	memset(u, 0, sizeof(*u));
	assert_int_equal(provider_anthropic.parse_response(&c, body, strlen(body), &out, &flags, u),
			 TG_OK);
	assert_int_equal(flags, 0);
	s = printed(out);
	expect_json(s, want);
	cJSON_free(s);
	cJSON_Delete(out);
	cJSON_Delete(req);
}

#define PLAIN "{'model':'pub'," Q_SQ "}"

static void test_answer_text_usage(void **state)
{
	struct prov_usage u;

	(void)state;
	answer_ok(PLAIN,
		  "{'id':'msg_1','type':'message','role':'assistant','model':'claude-x',"
		  "'content':[{'type':'thinking','thinking':'hmm','signature':'sig'},"
		  "{'type':'text','text':'Hello'},{'type':'redacted_thinking','data':'x'},"
		  "{'type':'text','text':' world'}],'stop_reason':'end_turn',"
		  "'stop_sequence':null,'usage':{'input_tokens':10,"
		  "'cache_read_input_tokens':100,'cache_creation_input_tokens':20,"
		  "'output_tokens':5}}",
		  "{'id':'msg_1','object':'chat.completion','created':0,'model':'claude-x',"
		  "'choices':[{'index':0,'message':{'role':'assistant','content':'Hello world'},"
		  "'logprobs':null,'finish_reason':'stop'}],'usage':{'prompt_tokens':130,"
		  "'completion_tokens':5,'total_tokens':135,'prompt_tokens_details':"
		  "{'cached_tokens':100},'completion_tokens_details':{'reasoning_tokens':0}}}",
		  &u);
	assert_true(u.have);
	assert_int_equal(u.prompt, 130);
	assert_int_equal(u.cached, 100);
	assert_int_equal(u.cache_write, 20);
	assert_int_equal(u.completion, 5);
	assert_int_equal(u.reasoning, 0);
}

static void test_answer_tool_use(void **state)
{
	struct prov_usage u;

	(void)state;
	answer_ok(PLAIN,
		  "{'id':'msg_2','type':'message','model':'claude-x','content':["
		  "{'type':'text','text':'Checking.'},{'type':'tool_use','id':'toolu_1',"
		  "'name':'get_weather','input':{'city':'Paris'}},{'type':'tool_use',"
		  "'id':'toolu_2','name':'now','input':{}}],'stop_reason':'tool_use',"
		  "'usage':{'input_tokens':7,'output_tokens':3}}",
		  "{'id':'msg_2','object':'chat.completion','created':0,'model':'claude-x',"
		  "'choices':[{'index':0,'message':{'role':'assistant','content':'Checking.',"
		  "'tool_calls':[{'id':'toolu_1','type':'function','function':{"
		  "'name':'get_weather','arguments':'{\\'city\\':\\'Paris\\'}'}},"
		  "{'id':'toolu_2','type':'function','function':{'name':'now','arguments':'{}'}}]},"
		  "'logprobs':null,'finish_reason':'tool_calls'}],'usage':{'prompt_tokens':7,"
		  "'completion_tokens':3,'total_tokens':10,'prompt_tokens_details':"
		  "{'cached_tokens':0},'completion_tokens_details':{'reasoning_tokens':0}}}",
		  &u);
	assert_int_equal(u.prompt, 7);
	assert_int_equal(u.cache_write, 0);
}

static void test_answer_finish_reasons(void **state)
{
	static const struct {
		const char *reason, *finish;
	} cases[] = {
		{ "max_tokens", "length" }, { "stop_sequence", "stop" },
		{ "pause_turn", "stop" },   { "refusal", "content_filter" },
		{ "end_turn", "stop" },     { "tool_use", "tool_calls" },
	};
	char answer[512], want[1024];
	struct prov_usage u;
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		/* No text block: content null. */
		snprintf(answer, sizeof(answer),
			 "{'id':'m','model':'claude-x','content':[],'stop_reason':'%s',"
			 "'usage':{'input_tokens':1,'output_tokens':2}}",
			 cases[i].reason);
		snprintf(want, sizeof(want),
			 "{'id':'m','object':'chat.completion','created':0,'model':'claude-x',"
			 "'choices':[{'index':0,'message':{'role':'assistant','content':null},"
			 "'logprobs':null,'finish_reason':'%s'}],'usage':{'prompt_tokens':1,"
			 "'completion_tokens':2,'total_tokens':3,'prompt_tokens_details':"
			 "{'cached_tokens':0},'completion_tokens_details':{'reasoning_tokens':0}}}",
			 cases[i].finish);
		answer_ok(PLAIN, answer, want, &u);
	}
}

static void test_answer_json_mode(void **state)
{
	struct prov_usage u;

	(void)state;
	/* The forced tool's input is the message's text; no tool calls. */
	answer_ok("{'model':'pub'," Q_SQ ",'response_format':{'type':'json_schema',"
		  "'json_schema':{'name':'person','schema':{'type':'object'}}}}",
		  "{'id':'msg_3','model':'claude-x','content':[{'type':'tool_use','id':'toolu_3',"
		  "'name':'person','input':{'name':'Ann','age':3}}],'stop_reason':'tool_use',"
		  "'usage':{'input_tokens':4,'output_tokens':6}}",
		  "{'id':'msg_3','object':'chat.completion','created':0,'model':'claude-x',"
		  "'choices':[{'index':0,'message':{'role':'assistant',"
		  "'content':'{\\'name\\':\\'Ann\\',\\'age\\':3}'},'logprobs':null,"
		  "'finish_reason':'stop'}],'usage':{'prompt_tokens':4,'completion_tokens':6,"
		  "'total_tokens':10,'prompt_tokens_details':{'cached_tokens':0},"
		  "'completion_tokens_details':{'reasoning_tokens':0}}}",
		  &u);
	/* Cut by max_tokens before the tool: what text there is, length. */
	answer_ok("{'model':'pub'," Q_SQ ",'response_format':{'type':'json_object'}}",
		  "{'id':'msg_4','model':'claude-x','content':[{'type':'text','text':'{'}],"
		  "'stop_reason':'max_tokens','usage':{'input_tokens':4,'output_tokens':1}}",
		  "{'id':'msg_4','object':'chat.completion','created':0,'model':'claude-x',"
		  "'choices':[{'index':0,'message':{'role':'assistant','content':'{'},"
		  "'logprobs':null,'finish_reason':'length'}],'usage':{'prompt_tokens':4,"
		  "'completion_tokens':1,'total_tokens':5,'prompt_tokens_details':"
		  "{'cached_tokens':0},'completion_tokens_details':{'reasoning_tokens':0}}}",
		  &u);
}

static void test_answer_not_json(void **state)
{
	struct prov_call c = call_of("{}", NULL, 0, PROV_CHAT);
	struct prov_usage u = { 0 };
	cJSON *out = NULL;
	int flags;

	(void)state;
	assert_int_equal(provider_anthropic.parse_response(&c, "<html>", 6, &out, &flags, &u),
			 TG_EINVAL);
	assert_null(out);
	assert_int_equal(provider_anthropic.parse_response(&c, "[1]", 3, &out, &flags, &u),
			 TG_EINVAL);
	assert_null(out);
	assert_false(u.have);
	/* The length counts, not a NUL: "{}" then bytes that are not JSON. */
	assert_int_equal(provider_anthropic.parse_response(&c, "{}xyz", 2, &out, &flags, &u),
			 TG_OK);
	assert_non_null(out);
	cJSON_Delete(out);
}

static void test_extract_usage(void **state)
{
	static const struct {
		const char *json;
		int have;
		int64_t prompt, cached, cache_write, completion;
	} cases[] = {
		{ "{'usage':{'input_tokens':3,'cache_read_input_tokens':4,"
		  "'cache_creation_input_tokens':5,'output_tokens':6}}",
		  1, 12, 4, 5, 6 },
		{ "{'type':'message_start','message':{'usage':{'input_tokens':9,"
		  "'output_tokens':1}}}",
		  1, 9, 0, 0, 1 },
		{ "{'type':'message_delta','usage':{'output_tokens':15}}", 1, 0, 0, 0, 15 },
		{ "{'usage':{'input_tokens':-1}}", 0, 0, 0, 0, 0 },
		{ "{'usage':{'input_tokens':'3'}}", 0, 0, 0, 0, 0 },
		{ "{'usage':null}", 0, 0, 0, 0, 0 },
		{ "{'type':'ping'}", 0, 0, 0, 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < TG_ARRAY_LEN(cases); i++) {
		cJSON *o = cJSON_Parse(J(cases[i].json));
		struct prov_usage u = { 0 };

		assert_non_null(o);
		assert_int_equal(provider_anthropic.extract_usage(o, &u), cases[i].have);
		assert_int_equal(u.have, cases[i].have);
		assert_int_equal(u.prompt, cases[i].prompt);
		assert_int_equal(u.cached, cases[i].cached);
		assert_int_equal(u.cache_write, cases[i].cache_write);
		assert_int_equal(u.completion, cases[i].completion);
		cJSON_Delete(o);
	}
}

/* --- streams --- */

#define CHUNKS_MAX 16

struct chunks {
	int n;
	int stop_at; /* emit answers 1 at this chunk (0: never) */
	char *got[CHUNKS_MAX];
};

static int collect(void *ud, cJSON *chunk, const char *data, size_t len, int flags)
{
	struct chunks *k = ud;

	assert_non_null(chunk);
	assert_null(data);
	assert_int_equal(len, 0);
	assert_int_equal(flags, 0);
	assert_true(k->n < CHUNKS_MAX);
	k->got[k->n++] = printed(chunk);
	cJSON_Delete(chunk);
	return k->stop_at && k->n == k->stop_at;
}

static void chunks_free(struct chunks *k)
{
	int i;

	for (i = 0; i < k->n; i++)
		cJSON_free(k->got[i]);
	k->n = 0;
}

/* Feeds one event (data quoted with ') and checks the chunks it made. */
static void feed(struct prov_stream *s, struct chunks *k, const char *event, const char *data_sq,
		 int n, ...)
{
	const char *data = J(data_sq);
	va_list ap;
	int i;

	chunks_free(k);
	assert_int_equal(provider_anthropic.parse_stream_event(s, event, data, strlen(data),
							       collect, k),
			 0);
	if (k->n != n)
		fail_msg("event %s made %d chunks, wanted %d (first: %s)", event, k->n, n,
			 k->n ? k->got[0] : "-");
	va_start(ap, n);
	for (i = 0; i < n; i++)
		expect_json(k->got[i], va_arg(ap, const char *));
	va_end(ap);
	chunks_free(k);
}

#define HEAD "{'id':'msg_s','object':'chat.completion.chunk','created':0,'model':'claude-x',"
#define DELTA(d, f) HEAD "'choices':[{'index':0,'delta':" d ",'finish_reason':" f "}]}"

static void test_stream_text_and_tool(void **state)
{
	const char *raw = J(PLAIN);
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 1, PROV_CHAT);
	struct prov_usage u = { 0 };
	struct prov_stream s = { .call = &c, .usage = &u };
	struct chunks k = { 0 };

	(void)state;
	feed(&s, &k, "message_start",
	     "{'type':'message_start','message':{'id':'msg_s','type':'message',"
	     "'role':'assistant','model':'claude-x','content':[],'stop_reason':null,"
	     "'usage':{'input_tokens':25,'cache_read_input_tokens':5,"
	     "'cache_creation_input_tokens':2,'output_tokens':1}}}",
	     1, DELTA("{'role':'assistant','content':''}", "null"));
	feed(&s, &k, "ping", "{'type':'ping'}", 0);
	/* A thinking block: nothing for the client. */
	feed(&s, &k, "content_block_start",
	     "{'type':'content_block_start','index':0,'content_block':{'type':'thinking',"
	     "'thinking':''}}",
	     0);
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':0,'delta':{'type':'thinking_delta',"
	     "'thinking':'hmm'}}",
	     0);
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':0,'delta':{'type':'signature_delta',"
	     "'signature':'sig'}}",
	     0);
	feed(&s, &k, "content_block_stop", "{'type':'content_block_stop','index':0}", 0);
	feed(&s, &k, "content_block_start",
	     "{'type':'content_block_start','index':1,'content_block':{'type':'text','text':''}}",
	     0);
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':1,'delta':{'type':'text_delta','text':'Hi'}}",
	     1, DELTA("{'content':'Hi'}", "null"));
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':1,'delta':{'type':'text_delta',"
	     "'text':' there'}}",
	     1, DELTA("{'content':' there'}", "null"));
	feed(&s, &k, "content_block_stop", "{'type':'content_block_stop','index':1}", 0);
	feed(&s, &k, "content_block_start",
	     "{'type':'content_block_start','index':2,'content_block':{'type':'tool_use',"
	     "'id':'toolu_9','name':'get_weather','input':{}}}",
	     1,
	     DELTA("{'tool_calls':[{'index':0,'id':'toolu_9','type':'function',"
		   "'function':{'name':'get_weather','arguments':''}}]}",
		   "null"));
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
	     "'partial_json':''}}",
	     0);
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
	     "'partial_json':'{\\'city\\':'}}",
	     1,
	     DELTA("{'tool_calls':[{'index':0,'function':{'arguments':'{\\'city\\':'}}]}", "null"));
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':2,'delta':{'type':'input_json_delta',"
	     "'partial_json':'\\'Paris\\'}'}}",
	     1,
	     DELTA("{'tool_calls':[{'index':0,'function':{'arguments':'\\'Paris\\'}'}}]}", "null"));
	feed(&s, &k, "content_block_stop", "{'type':'content_block_stop','index':2}", 0);
	/* A second tool call counts 1 among the calls. */
	feed(&s, &k, "content_block_start",
	     "{'type':'content_block_start','index':3,'content_block':{'type':'tool_use',"
	     "'id':'toolu_10','name':'now','input':{}}}",
	     1,
	     DELTA("{'tool_calls':[{'index':1,'id':'toolu_10','type':'function',"
		   "'function':{'name':'now','arguments':''}}]}",
		   "null"));
	feed(&s, &k, "content_block_stop", "{'type':'content_block_stop','index':3}", 0);
	assert_false(s.done);
	feed(&s, &k, "message_delta",
	     "{'type':'message_delta','delta':{'stop_reason':'tool_use','stop_sequence':null},"
	     "'usage':{'output_tokens':42}}",
	     1, DELTA("{}", "'tool_calls'"));
	assert_false(s.done);
	feed(&s, &k, "message_stop", "{'type':'message_stop'}", 1,
	     HEAD "'choices':[],'usage':{'prompt_tokens':32,'completion_tokens':42,"
		  "'total_tokens':74,'prompt_tokens_details':{'cached_tokens':5},"
		  "'completion_tokens_details':{'reasoning_tokens':0}}}");
	assert_true(s.done);
	assert_true(u.have);
	assert_int_equal(u.prompt, 32);
	assert_int_equal(u.cached, 5);
	assert_int_equal(u.cache_write, 2);
	assert_int_equal(u.completion, 42);
	/* Nothing after the end. */
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':1,'delta':{'type':'text_delta','text':'x'}}",
	     0);
	provider_anthropic.stream_free(&s);
	assert_null(s.state);
	cJSON_Delete(req);
}

static void test_stream_json_mode(void **state)
{
	const char *raw = J("{'model':'pub'," Q_SQ ",'response_format':{'type':'json_object'}}");
	cJSON *req = cJSON_Parse(raw);
	struct prov_call c = call_of(raw, req, 1, PROV_CHAT);
	struct prov_usage u = { 0 };
	struct prov_stream s = { .call = &c, .usage = &u };
	struct chunks k = { 0 };

	(void)state;
	feed(&s, &k, "message_start",
	     "{'type':'message_start','message':{'id':'msg_s','model':'claude-x',"
	     "'usage':{'input_tokens':3,'output_tokens':1}}}",
	     1, DELTA("{'role':'assistant','content':''}", "null"));
	feed(&s, &k, "content_block_start",
	     "{'type':'content_block_start','index':0,'content_block':{'type':'tool_use',"
	     "'id':'toolu_1','name':'json_output','input':{}}}",
	     0);
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':0,'delta':{'type':'input_json_delta',"
	     "'partial_json':'{\\'a\\':'}}",
	     1, DELTA("{'content':'{\\'a\\':'}", "null"));
	feed(&s, &k, "content_block_delta",
	     "{'type':'content_block_delta','index':0,'delta':{'type':'input_json_delta',"
	     "'partial_json':'1}'}}",
	     1, DELTA("{'content':'1}'}", "null"));
	feed(&s, &k, "content_block_stop", "{'type':'content_block_stop','index':0}", 0);
	feed(&s, &k, "message_delta",
	     "{'type':'message_delta','delta':{'stop_reason':'tool_use'},"
	     "'usage':{'output_tokens':8}}",
	     1, DELTA("{}", "'stop'"));
	feed(&s, &k, "message_stop", "{'type':'message_stop'}", 1,
	     HEAD "'choices':[],'usage':{'prompt_tokens':3,'completion_tokens':8,"
		  "'total_tokens':11,'prompt_tokens_details':{'cached_tokens':0},"
		  "'completion_tokens_details':{'reasoning_tokens':0}}}");
	assert_true(s.done);
	assert_int_equal(u.completion, 8);
	provider_anthropic.stream_free(&s);
	cJSON_Delete(req);
}

static void test_stream_error_and_stop(void **state)
{
	struct prov_call c = call_of("{}", NULL, 1, PROV_CHAT);
	struct prov_usage u = { 0 };
	struct prov_stream s = { .call = &c, .usage = &u };
	struct chunks k = { 0 };
	const char *ev;

	(void)state;
	feed(&s, &k, "ping", "{'type':'ping'}", 0);
	feed(&s, &k, "error",
	     "{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}", 1,
	     "{'error':{'message':'Anthropic: Overloaded','type':'server_error',"
	     "'code':'overloaded_error','param':null}}");
	feed(&s, &k, "error",
	     "{'type':'error','error':{'type':'rate_limit_error','message':'slow'}}", 1,
	     "{'error':{'message':'Anthropic: slow','type':'rate_limit_exceeded',"
	     "'code':'rate_limit_error','param':null}}");
	assert_false(s.done);
	assert_false(u.have);
	/* Text that is not JSON: nothing. */
	chunks_free(&k);
	assert_int_equal(provider_anthropic.parse_stream_event(&s, "x", "oops", 4, collect, &k), 0);
	assert_int_equal(k.n, 0);
	/* emit's non-zero comes back at once. */
	k.stop_at = 1;
	ev = J("{'type':'message_start','message':{'id':'msg_s','model':'claude-x'}}");
	assert_int_equal(provider_anthropic.parse_stream_event(&s, "message_start", ev, strlen(ev),
							       collect, &k),
			 1);
	assert_int_equal(k.n, 1);
	chunks_free(&k);
	provider_anthropic.stream_free(&s);
	provider_anthropic.stream_free(&s); /* twice is harmless */
}

/* --- errors --- */

static void map(int status, const char *body, size_t n, struct prov_error *e)
{
	struct prov_call c = call_of("{}", NULL, 0, PROV_CHAT);

	memset(e, 0x55, sizeof(*e));
	provider_anthropic.map_error(&c, status, body, n, e);
}

static void map_sq(int status, const char *body_sq, struct prov_error *e)
{
	const char *body = J(body_sq);

	map(status, body, strlen(body), e);
}

static void test_map_error(void **state)
{
	struct prov_error e;
	char big[2048];
	size_t n;

	(void)state;
	map_sq(429, "{'type':'error','error':{'type':'rate_limit_error','message':'slow down'}}",
	       &e);
	assert_int_equal(e.status, 429);
	assert_string_equal(e.type, "rate_limit_exceeded");
	assert_string_equal(e.code, "rate_limit_error");
	assert_string_equal(e.message, "Anthropic: slow down");
	map_sq(529, "{'type':'error','error':{'type':'overloaded_error','message':'Overloaded'}}",
	       &e);
	assert_int_equal(e.status, 503);
	assert_string_equal(e.type, "server_error");
	assert_string_equal(e.code, "overloaded_error");
	assert_string_equal(e.message, "Anthropic: Overloaded");
	map_sq(400,
	       "{'type':'error','error':{'type':'invalid_request_error',"
	       "'message':'prompt is too long: 215000 tokens > 200000 maximum'}}",
	       &e);
	assert_int_equal(e.status, 400);
	assert_string_equal(e.type, "invalid_request_error");
	assert_string_equal(e.code, "context_length_exceeded");
	map_sq(400,
	       "{'type':'error','error':{'type':'invalid_request_error','message':'input length "
	       "and `max_tokens` exceed context limit: 197000 + 8192 > 200000'}}",
	       &e);
	assert_string_equal(e.code, "context_length_exceeded");
	map_sq(400,
	       "{'type':'error','error':{'type':'invalid_request_error',"
	       "'message':'messages: text content blocks must be non-empty'}}",
	       &e);
	assert_string_equal(e.code, "invalid_request_error");
	map_sq(401, "{'type':'error','error':{'type':'authentication_error','message':'bad key'}}",
	       &e);
	assert_int_equal(e.status, 401);
	assert_string_equal(e.type, "authentication_error");
	map_sq(403, "{'type':'error','error':{'type':'permission_error','message':'no'}}", &e);
	assert_int_equal(e.status, 403);
	assert_string_equal(e.type, "permission_denied");
	map_sq(404, "{'type':'error','error':{'type':'not_found_error','message':'model'}}", &e);
	assert_int_equal(e.status, 404);
	assert_string_equal(e.type, "not_found_error");
	map_sq(413, "{'type':'error','error':{'type':'request_too_large','message':'big'}}", &e);
	assert_int_equal(e.status, 413);
	assert_string_equal(e.code, "request_too_large");
	map_sq(500, "{'type':'error','error':{'type':'api_error','message':'oops'}}", &e);
	assert_int_equal(e.status, 502);
	assert_string_equal(e.type, "server_error");
	assert_string_equal(e.code, "api_error");
	map(503, "<html>busy</html>", 17, &e);
	assert_int_equal(e.status, 502);
	assert_string_equal(e.type, "server_error");
	assert_string_equal(e.code, "");
	assert_string_equal(e.message, "Anthropic answered HTTP 503.");
	map(529, NULL, 0, &e);
	assert_int_equal(e.status, 503);
	assert_string_equal(e.message, "Anthropic answered HTTP 529.");
	/* Only n bytes are read: the body is not NUL-terminated. */
	snprintf(big, sizeof(big), "%s",
		 J("{'type':'error','error':{'type':'api_error','message':'cut'}}garbage"));
	map(500, big, strlen(big) - 7, &e);
	assert_string_equal(e.message, "Anthropic: cut");
	map(500, big, 20, &e);
	assert_string_equal(e.message, "Anthropic answered HTTP 500.");
	/* A long message is cut at a character boundary. */
	n = (size_t)snprintf(big, sizeof(big), "%s",
			     J("{'type':'error','error':{'type':'api_error','message':'"));
	while (n + 2 < 1500) {
		big[n++] = '\xc3';
		big[n++] = '\xa9';
	}
	snprintf(big + n, sizeof(big) - n, "%s", J("'}}"));
	map(500, big, strlen(big), &e);
	assert_int_equal(strncmp(e.message, "Anthropic: \xc3\xa9", 13), 0);
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

/* Every cJSON allocation of a build, a parse and a stream may fail: each
 * gives up cleanly (no crash; no leak under the sanitizer) until all
 * succeed. */
static void test_out_of_memory(void **state)
{
	static const char *const events[] = {
		"{'type':'message_start','message':{'id':'m','model':'x','usage':"
		"{'input_tokens':2,'output_tokens':1}}}",
		"{'type':'content_block_start','index':0,'content_block':{'type':'tool_use',"
		"'id':'t','name':'f','input':{}}}",
		"{'type':'content_block_delta','index':0,'delta':{'type':'input_json_delta',"
		"'partial_json':'{}'}}",
		"{'type':'message_delta','delta':{'stop_reason':'tool_use'},"
		"'usage':{'output_tokens':3}}",
		"{'type':'message_stop'}",
		"{'type':'error','error':{'type':'api_error','message':'m'}}",
	};
	const char *raw = J("{'model':'pub','messages':[{'role':'system','content':'S'},"
			    "{'role':'assistant','content':'hi'},"
			    "{'role':'user','content':[{'type':'text','text':'q'},"
			    "{'type':'image_url','image_url':{'url':'data:image/png;base64,AAAA'}},"
			    "{'type':'image_url','image_url':{'url':'https://e.com/a.png'}}]},"
			    "{'role':'assistant','content':'c','tool_calls':[{'id':'c1',"
			    "'type':'function','function':{'name':'f','arguments':'{}'}}]},"
			    "{'role':'tool','tool_call_id':'c1','content':'{}'}],"
			    "'tools':[{'type':'function','function':{'name':'f','parameters':{}}},"
			    "{'type':'function','function':{'name':'g'}}],"
			    "'tool_choice':{'type':'function','function':{'name':'f'}},"
			    "'parallel_tool_calls':false,'stop':['x'],'temperature':1,"
			    "'user':'u','stream':true}");
	const char *jraw = J("{'model':'pub','messages':[{'role':'user','content':'q'}],"
			     "'response_format':{'type':'json_object'}}");
	const char *answer = J("{'id':'m','model':'x','content':[{'type':'text','text':'a'},"
			       "{'type':'tool_use','id':'t','name':'f','input':{'k':1}}],"
			       "'stop_reason':'tool_use','usage':{'input_tokens':3,"
			       "'output_tokens':2}}");
	cJSON *req = cJSON_Parse(raw), *jreq = cJSON_Parse(jraw), *out;
	struct prov_call c = call_of(raw, req, 1, PROV_CHAT);
	struct prov_call jc = call_of(jraw, jreq, 0, PROV_CHAT);
	struct prov_request rq;
	struct prov_usage u;
	long at;
	int rc, flags, ok = 0, n;
	size_t i;

	(void)state;
	assert_non_null(req);
	assert_non_null(jreq);
	for (at = 0; at < 100000 && ok < 4; at++) {
		struct prov_stream s = { .call = &c, .usage = &u };

		ok = 0;
		cjson_failing(at);
		rc = provider_anthropic.build_request(&c, &rq);
		cjson_failing(-1);
		/* Arguments that cannot be parsed read as not JSON. */
		assert_true(rc == TG_OK || rc == TG_ENOMEM || rc == TG_EINVAL);
		if (rc == TG_OK) {
			ok++;
			prov_request_free(&rq);
		}
		cjson_failing(at);
		rc = provider_anthropic.build_request(&jc, &rq);
		cjson_failing(-1);
		assert_true(rc == TG_OK || rc == TG_ENOMEM);
		if (rc == TG_OK) {
			ok++;
			prov_request_free(&rq);
		}
		out = NULL;
		cjson_failing(at);
		rc = provider_anthropic.parse_response(&c, answer, strlen(answer), &out, &flags,
						       &u);
		cjson_failing(-1);
		assert_true(rc == TG_OK || rc == TG_ENOMEM || rc == TG_EINVAL);
		assert_true((rc == TG_OK) == (out != NULL));
		ok += rc == TG_OK;
		cJSON_Delete(out);
		n = 0;
		rc = 0;
		for (i = 0; i < TG_ARRAY_LEN(events) && rc == 0; i++) {
			const char *ev = J(events[i]);

			cjson_failing(at);
			rc = provider_anthropic.parse_stream_event(&s, NULL, ev, strlen(ev), drop,
								   &n);
			cjson_failing(-1);
			assert_true(rc == 0 || rc == TG_ENOMEM);
		}
		/* role, call start, arguments, finish, usage, error */
		ok += rc == 0 && n == 6 && s.done;
		provider_anthropic.stream_free(&s);
	}
	assert_int_equal(ok, 4);
	assert_true(at > 20); /* the early failures were seen */
	cJSON_Delete(req);
	cJSON_Delete(jreq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_system_and_merging),
		cmocka_unit_test(test_version_header),
		cmocka_unit_test(test_leading_assistant),
		cmocka_unit_test(test_final_assistant),
		cmocka_unit_test(test_images),
		cmocka_unit_test(test_tools_and_choice),
		cmocka_unit_test(test_tool_calls_and_results),
		cmocka_unit_test(test_max_tokens_and_stop),
		cmocka_unit_test(test_json_mode),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_answer_text_usage),
		cmocka_unit_test(test_answer_tool_use),
		cmocka_unit_test(test_answer_finish_reasons),
		cmocka_unit_test(test_answer_json_mode),
		cmocka_unit_test(test_answer_not_json),
		cmocka_unit_test(test_extract_usage),
		cmocka_unit_test(test_stream_text_and_tool),
		cmocka_unit_test(test_stream_json_mode),
		cmocka_unit_test(test_stream_error_and_stop),
		cmocka_unit_test(test_map_error),
		cmocka_unit_test(test_out_of_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
