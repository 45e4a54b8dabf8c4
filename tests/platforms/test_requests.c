/* test_requests.c: the first request of a job for each platform, checked
 * against the documented shape in data/requests/<name>.json (method, URL,
 * headers, the whole body; a string ending in '*' matches by prefix), with
 * secrets masked in what people see. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "platforms.h"
#include "tdata.h"

#define NOW_MS 1795000000000LL

static int match(json_t *want, json_t *got, int exact_keys, const char *where, const char *file)
{
    if (json_is_string(want)) {
        const char *w = json_string_value(want);
        size_t wl = strlen(w);
        if (!json_is_string(got)) goto bad;
        const char *g = json_string_value(got);
        if (wl && w[wl - 1] == '*' ? strncmp(w, g, wl - 1) == 0 : strcmp(w, g) == 0) return 1;
        goto bad;
    }
    if (json_is_object(want)) {
        if (!json_is_object(got)) goto bad;
        const char *k;
        json_t *v;
        json_object_foreach(want, k, v)
        {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", where, k);
            json_t *gv = json_object_get(got, k);
            if (!gv) {
                fprintf(stderr, "%s: %s missing\n", file, sub);
                return 0;
            }
            if (!match(v, gv, exact_keys, sub, file)) return 0;
        }
        if (exact_keys && json_object_size(want) != json_object_size(got)) {
            json_object_foreach(got, k, v) if (!json_object_get(want, k))
                fprintf(stderr, "%s: %s.%s not expected\n", file, where, k);
            return 0;
        }
        return 1;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(want) != json_array_size(got)) goto bad;
        for (size_t i = 0; i < json_array_size(want); i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", where, i);
            if (!match(json_array_get(want, i), json_array_get(got, i), exact_keys, sub, file))
                return 0;
        }
        return 1;
    }
    if (json_equal(want, got)) return 1;
bad:;
    char *w = json_dumps(want, JSON_ENCODE_ANY), *g = json_dumps(got, JSON_ENCODE_ANY);
    fprintf(stderr, "%s: %s is %s, expected %s\n", file, where, g ? g : "(none)", w);
    free(w);
    free(g);
    return 0;
}

static void run_case(const char *path, const char *name)
{
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    if (!c) {
        fprintf(stderr, "%s:%d: %s\n", name, je.line, je.text);
        th_failures++;
        return;
    }
    hr_err err = {0};
    char *line = hr_asprintf("account %s\n", json_string_value(json_object_get(c, "account")));
    hr_config *conf = hr_config_parse(line, name, &err);
    free(line);
    int pos = -1;
    plat_account *a = conf ? plat_account_parse(hr_config_next(conf, "account", &pos), name, &err)
                           : NULL;
    char *js = json_dumps(json_object_get(c, "job"), 0);
    queue_job *j = queue_job_from_json(js, &err);
    free(js);
    if (!a || !j) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        th_failures++;
        goto out;
    }
    a->credential = hr_strdup("TOKEN-S3CRET");
    plat_session sess = {0};
    json_t *sj = json_object_get(c, "session");
    if (sj) {
        sess.access = hr_strdup(json_string_value(json_array_get(sj, 0)));
        sess.refresh = hr_strdup(json_string_value(json_array_get(sj, 1)));
        sess.did = hr_strdup(json_string_value(json_array_get(sj, 2)));
    }
    plat_ctx ctx = {.now_ms = NOW_MS, .secret = "0123456789abcdef0123456789abcdef"};
    plat_send *s = plat_send_new(a, &sess, j, &ctx, &err);
    plat_request req = {0};
    if (!s || plat_send_request(s, &req, &err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        th_failures++;
    } else {
        char *masked = plat_request_json(&req, 1), *plain = plat_request_json(&req, 0);
        CHECK(strstr(masked, "TOKEN-S3CRET") == NULL);
        CHECK(strstr(masked, "ACCESSJWT") == NULL);
        json_t *got = json_loads(masked, 0, NULL);
        json_t *want = json_object_get(c, "expect");
        int ok = match(json_object_get(want, "method"), json_object_get(got, "method"), 1,
                       "method", name) &&
                 match(json_object_get(want, "url"), json_object_get(got, "url"), 1, "url",
                       name) &&
                 match(json_object_get(want, "headers"), json_object_get(got, "headers"), 0,
                       "headers", name);
        if (ok && json_object_get(want, "body"))
            ok = match(json_object_get(want, "body"), json_object_get(got, "body"), 1, "body",
                       name);
        if (!ok) {
            fprintf(stderr, "%s: request was %s\n", name, masked);
            th_failures++;
        }
        /* what the worker sends carries the real credential */
        CHECK(strstr(plain, "TOKEN-S3CRET") != NULL || sj || strcmp(a->platform, "mailgun") == 0 ||
              strcmp(a->platform, "webhook") == 0);
        json_decref(got);
        free(masked);
        free(plain);
    }
    plat_request_release(&req);
    plat_send_free(s);
    plat_session_release(&sess);
