/* test_smtp.c: plat_smtp_setup drives a real libcurl SMTP transfer to a
 * minimal SMTP peer on loopback (the harness's sink, which answers the
 * RFC 5321 happy path and records the envelope and message), so the
 * envelope, headers and MIME body herald builds are checked as sent. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "harness.h"
#include "platforms.h"

static long send_once(int code, char **log)
{
    char *dir = th_tempdir(), *log_path = hr_asprintf("%s/smtp.log", dir);
    int port = 0;
    pid_t sink = th_smtp_start(code, log_path, &port);
    char *line = hr_asprintf("account smtp:main base-url=smtp://127.0.0.1:%d from=news@shop.example "
                             "\"from-name=Shöp News\" unsubscribe-base=https://hooks.shop.example "
                             "starttls=off\n",
                             port);
    hr_err err = {0};
    hr_config *c = hr_config_parse(line, "t.conf", &err);
    free(line);
    int pos = -1;
    plat_account *a = c ? plat_account_parse(hr_config_next(c, "account", &pos), "t.conf", &err)
                        : NULL;
    if (!a) {
        fprintf(stderr, "account: %s\n", err.msg);
        abort();
    }
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_EMAIL;
    queue_set(&j->platform, "smtp");
    queue_set(&j->account, "main");
    queue_set(&j->campaign, "spring");
    queue_set(&j->to, "ann@example.com");
    queue_set(&j->to_name, "Ann Lee");
    queue_set(&j->subject, "Grüße, {{first_name}}");
    queue_set(&j->html, "<p>Hallo {{first_name}}</p>");
    queue_job_assign_id(j);
    plat_ctx ctx = {.secret = "0123456789abcdef0123456789abcdef"};
    plat_session sess = {0};
    plat_send *s = plat_send_new(a, &sess, j, &ctx, &err);
    long code_seen = -1;
    if (!s) {
        fprintf(stderr, "send: %s\n", err.msg);
        th_failures++;
    } else {
        plat_request req;
        CHECK(plat_send_request(s, &req, &err) == 0);
        CHECK_STR(req.method, "SMTP");
        plat_request_release(&req);
        CURL *e = curl_easy_init();
        struct plat_smtp_owned *own = NULL;
        CHECK(plat_smtp_setup(s, e, &own, &err) == 0);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
        CURLcode rc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code_seen);
        plat_response r = {.status = code_seen, .fully_sent = 1,
                           .terr = rc == CURLE_OK || code_seen >= 400 ? PLAT_TE_NONE
                                                                      : PLAT_TE_OTHER};
        plat_outcome o;
        plat_send_response(s, &r, &o);
        if (code == 250) {
            CHECK_INT(rc, CURLE_OK);
            CHECK_INT(o.kind, PLAT_OUT_SENT);
            CHECK(o.platform_id && strstr(o.platform_id, ".herald@shop.example>") != NULL);
        } else if (code == 450) {
            CHECK_INT(o.kind, PLAT_OUT_TRANSIENT);
        } else {
            CHECK_INT(o.kind, PLAT_OUT_PERMANENT);
        }
        plat_outcome_release(&o);
        curl_easy_cleanup(e);
        plat_smtp_cleanup(own);
    }
    th_kill(sink, SIGKILL);
    plat_send_free(s);
    queue_job_free(j);
    plat_account_free(a);
    hr_config_free(c);
    *log = th_read_file(log_path, NULL);
    free(log_path);
    free(dir);
    return code_seen;
}

static void test_message(void)
{
    char *log;
    send_once(250, &log);
    REQUIRE(log);
    if (getenv("SMTP_DUMP")) fputs(log, stderr);
    CHECK(strstr(log, "MAIL FROM:<news@shop.example>") != NULL);
    CHECK(strstr(log, "RCPT TO:<ann@example.com>") != NULL);
    CHECK(strstr(log, "Subject: =?UTF-8?B?R3LDvMOfZSwgQW5u?=") != NULL); /* "Grüße, Ann" */
    CHECK(strstr(log, "From: =?UTF-8?B?U2jDtnAgTmV3cw==?= <news@shop.example>") != NULL);
    CHECK(strstr(log, "To: Ann Lee <ann@example.com>") != NULL);
    CHECK(strstr(log, "List-Unsubscribe: <https://hooks.shop.example/u/") != NULL);
    CHECK(strstr(log, "List-Unsubscribe-Post: List-Unsubscribe=One-Click") != NULL);
    CHECK(strstr(log, "Message-ID: <") != NULL);
    CHECK(strstr(log, "multipart/alternative") != NULL);
    CHECK(strstr(log, "text/plain; charset=utf-8") != NULL);
    CHECK(strstr(log, "text/html; charset=utf-8") != NULL);
    CHECK(strstr(log, "quoted-printable") != NULL);
    free(log);
}

static void test_refusals(void)
{
    char *log;
    CHECK_INT(send_once(450, &log), 450);
    free(log);
    CHECK_INT(send_once(550, &log), 550);
    free(log);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    th_run("message", test_message);
    th_run("refusals", test_refusals);
    curl_global_cleanup();
    return th_main_end();
}
