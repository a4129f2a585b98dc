/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for control-socket request checking and reply framing
 * (vmm/api/request.c): every malformed request gets one error reply of the
 * documented class, and good ones come out with their command, id and args.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "vmm/api/request.h"

/* Parses s; returns the error class ("" on success) and fills req. */
static const char *parse(const char *s, struct api_request *req, json_t **reply)
{
	static char cls[64];
	int r = api_request_parse(s, strlen(s), req, reply);
	if (r == 0) {
		assert_null(*reply);
		return "";
	}
	assert_non_null(*reply);
	json_t *err = json_object_get(*reply, "error");
	assert_non_null(err);
	assert_non_null(json_string_value(json_object_get(err, "desc")));
	snprintf(cls, sizeof(cls), "%s", json_string_value(json_object_get(err, "class")));
	return cls;
}

static void expect_error(const char *s, const char *cls)
{
	struct api_request req;
	json_t *reply;
	assert_string_equal(parse(s, &req, &reply), cls);
	json_decref(reply);
}

static void test_good_requests(void **state)
{
	(void)state;
	struct api_request req;
	json_t *reply;
	assert_string_equal(parse("{\"cmd\":\"pause\"}", &req, &reply), "");
	assert_int_equal(req.cmd, API_CMD_PAUSE);
	assert_null(req.id);
	api_request_free(&req);

	assert_string_equal(
	    parse("  {\"id\": [1, \"a\"], \"cmd\": \"shutdown\", \"args\": {\"timeout\": 7}} ", &req, &reply),
	    "");
	assert_int_equal(req.cmd, API_CMD_SHUTDOWN);
	assert_int_equal(req.shutdown_timeout, 7);
	assert_true(json_is_array(req.id));
	json_t *ok = api_reply_ok(req.id, json_pack("{s:i}", "x", 1));
	size_t len;
	char *line = api_line(ok, &len);
	assert_string_equal(line, "{\"id\":[1,\"a\"],\"return\":{\"x\":1}}\n");
	assert_int_equal(len, strlen(line));
	free(line);
	json_decref(ok);
	api_request_free(&req);

	for (unsigned i = 0; i < API_CMD_COUNT; i++) {
		char buf[96];
		snprintf(buf, sizeof(buf), "{\"cmd\":\"%s\",\"args\":{%s}}", api_cmd_name(i),
			 i == API_CMD_SAVE	? "\"path\":\"/tmp/s\""
			 : i == API_CMD_MIGRATE ? "\"uri\":\"tcp:h:1\""
						: "");
		assert_string_equal(parse(buf, &req, &reply), "");
		assert_int_equal(req.cmd, i);
		assert_int_equal(req.shutdown_timeout, -1);
		assert_false(req.auto_converge);
		api_request_free(&req);
	}

	assert_string_equal(parse("{\"cmd\":\"migrate\",\"args\":{\"uri\":\"tcp:h:1\",\"timeout\":9,"
				  "\"auto_converge\":true}}",
				  &req, &reply),
			    "");
	assert_true(req.auto_converge);
	assert_int_equal(req.mig_timeout, 9);
	api_request_free(&req);
}

