/* test_count.c: every counting rule against the vectors in
 * data/counting.txt, plus the limits each platform reports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "platforms.h"
#include "tdata.h"

static void test_vectors(void)
{
    char *path = td_path("counting.txt");
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, cases = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *t1 = strchr(line, '\t');
        char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t2) {
            fprintf(stderr, "counting.txt:%d: malformed\n", lineno);
            th_failures++;
            continue;
        }
        *t1 = *t2 = '\0';
        long want = strtol(t1 + 1, NULL, 10);
        char *text = td_unescape(t2 + 1);
        hr_err err = {0};
        plat_account *a = plat_account_default(line, &err);
        if (!a) {
            fprintf(stderr, "counting.txt:%d: %s\n", lineno, err.msg);
            th_failures++;
        } else {
            long got = plat_count(a, text);
            if (got != want) {
                fprintf(stderr, "counting.txt:%d: %s counts %ld, expected %ld: \"%s\"\n",
                        lineno, line, got, want, t2 + 1);
                th_failures++;
            }
            /* the same through the scheduler's entry point */
            long len, limit;
            CHECK(plat_count_text(line, text, &len, &limit) == 0 && len == want);
            /* valid exactly up to the limit */
            plat_post p;
            if (plat_format_text(a, text, 0, &p, &err) == 0 && want > 0)
                CHECK_INT(p.valid, want <= a->limit && (strcmp(line, "bluesky") != 0 ||
                                                        strlen(text) <= 3000));
            plat_post_release(&p);
            plat_account_free(a);
        }
        free(text);
        cases++;
    }
    free(line);
    fclose(f);
    free(path);
    CHECK(cases > 60);
}

static void test_invalid_utf8(void)
{
    const char *bad[] = {"\xff", "abc\xc3", "\xed\xa0\x80", "\xc0\xaf"};
    for (size_t i = 0; i < HR_ARRAY_LEN(bad); i++) {
        CHECK_INT(plat_count_x(bad[i]), -1);
        CHECK_INT(plat_count_mastodon(bad[i]), -1);
        CHECK_INT(plat_count_graphemes(bad[i]), -1);
        CHECK_INT(plat_count_utf16(bad[i]), -1);
        hr_err err = {0};
        plat_account *a = plat_account_default("bluesky", &err);
        plat_post p;
        CHECK(plat_format_text(a, bad[i], 0, &p, &err) == -1);
        CHECK(strstr(err.msg, "UTF-8") != NULL);
        plat_post_release(&p);
        plat_account_free(a);
    }
}

static void test_limits(void)
{
    struct {
        const char *p;
        long limit;
    } want[] = {{"x", 280},       {"mastodon", 500}, {"bluesky", 300},
                {"linkedin", 3000}, {"threads", 500},  {"facebook", 63206}};
    for (size_t i = 0; i < HR_ARRAY_LEN(want); i++) {
        hr_err err = {0};
        plat_account *a = plat_account_default(want[i].p, &err);
        REQUIRE(a);
        CHECK_INT(a->limit, want[i].limit);
        plat_account_free(a);
    }
    /* Bluesky's byte cap: 300 graphemes but more than 3000 bytes */
    hr_err err = {0};
    plat_account *a = plat_account_default("bluesky", &err);
    char *t = td_unescape("\\{300*👨‍👩‍👧‍👦}");
    plat_post p;
    REQUIRE(plat_format_text(a, t, 0, &p, &err) == 0);
    CHECK_INT(p.parts[0].length, 300);
    CHECK_INT(p.valid, 0);
    CHECK(strstr(p.reason, "bytes") != NULL);
    plat_post_release(&p);
    free(t);
    plat_account_free(a);
}

int main(void)
{
    th_run("vectors", test_vectors);
    th_run("invalid_utf8", test_invalid_utf8);
    th_run("limits", test_limits);
    return th_main_end();
}
