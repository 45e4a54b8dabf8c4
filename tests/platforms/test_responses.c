/* test_responses.c: recorded platform answers, one script per file in
 * data/responses/: each sends a job (or reads back, or polls engagement)
 * through the platform's step machine and checks every request's method and
 * path and every outcome. Format: see data/responses/README. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "platforms.h"
#include "tdata.h"

#define NOW_MS 1795000000000LL /* Wed, 18 Nov 2026 11:06:40 GMT */

typedef struct script {
    const char *file;
    char *account, *job, *mode, *session, *post_id;
    char *sent_after; /* plat_ctx.sent_after_ms: RFC 3339, or -1 */
} script;

static plat_account *load_account(const char *line, const char *file)
{
    hr_err err = {0};
    char *text = hr_asprintf("account %s\n", line);
    hr_config *c = hr_config_parse(text, file, &err);
    free(text);
    if (!c) return NULL;
    int pos = -1;
    plat_account *a = plat_account_parse(hr_config_next(c, "account", &pos), file, &err);
    if (a) a->credential = hr_strdup("TOKEN");
    else fprintf(stderr, "%s: %s\n", file, err.msg);
    hr_config_free(c);
    return a;
}

static const char *kind_name(plat_outcome_kind k) { return plat_outcome_name(k); }

/* check one "=== kind arg" line against o (and e for engagement) */
static void check_outcome(const script *s, int lineno, const char *want, const plat_outcome *o,
                          const plat_engagement *e)
{
    char kind[32] = "";
    const char *arg = "";
    sscanf(want, "%31s", kind);
    arg = want + strlen(kind);
    while (*arg == ' ') arg++;
    int bad = strcmp(kind, kind_name(o->kind)) != 0;
    if (!bad && *arg) {
        if (e && strcmp(kind, "sent") == 0) {
            char got[160];
            snprintf(got, sizeof got, "likes=%ld reposts=%ld replies=%ld quotes=%ld views=%ld",
                     e->likes, e->reposts, e->replies, e->quotes, e->views);
            bad = strcmp(got, arg) != 0;
            if (bad) fprintf(stderr, "%s:%d: engagement %s\n", s->file, lineno, got);
        } else if (strcmp(kind, "sent") == 0) {
            bad = !o->platform_id || strcmp(o->platform_id, arg) != 0;
        } else if (strcmp(kind, "retry") == 0) {
            bad = o->retry_after_ms != strtoll(arg, NULL, 10);
        } else {
            bad = strstr(o->message, arg) == NULL;
        }
    }
    if (bad) {
        fprintf(stderr, "%s:%d: got %s id=%s retry=%lld \"%s\", expected %s\n", s->file, lineno,
                kind_name(o->kind), o->platform_id ? o->platform_id : "-",
                (long long)o->retry_after_ms, o->message, want);
        th_failures++;
    }
}

