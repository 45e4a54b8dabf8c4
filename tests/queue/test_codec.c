/* test_codec.c: the job codec: round trips, unknown fields kept, and
 * corrupt input rejected with a message (never a crash). */
#include <msgpack.h>
#include <stdlib.h>

#include "harness.h"
#include "queue.h"

static queue_job *sample(void)
{
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_EMAIL;
    queue_set(&j->platform, "sendgrid");
    queue_set(&j->account, "main");
    queue_set(&j->campaign, "spring");
    queue_set(&j->source, "wxr:1169");
    queue_set(&j->unique_key, "spring|wxr:1169|sendgrid|main|ann@example.com");
    j->run_at_ms = 1763757616123;
    queue_set(&j->to, "ann@example.com");
    queue_set(&j->subject, "Héllo ✍️");
    queue_set(&j->html, "<p>hi</p>");
    queue_job_set_var(j, "first_name", "Ann");
    queue_job_add_tag(j, "news");
    queue_job_add_tag(j, "spring sale");
    queue_job_set_meta(j, "template", "default");
    queue_job_assign_id(j);
    return j;
}

static void test_roundtrip(void)
{
    queue_job *j = sample();
    hr_buf b;
    hr_buf_init(&b);
    queue_job_encode(j, &b);
    hr_err err = {0};
    queue_job *d = queue_job_decode(b.data, b.len, &err);
    REQUIRE(d);
    CHECK_INT(d->kind, QUEUE_KIND_EMAIL);
    CHECK_STR(d->platform, "sendgrid");
    CHECK_STR(d->subject, "Héllo ✍️");
    CHECK_INT(d->run_at_ms, 1763757616123);
    CHECK_INT(d->ntags, 2);
    CHECK_STR(d->tags[1], "spring sale");
    CHECK_STR(queue_job_get_var(d, "first_name"), "Ann");
    CHECK_STR(queue_job_get_meta(d, "template"), "default");
    CHECK_STR(d->idem_key, j->idem_key);
    CHECK(d->text == NULL);
    /* re-encoding gives the same bytes */
    hr_buf b2;
    hr_buf_init(&b2);
    queue_job_encode(d, &b2);
    CHECK_INT(b2.len, b.len);
    CHECK(memcmp(b.data, b2.data, b.len) == 0);
    hr_buf_release(&b);
    hr_buf_release(&b2);
    queue_job_free(j);
    queue_job_free(d);
}

/* The stored value leaves out what the id says (the default idem key, the
 * creation time) and the fields at their defaults; the stored reader gives
 * the same job back. A caller's own idem key is kept. */
static void test_stored_value(void)
{
    queue_job *j = sample();
    j->kind = QUEUE_KIND_POST;
    hr_buf full, st;
    hr_buf_init(&full);
    hr_buf_init(&st);
    queue_job_encode(j, &full);
    queue_job_encode_stored(j, &st);
    CHECK(st.len + 20 < full.len + QUEUE_TS_LEN);
    CHECK(memcmp(st.data, j->id, QUEUE_TS_LEN) == 0);
    hr_err err = {0};
    queue_job *d = queue_job_decode_stored(queue_job_ukh(j), st.data, st.len, &err);
    REQUIRE(d);
    CHECK_STR(d->id, j->id);
    CHECK_STR(d->idem_key, j->idem_key);
    CHECK_INT(d->created_ms, j->created_ms);
    CHECK_INT(d->kind, QUEUE_KIND_POST);
    CHECK_INT(d->attempt, 0);
    CHECK_INT(d->max_attempts, 5);
    queue_job_free(d);
    queue_set(&j->idem_key, "order-42");
    j->attempt = 2;
    hr_buf_reset(&st);
    queue_job_encode_stored(j, &st);
    d = queue_job_decode_stored(queue_job_ukh(j), st.data, st.len, &err);
    REQUIRE(d);
    CHECK_STR(d->idem_key, "order-42");
    CHECK_INT(d->attempt, 2);
    queue_job_free(d);
    hr_buf_release(&full);
    hr_buf_release(&st);
    queue_job_free(j);
}

static void test_ids(void)
{
    queue_job *a = sample(), *b = sample();
    CHECK_INT(strlen(a->id), QUEUE_ID_LEN);
    /* same unique key, same ukh */
    CHECK_STR(queue_job_ukh(a), queue_job_ukh(b));
    queue_job *c = queue_job_new(), *d = queue_job_new();
    c->created_ms = 1000;
    d->created_ms = 2000;
    queue_job_assign_id(c);
    queue_job_assign_id(d);
    CHECK(strcmp(queue_job_ukh(c), queue_job_ukh(d)) != 0); /* random ukhs differ */
    CHECK(strcmp(c->id, d->id) < 0);                       /* ids sort by time */
    CHECK(strncmp(c->idem_key, "hr-", 3) == 0);
    queue_job_free(a);
    queue_job_free(b);
    queue_job_free(c);
    queue_job_free(d);
}

static int write_cb(void *data, const char *buf, size_t len)
{
    hr_buf_append(data, buf, len);
    return 0;
}

