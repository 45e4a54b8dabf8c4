/* fuzz_format.c: libFuzzer target for platforms/: the first byte picks a
 * platform and a mode, the rest is raw text (counted, fitted, threaded,
 * scanned for facets), a job as JSON (formatted, its request built), CMS
 * HTML, or a platform's answer to classify. Nothing may crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "platforms.h"
#include "queue.h"

static void answer(plat_account *a, const char *body, size_t n, int status)
{
    queue_job *j = queue_job_new();
    j->kind = plat_is_email(a->platform) ? QUEUE_KIND_EMAIL : QUEUE_KIND_POST;
    queue_set(&j->platform, a->platform);
    queue_set(&j->text, "hello");
    queue_set(&j->to, "a@example.com");
    queue_set(&j->subject, "s");
    queue_set(&j->idem_key, "hr-fuzz");
    plat_session sess = {0};
    sess.access = strdup("a");
    sess.did = strdup("did:plc:x");
    hr_err err = {0};
    plat_send *s = plat_send_new(a, &sess, j, NULL, &err);
    plat_header h[] = {{"retry-after", "Wed, 18 Nov 2026 11:08:10 GMT"},
                       {"x-rate-limit-remaining", (char *)"7"},
                       {"x-restli-id", "urn:li:share:1"},
                       {"x-app-usage", (char *)body}};
    plat_response r = {.status = status, .headers = h, .nheaders = 4, .body = body,
                       .body_len = n, .fully_sent = 1};
    for (int step = 0; s && step < 4; step++) {
        plat_request req;
        if (plat_send_request(s, &req, &err) != 0) break;
        plat_request_release(&req);
        plat_outcome o;
        plat_send_response(s, &r, &o);
        int next = o.kind == PLAT_OUT_NEXT;
        plat_outcome_release(&o);
        if (!next) break;
    }
    plat_request rb;
    if (s) memset(&rb, 0, sizeof rb);
    if (s && plat_send_readback(s, &rb, &err) == 0) {
        plat_request_release(&rb);
        plat_outcome o;
        plat_send_readback_response(s, &r, &o);
        plat_outcome_release(&o);
    }
    plat_engagement e;
    plat_outcome o;
    plat_engagement_parse(a, &r, &e, &o);
    plat_outcome_release(&o);
    plat_send_free(s);
    plat_session_release(&sess);
    queue_job_free(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *const *names = plat_names();
    int np = 0;
    while (names[np]) np++;
    const char *platform = names[data[0] % np];
    int mode = (data[0] / np) % 4;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    hr_err err = {0};
    plat_account *a = plat_account_default(platform, &err);
    if (!a) {
        free(text);
        return 0;
    }
    a->credential = strdup("secret");
    if (mode == 0) {
        plat_count_x(text);
        plat_count_mastodon(text);
        plat_count_utf16(text);
        plat_post p;
        for (int flags = 0; flags < 4; flags++) {
            if (plat_format_text(a, text, flags, &p, &err) == 0 && p.valid) {
                char *js = plat_preview_json(a, &p, NULL);
                free(js);
            }
            plat_post_release(&p);
        }
        char *f = plat_fit(a, text, 40);
        free(f);
        char *h = plat_hashtag(platform, text);
        free(h);
    } else if (mode == 1) {
        queue_job *j = queue_job_from_json(text, &err);
        if (j) {
            queue_set(&j->platform, platform);
            plat_ctx ctx = {.secret = "0123456789abcdef0123456789abcdef", .now_ms = 1};
            char *pv = plat_preview_job(a, j, &ctx, &err);
            free(pv);
            queue_job_free(j);
        }
    } else if (mode == 2) {
        char *t = plat_html_to_text(text, strlen(text));
        free(t);
        char *u = plat_add_utm(text, platform, "social", "c");
        free(u);
    } else {
        answer(a, text, strlen(text), 200 + (int)(size % 4) * 100 + (int)(size % 30));
    }
    plat_account_free(a);
    free(text);
    return 0;
}