static void test_bad_requests(void **state)
{
	(void)state;
	expect_error("", "ParseError");
	expect_error("{\"cmd\":\"info\"", "ParseError");
	expect_error("{\"cmd\":\"info\"} {}", "ParseError");
	expect_error("{\"cmd\":\"info\",\"cmd\":\"stop\"}", "ParseError");
	expect_error("{\"cmd\":\"in\\u0000fo\"}", "ParseError");
	expect_error("[]", "InvalidRequest");
	expect_error("\"info\"", "InvalidRequest");
	expect_error("{}", "InvalidRequest");
	expect_error("{\"cmd\":null}", "InvalidRequest");
	expect_error("{\"cmd\":\"info\",\"extra\":1}", "InvalidRequest");
	expect_error("{\"cmd\":\"INFO\"}", "CommandNotFound");
	/* Invalid UTF-8, and a long name cut inside a character: the reply must still encode. */
	expect_error("{\"\\\xcc\x9c\xdd\xc5\xdd\xd6\x96\x91\x90o\"}", "ParseError");
	expect_error("{\"cmd\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9\"}",
		     "CommandNotFound");
	expect_error("{\"cmd\":\"\"}", "CommandNotFound");
	expect_error("{\"cmd\":\"pause\",\"args\":[]}", "InvalidArgument");
	expect_error("{\"cmd\":\"pause\",\"args\":{\"timeout\":1}}", "InvalidArgument");
	expect_error("{\"cmd\":\"shutdown\",\"args\":{\"timeout\":-1}}", "InvalidArgument");
	expect_error("{\"cmd\":\"shutdown\",\"args\":{\"timeout\":3601}}", "InvalidArgument");
	expect_error("{\"cmd\":\"shutdown\",\"args\":{\"timeout\":1.5}}", "InvalidArgument");
	expect_error("{\"cmd\":\"shutdown\",\"args\":{\"timeout\":true}}", "InvalidArgument");
	expect_error("{\"cmd\":\"save\"}", "InvalidArgument");
	expect_error("{\"cmd\":\"migrate\"}", "InvalidArgument");
	expect_error("{\"cmd\":\"migrate\",\"args\":{\"uri\":\"udp:h:1\"}}", "InvalidArgument");
	expect_error("{\"cmd\":\"migrate\",\"args\":{\"uri\":\"tcp:h:1\",\"max_downtime_ms\":0}}",
		     "InvalidArgument");
	expect_error("{\"cmd\":\"migrate\",\"args\":{\"uri\":\"tcp:h:1\",\"bandwidth\":\"1G\"}}",
		     "InvalidArgument");
	expect_error("{\"cmd\":\"migrate\",\"args\":{\"uri\":\"tcp:h:1\",\"auto_converge\":1}}",
		     "InvalidArgument");
	expect_error("{\"cmd\":\"info\",\"args\":{\"auto_converge\":true}}", "InvalidArgument");
	expect_error("{\"cmd\":\"save\",\"args\":{\"path\":\"\"}}", "InvalidArgument");
	expect_error("{\"cmd\":\"save\",\"args\":{\"path\":5}}", "InvalidArgument");
	expect_error("{\"cmd\":\"save\",\"args\":{\"path\":\"/a\",\"timeout\":1}}", "InvalidArgument");
}

static void test_error_echoes_id(void **state)
{
	(void)state;
	struct api_request req;
	json_t *reply;
	assert_string_equal(parse("{\"id\":\"abc\",\"cmd\":\"nope\"}", &req, &reply), "CommandNotFound");
	assert_string_equal(json_string_value(json_object_get(reply, "id")), "abc");
	json_decref(reply);
	/* A request that is not JSON has no id to echo. */
	assert_string_equal(parse("{\"id\":\"abc\",", &req, &reply), "ParseError");
	assert_null(json_object_get(reply, "id"));
	json_decref(reply);
}

static void test_event_shape(void **state)
{
	(void)state;
	json_t *ev = api_event("paused", NULL);
	assert_string_equal(json_string_value(json_object_get(ev, "event")), "paused");
	assert_true(json_is_object(json_object_get(ev, "data")));
	assert_true(json_integer_value(json_object_get(json_object_get(ev, "timestamp"), "seconds")) >
		    1600000000);
	size_t len;
	char *line = api_line(ev, &len);
	assert_non_null(line);
	assert_int_equal(line[len - 1], '\n');
	assert_null(memchr(line, '\n', len - 1)); /* one object, one line */
	free(line);
	json_decref(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_requests),
	    cmocka_unit_test(test_bad_requests),
	    cmocka_unit_test(test_error_echoes_id),
	    cmocka_unit_test(test_event_shape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