static void test_unknown_fields_kept(void)
{
    /* a job written by a "newer herald": known fields plus field 99 and a
     * string key */
    hr_buf b;
    hr_buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, write_cb);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_int(&pk, 7); /* a future codec version */
    msgpack_pack_int(&pk, 3);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_int(&pk, 99);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "future", 6);
    msgpack_pack_str_with_body(&pk, "yes", 3);
    hr_err err = {0};
    queue_job *j = queue_job_decode(b.data, b.len, &err);
    REQUIRE(j);
    CHECK_STR(j->platform, "x");
    CHECK_INT(j->extra_count, 2);
    hr_buf out;
    hr_buf_init(&out);
    queue_job_encode(j, &out);
    queue_job *k = queue_job_decode(out.data, out.len, &err);
    REQUIRE(k);
    CHECK_INT(k->extra_count, 2);
    CHECK_INT(k->extra_len, j->extra_len);
    CHECK(memcmp(k->extra, j->extra, j->extra_len) == 0);
    hr_buf_release(&b);
    hr_buf_release(&out);
    queue_job_free(j);
    queue_job_free(k);
}

static void test_corrupt(void)
{
    queue_job *j = sample();
    hr_buf b;
    hr_buf_init(&b);
    queue_job_encode(j, &b);
    hr_err err = {0};
    /* every truncation fails cleanly */
    for (size_t n = 0; n < b.len; n++) {
        hr_err_clear(&err);
        queue_job *d = queue_job_decode(b.data, n, &err);
        CHECK(d == NULL);
        CHECK(err.msg[0] != '\0');
        queue_job_free(d);
    }
    /* hostile lengths: an array claiming 2^32-1 elements */
    const unsigned char huge[] = {0x81, 0x18, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    hr_err_clear(&err);
    CHECK(queue_job_decode(huge, sizeof huge, &err) == NULL);
    CHECK(strstr(err.msg, "corrupt") != NULL);
    /* wrong types */
    const unsigned char badtype[] = {0x82, 0x00, 0x01, 0x03, 0x05}; /* platform = 5 */
    hr_err_clear(&err);
    CHECK(queue_job_decode(badtype, sizeof badtype, &err) == NULL);
    CHECK(strstr(err.msg, "platform") != NULL);
    const unsigned char noversion[] = {0x81, 0x03, 0xa1, 'x'};
    hr_err_clear(&err);
    CHECK(queue_job_decode(noversion, sizeof noversion, &err) == NULL);
    CHECK(strstr(err.msg, "version") != NULL);
    const char *garbage = "this is not msgpack at all";
    hr_err_clear(&err);
    CHECK(queue_job_decode(garbage, strlen(garbage), &err) == NULL);
    /* deep nesting */
    unsigned char deep[64];
    deep[0] = 0x81;
    deep[1] = 0x63;
    for (int i = 2; i < 64; i++) deep[i] = 0x91;
    hr_err_clear(&err);
    CHECK(queue_job_decode(deep, sizeof deep, &err) == NULL);
    /* random flips never crash */
    srand(7);
    for (int round = 0; round < 2000; round++) {
        char *m = malloc(b.len);
        memcpy(m, b.data, b.len);
        for (int f = 0; f < 3; f++) m[rand() % (int)b.len] ^= (char)(1 << (rand() % 8));
        hr_err_clear(&err);
        queue_job_free(queue_job_decode(m, b.len, &err));
        free(m);
    }
    hr_buf_release(&b);
    queue_job_free(j);
}

static void test_json(void)
{
    queue_job *j = sample();
    char *s = queue_job_to_json(j);
    hr_err err = {0};
    queue_job *k = queue_job_from_json(s, &err);
    REQUIRE(k);
    CHECK_STR(k->id, j->id);
    CHECK_STR(k->to, "ann@example.com");
    CHECK_INT(k->run_at_ms, j->run_at_ms);
    CHECK_STR(queue_job_get_var(k, "first_name"), "Ann");
    free(s);
    queue_job_free(k);
    hr_err_clear(&err);
    CHECK(queue_job_from_json("{\"tags\": [1]}", &err) == NULL);
    CHECK(strstr(err.msg, "tags") != NULL);
    hr_err_clear(&err);
    CHECK(queue_job_from_json("{\"platform\": ", &err) == NULL);
    CHECK(strstr(err.msg, "line 1") != NULL);
    /* attempt counts outside the codec's range are refused, not truncated
     * into a job that encodes but never decodes (fuzz_format found it) */
    const char *bad[] = {"{\"attempt\": 7165039251369478}", "{\"attempt\": -1}",
                         "{\"max_attempts\": 1000001}"};
    for (int i = 0; i < 3; i++) {
        hr_err_clear(&err);
        CHECK(queue_job_from_json(bad[i], &err) == NULL);
        CHECK(strstr(err.msg, "attempt") != NULL);
    }
    k = queue_job_from_json("{\"attempt\": 1000000, \"max_attempts\": 0}", &err);
    REQUIRE(k);
    CHECK_INT(k->attempt, QUEUE_ATTEMPTS_LIMIT);
    queue_job *d = queue_job_dup(k); /* encodes and decodes */
    CHECK_INT(d->attempt, QUEUE_ATTEMPTS_LIMIT);
    queue_job_free(d);
    queue_job_free(k);
    queue_job_free(j);
}

int main(void)
{
    th_run("roundtrip", test_roundtrip);
    th_run("stored_value", test_stored_value);
    th_run("ids", test_ids);
    th_run("unknown_fields_kept", test_unknown_fields_kept);
    th_run("corrupt", test_corrupt);
    th_run("json", test_json);
    return th_main_end();
}