static void run_script(const char *path, const char *name)
{
    size_t len;
    char *data = th_read_file(path, &len);
    if (!data) {
        th_failures++;
        return;
    }
    script s = {.file = name};
    char **lines = NULL;
    int nl = 0;
    /* empty lines separate headers from bodies: split by hand */
    for (char *p = data; p && *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        lines = hr_realloc(lines, (size_t)(nl + 1) * sizeof *lines);
        lines[nl++] = p;
        p = e ? e + 1 : NULL;
    }
    int i = 0;
    for (; i < nl && strncmp(lines[i], ">>>", 3) != 0; i++) {
        char *l = lines[i];
        if (l[0] == '#' || !l[0]) continue;
        char *colon = strchr(l, ':');
        if (!colon) continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ') v++;
        if (strcmp(l, "account") == 0) s.account = v;
        else if (strcmp(l, "job") == 0) s.job = v;
        else if (strcmp(l, "mode") == 0) s.mode = v;
        else if (strcmp(l, "session") == 0) s.session = v;
        else if (strcmp(l, "post-id") == 0) s.post_id = v;
        else if (strcmp(l, "sent-after") == 0) s.sent_after = v;
    }
    plat_account *a = s.account ? load_account(s.account, name) : NULL;
    hr_err err = {0};
    queue_job *j = s.job ? queue_job_from_json(s.job, &err) : NULL;
    if (!a || (!j && s.job)) {
        fprintf(stderr, "%s: bad script header: %s\n", name, err.msg);
        th_failures++;
        goto out;
    }
    plat_session sess = {0};
    if (s.session) {
        char acc[256] = "", ref[256] = "", did[256] = "";
        sscanf(s.session, "%255s %255s %255s", acc, ref, did);
        if (strcmp(acc, "-")) sess.access = hr_strdup(acc);
        if (strcmp(ref, "-")) sess.refresh = hr_strdup(ref);
        if (strcmp(did, "-")) sess.did = hr_strdup(did);
    }
    const char *mode = s.mode ? s.mode : "send";
    plat_ctx ctx = {.now_ms = NOW_MS, .secret = "0123456789abcdef0123456789abcdef"};
    if (s.sent_after && (strcmp(s.sent_after, "-1") == 0 ||
                         hr_parse_rfc3339(s.sent_after, &ctx.sent_after_ms) != 0))
        ctx.sent_after_ms = -1;
    plat_send *snd = NULL;
    if (strcmp(mode, "engagement") != 0) {
        snd = plat_send_new(a, &sess, j, &ctx, &err);
        if (!snd) {
            fprintf(stderr, "%s: %s\n", name, err.msg);
            th_failures++;
            goto out_sess;
        }
    }
    int steps = 0;
    while (i < nl) {
        /* >>> METHOD PATH */
        int req_line = i + 1;
        char method[16] = "", want_path[2048] = "";
        sscanf(lines[i] + 3, " %15s %2047s", method, want_path);
        i++;
        plat_request req;
        int rc;
        if (strcmp(mode, "engagement") == 0)
            rc = plat_engagement_request(a, &sess, s.post_id, &req, &err);
        else if (strcmp(mode, "readback") == 0)
            rc = plat_send_readback(snd, &req, &err);
        else
            rc = plat_send_request(snd, &req, &err);
        if (rc != 0) {
            fprintf(stderr, "%s:%d: request: %s\n", name, req_line, err.msg);
            th_failures++;
            plat_request_release(&req);
            break;
        }
        const char *got_path = req.url;
        if (strncmp(got_path, a->base_url, strlen(a->base_url)) == 0)
            got_path += strlen(a->base_url);
        if (strcmp(req.method, method) != 0 || strcmp(got_path, want_path) != 0) {
            fprintf(stderr, "%s:%d: request %s %s, expected %s %s\n", name, req_line, req.method,
                    got_path, method, want_path);
            th_failures++;
        }
        /* ~~~ TEXT: the request body must contain TEXT */
        for (; i < nl && strncmp(lines[i], "~~~ ", 4) == 0; i++) {
            if (!req.body || !strstr(req.body, lines[i] + 4)) {
                fprintf(stderr, "%s:%d: request body lacks %s: %s\n", name, i + 1, lines[i] + 4,
                        req.body ? req.body : "(none)");
                th_failures++;
            }
        }
        /* <<< STATUS | <<< timeout|reset|connect [sent] */
        plat_response r = {0};
        if (i < nl && strncmp(lines[i], "<<<", 3) == 0) {
            char what[32] = "", sent[16] = "";
            sscanf(lines[i] + 3, " %31s %15s", what, sent);
            if (strcmp(what, "timeout") == 0) r.terr = PLAT_TE_TIMEOUT;
            else if (strcmp(what, "reset") == 0) r.terr = PLAT_TE_RESET;
            else if (strcmp(what, "connect") == 0) r.terr = PLAT_TE_CONNECT;
            else r.status = strtol(what, NULL, 10);
            r.fully_sent = strcmp(sent, "sent") == 0 || r.terr == PLAT_TE_NONE;
            i++;
        }
        plat_header hs[32];
        int nh = 0;
        for (; i < nl && lines[i][0] && strncmp(lines[i], "===", 3) != 0; i++) {
            char *c = strchr(lines[i], ':');
            if (!c || nh == 32) continue;
            *c = '\0';
            char *v = c + 1;
            while (*v == ' ') v++;
            hs[nh++] = (plat_header){lines[i], v};
        }
        if (i < nl && !lines[i][0]) i++;
        hr_buf body;
        hr_buf_init(&body);
        for (; i < nl && strncmp(lines[i], "===", 3) != 0; i++) {
            if (body.len) hr_buf_putc(&body, '\n');
            hr_buf_puts(&body, lines[i]);
        }
        r.headers = hs;
        r.nheaders = nh;
        r.body = body.data;
        r.body_len = body.len;
        plat_outcome o;
        plat_engagement e;
        if (strcmp(mode, "engagement") == 0)
            plat_engagement_parse(a, &r, &e, &o);
        else if (strcmp(mode, "readback") == 0)
            plat_send_readback_response(snd, &r, &o);
        else
            plat_send_response(snd, &r, &o);
        if (i < nl) {
            check_outcome(&s, i + 1, lines[i] + 4, &o,
                          strcmp(mode, "engagement") == 0 ? &e : NULL);
            i++;
        }
        /* +++ quota REMAINING */
        if (i < nl && strncmp(lines[i], "+++ quota ", 10) == 0) {
            CHECK_INT(o.quota_remaining, strtol(lines[i] + 10, NULL, 10));
            i++;
        }
        while (i < nl && strncmp(lines[i], ">>>", 3) != 0) i++;
        plat_outcome_release(&o);
        hr_buf_release(&body);
        plat_request_release(&req);
        steps++;
    }
    CHECK(steps > 0);
    plat_send_free(snd);
out_sess:
    plat_session_release(&sess);
out:
    queue_job_free(j);
    plat_account_free(a);
    free(lines);
    free(data);
}

static void test_recorded(void)
{
    int n = td_each_file("responses", ".txt", run_script);
    CHECK(n >= 20);
}

