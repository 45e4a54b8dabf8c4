/* test_cli.c: `herald format` as people and scripts use it: raw text on
 * stdin counted as given, --fit, --job, --json fields, masked secrets and
 * exit statuses (docs/format.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common.h"
#include "harness.h"
#include "tdata.h"

static char *dir, *conf;

/* run_format pipes input into `herald format ARGS` (ARGS split at spaces);
 * returns the exit status and stdout in *out. */
static int run_format(const char *input, const char *args, char **out)
{
    char *copy = hr_strdup(args), *save = NULL, *argv[16];
    int n = 0;
    argv[n++] = HERALD_BIN;
    argv[n++] = "--config";
    argv[n++] = conf;
    argv[n++] = "format";
    for (char *t = strtok_r(copy, " ", &save); t && n < 15; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    int st = th_exec(argv, input, 0, out);
    free(copy);
    return st;
}

static void test_raw_json(void)
{
    char *out;
    CHECK_INT(run_format("Hello 世界 https://example.com\n", "--platform x --json", &out), 0);
    json_t *j = json_loads(out, 0, NULL);
    REQUIRE(j);
    CHECK_STR(json_string_value(json_object_get(j, "text")), "Hello 世界 https://example.com");
    CHECK_INT(json_integer_value(json_object_get(j, "length")), 34);
    CHECK_INT(json_integer_value(json_object_get(j, "limit")), 280);
    CHECK(json_is_true(json_object_get(j, "valid")));
    json_t *req = json_object_get(j, "request");
    CHECK_STR(json_string_value(json_object_get(req, "method")), "POST");
    CHECK_STR(json_string_value(json_object_get(req, "url")), "http://127.0.0.1:8700/2/tweets");
    CHECK_STR(json_string_value(json_object_get(json_object_get(req, "headers"),
                                                "Authorization")),
              "Bearer ***");
    CHECK(strstr(out, "xs3cret") == NULL);
    json_decref(j);
    free(out);
}

static void test_bluesky_facets(void)
{
    char *out;
    CHECK_INT(run_format("€ https://a.example #tag", "--platform bluesky --json", &out), 0);
    json_t *j = json_loads(out, 0, NULL);
    REQUIRE(j);
    json_t *f = json_object_get(j, "facets");
    REQUIRE(json_array_size(f) == 2);
    json_t *l = json_array_get(f, 0);
    CHECK_STR(json_string_value(json_object_get(l, "type")), "link");
    CHECK_INT(json_integer_value(json_object_get(l, "byteStart")), 4);
    CHECK_INT(json_integer_value(json_object_get(l, "byteEnd")), 21);
    CHECK_STR(json_string_value(json_object_get(l, "uri")), "https://a.example");
    json_t *t = json_array_get(f, 1);
    CHECK_STR(json_string_value(json_object_get(t, "tag")), "tag");
    /* the app password never shows */
    CHECK(strstr(out, "bsky-app-pw") == NULL);
    json_decref(j);
    free(out);
}

static void test_limits_and_fit(void)
{
    char *out;
    char *t = td_unescape("\\{280*a}");
    CHECK_INT(run_format(t, "--platform x", &out), 0);
    free(out);
    free(t);
    t = td_unescape("\\{281*a}");
    CHECK_INT(run_format(t, "--platform x", &out), 1);
    free(out);
    free(t);
    t = td_unescape("\\{100*word }https://shop.example #Tag");
    CHECK_INT(run_format(t, "--platform x --fit --json", &out), 0);
    json_t *j = json_loads(out, 0, NULL);
    REQUIRE(j);
    CHECK(json_integer_value(json_object_get(j, "length")) <= 280);
    const char *txt = json_string_value(json_object_get(j, "text"));
    CHECK(txt && strstr(txt, "word\xE2\x80\xA6 https://shop.example #Tag") != NULL);
    json_decref(j);
    free(out);
    free(t);
    CHECK_INT(run_format("x", "--platform nosuch", &out), 2);
    free(out);
    CHECK_INT(run_format("\xff\xfe", "--platform x", &out), 2);
    free(out);
}

static void test_job(void)
{
    char *out;
    const char *job = "{\"kind\":\"post\",\"platform\":\"mastodon\",\"account\":\"@shop@m.example\","
                      "\"title\":\"Spring\",\"link\":\"https://shop.example/s\",\"campaign\":\"c1\","
                      "\"tags\":[\"new in\"]}";
    CHECK_INT(run_format(job, "--job --json", &out), 0);
    json_t *j = json_loads(out, 0, NULL);
    REQUIRE(j);
    CHECK_STR(json_string_value(json_object_get(j, "text")),
              "Spring\n\nhttps://shop.example/s?utm_source=mastodon&utm_medium=social&utm_"
              "campaign=c1\n\n#NewIn");
    CHECK_INT(json_integer_value(json_object_get(j, "length")), 39);
    CHECK_INT(json_integer_value(json_object_get(j, "limit")), 450);
    json_decref(j);
    free(out);
    CHECK_INT(run_format("{not json", "--job", &out), 2);
    free(out);
}

/* a template variable with a line break would write its own header lines
 * into the email: format says invalid, naming the header (exit 1) */
static void test_email_header_injection(void)
{
    char *out;
    const char *job =
        "{\"kind\":\"email\",\"platform\":\"smtp\",\"account\":\"main\",\"campaign\":"
        "\"c1\",\"to\":\"reader@example.com\",\"subject\":\"Your {{company}} invoice\","
        "\"body_text\":\"Hi\",\"vars\":{\"company\":\"Acme\\r\\nReply-To: "
        "attacker@evil.example\"}}";
    CHECK_INT(run_format(job, "--job --json", &out), 1);
    json_t *j = json_loads(out, 0, NULL);
    REQUIRE(j);
    CHECK(json_is_false(json_object_get(j, "valid")));
    const char *reason = json_string_value(json_object_get(j, "reason"));
    CHECK(reason && strstr(reason, "Subject header") && strstr(reason, "line break"));
    json_decref(j);
    free(out);
}

int main(void)
{
    dir = th_tempdir();
    conf = hr_asprintf("%s/herald.conf", dir);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    th_write_file(conf,
                  "account x:@shop base-url=http://127.0.0.1:8700 credentials=x-shop\n"
                  "account bluesky:@shop.bsky.social base-url=http://127.0.0.1:8701 "
                  "credentials=bsky\n"
                  "account mastodon:@shop@m.example base-url=http://127.0.0.1:8702 limit=450\n"
                  "account smtp:main base-url=smtp://127.0.0.1:8703 from=news@shop.example\n");
    char *f = hr_asprintf("%s/x-shop", dir);
    th_write_file(f, "xs3cret\n");
    free(f);
    f = hr_asprintf("%s/bsky", dir);
    th_write_file(f, "bsky-app-pw\n");
    free(f);
    th_run("raw_json", test_raw_json);
    th_run("email_header_injection", test_email_header_injection);
    th_run("bluesky_facets", test_bluesky_facets);
    th_run("limits_and_fit", test_limits_and_fit);
    th_run("job", test_job);
    free(conf);
    free(dir);
    return th_main_end();
}
