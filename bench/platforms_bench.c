/* platforms_bench.c: how fast platforms/ turns texts into what a platform
 * gets: count, facets and the request body, per platform, and fitting an
 * over-long text; the reference is one utf8proc grapheme pass over the same
 * texts (the least any Unicode-correct counter must do). Prints one JSON
 * object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platforms.h"

#define NTEXTS 512

static const char *pieces[] = {
    "Spring collection is here ", "新しいコレクション ", "👨‍👩‍👧 family ", "🇫🇷🇯🇵 ",
    "https://shop.example/blog/spring?ref=home#new ", "#SpringSale ", "@alice.bsky.social ",
    "e\xCC\x81t\xC3\xA9 ", "linen shirts, straw hats and sandals ", "shop.example.com/x ",
};

static char *texts[NTEXTS];
static long op_failures; /* an op that fails must not count as done fast */

static void make_texts(void)
{
    unsigned x = 12345;
    for (int i = 0; i < NTEXTS; i++) {
        hr_buf b;
        hr_buf_init(&b);
        while (b.len < 220) {
            x = x * 1103515245u + 12345u;
            hr_buf_puts(&b, pieces[(x >> 16) % HR_ARRAY_LEN(pieces)]);
        }
        texts[i] = hr_buf_detach(&b);
    }
}

typedef long (*op_fn)(const plat_account *a, const char *t);

static long op_reference(const plat_account *a, const char *t)
{
    return plat_count_graphemes(t);
}

static long op_format(const plat_account *a, const char *t)
{
    plat_post p;
    hr_err err = {0};
    long n = 0;
    if (plat_format_text(a, t, 0, &p, &err) != 0) op_failures++;
    else {
        queue_job *j = queue_job_new();
        queue_set(&j->text, t);
        queue_set(&j->idem_key, "hr-bench");
        plat_request req;
        if (plat_post_request(a, j, &p, &req, &err) == 0)
            n = (long)req.body_len;
        else
            op_failures++;
        plat_request_release(&req);
        queue_job_free(j);
    }
    plat_post_release(&p);
    return n;
}

static long op_fit(const plat_account *a, const char *t)
{
    char *f = plat_fit(a, t, 100);
    long n = f ? (long)strlen(f) : 0;
    free(f);
    return n;
}

/* rate runs op over the texts for about 0.5 s and returns ops per second */
static double rate(const plat_account *a, op_fn op)
{
    long done = 0, sink = 0;
    int64_t t0 = hr_mono_us(), t;
    do {
        for (int i = 0; i < NTEXTS; i++) sink += op(a, texts[i]);
        done += NTEXTS;
        t = hr_mono_us();
    } while (t - t0 < 500000);
    if (sink == 42) fprintf(stderr, "!");
    return (double)done * 1e6 / (double)(t - t0);
}

int main(void)
{
    make_texts();
    hr_err err = {0};
    const char *plats[] = {"x", "mastodon", "bluesky", "linkedin"};
    long graphemes = 0, bytes = 0;
    for (int i = 0; i < NTEXTS; i++) {
        graphemes += plat_count_graphemes(texts[i]);
        bytes += (long)strlen(texts[i]);
    }
    printf("{\"bench\":\"platforms\",\"texts\":%d,\"graphemes_per_text\":%.1f,"
           "\"bytes_per_text\":%.1f",
           NTEXTS, (double)graphemes / NTEXTS, (double)bytes / NTEXTS);
    plat_account *ref = plat_account_default("bluesky", &err);
    double r = rate(ref, op_reference);
    for (size_t i = 0; i < HR_ARRAY_LEN(plats); i++) {
        /* each account as configured in production (LinkedIn needs its
         * author URN to build a request) */
        char line[160];
        snprintf(line, sizeof line, "account %s:bench author=urn:li:organization:1 user-id=1",
                 plats[i]);
        hr_config *c = hr_config_parse(line, "bench", &err);
        plat_account *a = c ? plat_account_parse(&c->lines[0], "bench", &err) : NULL;
        hr_config_free(c);
        if (!a) {
            fprintf(stderr, "platforms_bench: %s\n", err.msg);
            return 1;
        }
        a->credential = hr_strdup("token");
        long f0 = op_failures;
        printf(",\"%s_format_per_s\":%.0f", plats[i], rate(a, op_format));
        fprintf(stderr, "platforms_bench: %s: %ld failed ops\n", plats[i], op_failures - f0);
        if (i == 0) printf(",\"x_fit_per_s\":%.0f", rate(a, op_fit));
        plat_account_free(a);
    }
    printf(",\"reference_grapheme_count_per_s\":%.0f,\"failed_ops\":%ld}\n", r, op_failures);
    plat_account_free(ref);
    for (int i = 0; i < NTEXTS; i++) free(texts[i]);
    return 0;
}