static void test_retry_after(void)
{
    CHECK_INT(plat_parse_retry_after("120", NOW_MS), 120000);
    CHECK_INT(plat_parse_retry_after("Wed, 18 Nov 2026 11:08:10 GMT", NOW_MS), 90000);
    CHECK_INT(plat_parse_retry_after("Wed, 18 Nov 2026 11:00:00 GMT", NOW_MS), 0);
    CHECK_INT(plat_parse_retry_after("soon", NOW_MS), -1);
    CHECK_INT(plat_parse_retry_after(NULL, NOW_MS), -1);
    CHECK_INT(plat_parse_retry_after("-5", NOW_MS), -1);
    /* absurd waits are a day: no overflow, no retry at once */
    CHECK_INT(plat_parse_retry_after("86401", NOW_MS), 86400000);
    CHECK_INT(plat_parse_retry_after("9223372036854775807", NOW_MS), 86400000);
    CHECK_INT(plat_parse_retry_after("9223372036854775", NOW_MS), 86400000);
    CHECK_INT(plat_parse_retry_after("99999999999999999999999", NOW_MS), 86400000);
    CHECK_INT(plat_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW_MS), 86400000);
}

/* A platform's reset time is measured against its own clock (the answer's
 * Date): 30 s behind this host, a reset 20 s ahead of it is 20 s ahead,
 * not 10 s past (which would retry at once); the quota's reset is given in
 * the caller's clock. Without a Date, the caller's clock it is. */
static void test_reset_platform_clock(void)
{
    plat_header h[] = {{.name = "Date", .value = "Wed, 18 Nov 2026 11:06:10 GMT"},
                       {.name = "x-rate-limit-remaining", .value = "0"},
                       {.name = "x-rate-limit-reset", .value = "1794999990"}};
    plat_response r = {.status = 429, .headers = h, .nheaders = 3, .body = "", .body_len = 0};
    plat_outcome o;
    memset(&o, 0, sizeof o);
    CHECK_INT(plat_classify_http(&r, NOW_MS, &o), 1);
    CHECK(o.kind == PLAT_OUT_RETRY);
    CHECK_INT(o.retry_after_ms, 20000);
    CHECK_INT(o.quota_reset_ms, NOW_MS + 20000);
    plat_outcome_release(&o);
    /* an HTTP-date Retry-After is the platform's time too */
    plat_header ra[] = {{.name = "Date", .value = "Wed, 18 Nov 2026 11:06:10 GMT"},
                        {.name = "Retry-After", .value = "Wed, 18 Nov 2026 11:06:25 GMT"}};
    plat_response r2 = {.status = 429, .headers = ra, .nheaders = 2, .body = "", .body_len = 0};
    memset(&o, 0, sizeof o);
    plat_classify_http(&r2, NOW_MS, &o);
    CHECK_INT(o.retry_after_ms, 15000);
    plat_outcome_release(&o);
    /* no Date: the reset is past by the caller's clock: no wait named (the
     * worker's policy puts a floor under it) */
    r.headers = h + 1;
    r.nheaders = 2;
    memset(&o, 0, sizeof o);
    plat_classify_http(&r, NOW_MS, &o);
    CHECK(o.kind == PLAT_OUT_RETRY && o.retry_after_ms == 0);
    plat_outcome_release(&o);
}

/* Mastodon's read-back without account-id repeats the POST with the same
 * Idempotency-Key, which Mastodon honours for an hour: an attempt that may
 * be older (or whose time is not known) gets no read-back at all rather
 * than a second post. */
static void test_mastodon_key_window(void)
{
    plat_account *a = load_account("mastodon:@shop@m.example base-url=http://api.test", "t");
    hr_err err = {0};
    queue_job *j = queue_job_from_json(
        "{\"kind\":\"post\",\"platform\":\"mastodon\",\"account\":\"@shop@m.example\","
        "\"text\":\"Hello fediverse\",\"idempotency_key\":\"hr-m1\"}",
        &err);
    REQUIRE(a && j);
    const struct {
        int64_t after;
        int post;
    } cases[] = {{0, 1}, {NOW_MS - 10 * 60000, 1}, {NOW_MS - 2 * 3600000, 0}, {-1, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plat_session sess = {0};
        plat_ctx ctx = {.now_ms = NOW_MS, .sent_after_ms = cases[i].after};
        plat_send *s = plat_send_new(a, &sess, j, &ctx, &err);
        REQUIRE(s);
        plat_request req;
        int rc = plat_send_readback(s, &req, &err);
        if (cases[i].post) {
            CHECK_INT(rc, 0);
            CHECK_STR(req.method, "POST");
        } else {
            CHECK_INT(rc, -1);
            CHECK(strstr(err.msg, "older than the hour") != NULL);
        }
        plat_request_release(&req);
        plat_send_free(s);
        plat_session_release(&sess);
    }
    queue_job_free(j);
    plat_account_free(a);
}

int main(void)
{
    th_run("recorded", test_recorded);
    th_run("retry_after", test_retry_after);
    th_run("reset_platform_clock", test_reset_platform_clock);
    th_run("mastodon_key_window", test_mastodon_key_window);
    return th_main_end();
}