out:
    queue_job_free(j);
    plat_account_free(a);
    hr_config_free(conf);
    json_decref(c);
}

static void test_shapes(void)
{
    int n = td_each_file("requests", ".json", run_case);
    CHECK(n >= 10);
}

/* a job that cannot be sent is refused before any request is built */
static void test_refused(void)
{
    hr_err err = {0};
    plat_account *a = plat_account_default("x", &err);
    queue_job *j = queue_job_new();
    queue_set(&j->platform, "x");
    plat_session sess = {0};
    CHECK(plat_send_new(a, &sess, j, NULL, &err) == NULL);
    CHECK(strstr(err.msg, "empty") != NULL);
    plat_account *li = plat_account_default("linkedin", &err);
    queue_set(&j->text, "hi");
    plat_send *s = plat_send_new(li, &sess, j, NULL, &err);
    plat_request req;
    CHECK(plat_send_request(s, &req, &err) == -1);
    CHECK(strstr(err.msg, "author=") != NULL);
    plat_request_release(&req);
    plat_send_free(s);
    CHECK(plat_engagement_request(li, &sess, NULL, &req, &err) == -1);
    plat_account *sg = plat_account_default("sendgrid", &err);
    CHECK(plat_engagement_request(sg, &sess, "x", &req, &err) == -1);
    plat_account_free(sg);
    plat_account_free(li);
    queue_job_free(j);
    plat_account_free(a);
}

/* progress saved after part 1 of a thread makes a new send resume there */
static void test_progress(void)
{
    hr_err err = {0};
    plat_account *a = plat_account_default("threads", &err);
    queue_job *j = queue_job_new();
    queue_set(&j->platform, "threads");
    queue_set(&j->text, "hello");
    a->limit = 500;
    plat_session sess = {0};
    plat_send *s = plat_send_new(a, &sess, j, NULL, &err);
    REQUIRE(s);
    /* pretend the container was created: a retry must publish it, not
     * create another */
    plat_header h[] = {{"content-type", "application/json"}};
    plat_response r = {.status = 200, .headers = h, .nheaders = 1, .body = "{\"id\":\"C1\"}",
                       .body_len = 11, .fully_sent = 1};
    plat_request req;
    queue_job_free(j);
    j = queue_job_new();
    queue_set(&j->platform, "threads");
    queue_set(&j->text, "hello");
    (void)req;
    plat_outcome o;
    plat_send_response(s, &r, &o);
    CHECK_INT(o.kind, PLAT_OUT_NEXT);
    plat_outcome_release(&o);
    plat_send_save_progress(s, j);
    CHECK_STR(queue_job_get_meta(j, "container"), "C1");
    plat_send_free(s);
    plat_account_free(a);
    a = plat_account_parse(&(hr_conf_line){.key = "account", .argc = 2,
                                           .argv = (char *[]){"threads:shop", "user-id=9"},
                                           .line = 1},
                           "t", &err);
    REQUIRE(a);
    s = plat_send_new(a, &sess, j, NULL, &err);
    REQUIRE(s);
    REQUIRE(plat_send_request(s, &req, &err) == 0);
    CHECK(strstr(req.url, "/threads_publish") != NULL);
    CHECK(req.body && strstr(req.body, "creation_id=C1") != NULL);
    plat_request_release(&req);
    plat_send_free(s);
    queue_job_free(j);
    plat_account_free(a);
}

int main(void)
{
    th_run("progress", test_progress);
    th_run("shapes", test_shapes);
    th_run("refused", test_refused);
    return th_main_end();
}
