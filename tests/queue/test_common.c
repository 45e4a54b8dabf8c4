/* test_common.c: config parsing, email masking, time, tokens. */
#include <stdlib.h>

#include "common.h"
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void test_config(void)
{
    hr_err err = {0};
    hr_config *c = hr_config_parse("# comment\nnamespace shop\n\naccount x:@shop base-url=http://a "
                                   "\"tag=two words\"\nlease-ms 9000\n",
                                   "t.conf", &err);
    REQUIRE(c);
    CHECK_STR(hr_config_get(c, "namespace", NULL), "shop");
    int pos = -1;
    const hr_conf_line *l = hr_config_next(c, "account", &pos);
    REQUIRE(l);
    CHECK_INT(l->argc, 3);
    CHECK_STR(l->argv[2], "tag=two words");
    CHECK_INT(l->line, 4);
    int64_t v;
    CHECK(hr_config_get_i64(c, "lease-ms", 0, &v, &err) == 0);
    CHECK_INT(v, 9000);
    setenv("HERALD_LEASE_MS", "12", 1);
    CHECK(hr_config_get_i64(c, "lease-ms", 0, &v, &err) == 0);
    CHECK_INT(v, 12);
    setenv("HERALD_LEASE_MS", "x", 1);
    CHECK(hr_config_get_i64(c, "lease-ms", 0, &v, &err) < 0);
    unsetenv("HERALD_LEASE_MS");
    hr_config_free(c);
    hr_err_clear(&err);
    CHECK(hr_config_parse("a b\nc \"unterminated\n", "bad.conf", &err) == NULL);
    CHECK_STR(err.msg, "bad.conf:2: unterminated quote");
}

/* integer directives go through one table of ranges: out of range is an
 * error naming the line, never a default or a wrapped size */
static void test_config_int(void)
{
    hr_err err = {0};
    hr_config *c = hr_config_parse("webhooks-stream-maxlen -3\nwebhooks-max-body -1\n"
                                   "webhooks-replay-window 0\nwebhooks-max-conns 10\n",
                                   "t.conf", &err);
    REQUIRE(c);
    int64_t v = 42;
    CHECK(hr_config_int(c, "webhooks-stream-maxlen", &v, &err) == -1);
    CHECK_STR(err.msg, "t.conf:1: webhooks-stream-maxlen: expected 1..1000000000, got -3");
    CHECK_INT(v, 42);
    CHECK(hr_config_int(c, "webhooks-max-body", &v, &err) == -1);
    CHECK(strstr(err.msg, "t.conf:2: webhooks-max-body: expected 1..") != NULL);
    CHECK(hr_config_int(c, "webhooks-replay-window", &v, &err) == -1);
    CHECK(strstr(err.msg, "t.conf:3: webhooks-replay-window: expected 1..") != NULL);
    CHECK(hr_config_int(c, "webhooks-max-conns", &v, &err) == 0);
    CHECK_INT(v, 10);
    CHECK(hr_config_int(c, "lease-ms", &v, &err) == 0); /* the default */
    CHECK_INT(v, 30000);
    setenv("HERALD_LEASE_MS", "0", 1);
    CHECK(hr_config_int(c, "lease-ms", &v, &err) == -1);
    CHECK(strstr(err.msg, "environment: lease-ms: expected 1000..") != NULL);
    unsetenv("HERALD_LEASE_MS");
    hr_config_free(c);
}

/* fread_old_rule is the secret-file reading of herald before dc1e152,
 * written out again: the first 1023 bytes less trailing CR, LF, space */
static size_t fread_old_rule(const char *body, char out[1024])
{
    size_t n = strlen(body) < 1023 ? strlen(body) : 1023;
    memcpy(out, body, n);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) n--;
    out[n] = '\0';
    return n;
}

/* key files: whitespace (tabs too) trimmed; only a missing optional file is
 * "not configured"; a file others can read is a warning */
static void test_key_file(void)
{
    char *dir = th_tempdir(), p[600], loop[600];
    hr_err err = {0}, warn = {0};
    snprintf(p, sizeof p, "%s/key", dir);
    th_write_file(p, "k3y-value \t\r\n\t\n");
    REQUIRE(chmod(p, 0600) == 0);
    char *v = hr_key_file_read(p, 0, &warn, &err);
    CHECK_STR(v, "k3y-value");
    CHECK_INT(warn.code, 0);
    free(v);
    REQUIRE(chmod(p, 0640) == 0);
    v = hr_key_file_read(p, 0, &warn, &err);
    CHECK_STR(v, "k3y-value");
    CHECK(warn.code && strstr(warn.msg, "open to group or others (mode 0640"));
    free(v);
    th_write_file(p, " \t\n");
    CHECK(hr_key_file_read(p, 0, NULL, &err) == NULL);
    CHECK(strstr(err.msg, "key is empty") != NULL);
    snprintf(p, sizeof p, "%s/absent", dir);
    hr_err_clear(&err);
    CHECK(hr_key_file_read(p, 1, NULL, &err) == NULL);
    CHECK_INT(err.code, 0);
    CHECK(hr_key_file_read(p, 0, NULL, &err) == NULL);
    CHECK(strstr(err.msg, "cannot open ") && strstr(err.msg, "/absent"));
    snprintf(loop, sizeof loop, "%s/loop", dir);
    REQUIRE(symlink(loop, loop) == 0);
    hr_err_clear(&err);
    CHECK(hr_key_file_read(loop, 1, NULL, &err) == NULL);
    CHECK(err.code && strstr(err.msg, "/loop: Too many levels of symbolic links"));
    snprintf(p, sizeof p, "%s/sub", dir);
    REQUIRE(mkdir(p, 0700) == 0);
    hr_err_clear(&err);
    CHECK(hr_key_file_read(p, 1, NULL, &err) == NULL);
    CHECK(err.code && strstr(err.msg, "/sub is a directory"));
    /* a key is never cut short */
    snprintf(p, sizeof p, "%s/big", dir);
    char *big = hr_malloc(65538);
    memset(big, 'k', 65537);
    big[65537] = '\0';
    th_write_file(p, big);
    hr_err_clear(&err);
    CHECK(hr_key_file_read(p, 0, NULL, &err) == NULL);
    CHECK(err.code && strstr(err.msg, "/big: larger than 64 KiB"));
    big[65536] = '\0';
    th_write_file(p, big);
    v = hr_key_file_read(p, 0, NULL, &err);
    CHECK(v && strlen(v) == 65536);
    free(v);
    free(big);
    /* the secret checks the file as a key file does */
    snprintf(p, sizeof p, "%s/secret", dir);
    th_write_file(p, "0123456789abcdef\t\n");
    REQUIRE(chmod(p, 0644) == 0);
    char *text = hr_asprintf("secret-file %s\n", p);
    hr_config *c = hr_config_parse(text, "t.conf", &err);
    free(text);
    const char *env = getenv("HERALD_SECRET");
    char *saved = env ? hr_strdup(env) : NULL;
    unsetenv("HERALD_SECRET");
    hr_err_clear(&warn);
    v = hr_secret_load(c, &warn, &err);
    CHECK_STR(v, "0123456789abcdef\t");
    CHECK(warn.code && strstr(warn.msg, "/secret is open to group or others"));
    free(v);
    /* but keeps the reading it always had: the first 1023 bytes less CR, LF
     * and spaces, else every stored suppression and mailed unsubscribe link
     * stops matching after an upgrade */
    static const char *const files[] = {"0123456789abcdef\t", "0123456789abcdef\v\f \r\n",
                                        NULL};
    char *long_secret = hr_malloc(1501);
    for (int i = 0; i < 1500; i++) long_secret[i] = (char)('a' + i % 26);
    long_secret[1500] = '\0';
    for (int i = 0; i < 3; i++) {
        const char *body = files[i] ? files[i] : long_secret;
        th_write_file(p, body);
        char old[1024];
        size_t n = fread_old_rule(body, old);
        v = hr_secret_load(c, NULL, &err);
        REQUIRE(v != NULL);
        CHECK_INT((long)strlen(v), (long)n);
        CHECK_STR(v, old); /* the key of queue_suppress_hash */
        hr_unsub u = {0};
        snprintf(u.job, sizeof u.job, "j1");
        char *t_old = hr_unsub_token_make(old, &u); /* a link already mailed */
        hr_unsub back;
        CHECK(hr_unsub_token_verify(v, t_old, &back, &err) == 0);
        free(t_old);
        free(v);
    }
    free(long_secret);
    if (saved) setenv("HERALD_SECRET", saved, 1);
    free(saved);
    hr_config_free(c);
    free(dir);
}

static void test_mask(void)
{
    char out[128];
    hr_mask_email("send to ann.lee@example.com now", out, sizeof out);
    CHECK_STR(out, "send to a***@example.com now");
    hr_mask_email("no address @ here", out, sizeof out);
    CHECK_STR(out, "no address @ here");
    /* local parts queue_email_normalize accepts, and what providers echo */
    static const char *const cases[][2] = {
        {"Invalid 'To' address: 'jane.doe@example.com'.",
         "Invalid 'To' address: '***@example.com'."},
        {"Invalid 'To' address: 'jos\xc3\xa9.garc\xc3\xad" "a@example.com'.",
         "Invalid 'To' address: '***@example.com'."},
        {"\xc3\xa9ric@example.com", "***@example.com"},
        {"Invalid 'To' address: '\"jane doe\"@example.com'.",
         "Invalid 'To' address: '***@example.com'."},
        {"to \"jane doe\"@example.com", "to \"***@example.com"},
        {"jane(doe)@example.com", "j***@example.com"},
        {"jane(the doe)@example.com and bob%x@b.org", "j***@example.com and b***@b.org"},
        {"a@b@c.org", "a***@b***@c.org"},
        {"redis://user:pw@host:6379", "redis://u***@host:6379"}, /* a URL's user */
        {"<ann+tag@example.com>, bo@x.io", "<a***@example.com>, b***@x.io"},
        {"lane x:@shop", "lane x:@shop"}, /* a handle, not an address */
        {"@mention and trailing@", "@mention and t***@"},
        {"to=jane.doe%40example.com&x=1", "t***%40example.com&x=1"}, /* form, URL */
        {"a%40b%40c.org 100%", "a***%40b***%40c.org 100%"},
        /* the at sign in its other forms */
        {"jane%2540example.com", "j***%2540example.com"},
        {"jane&#64;example.com jo&#x40;x.org", "j***&#64;example.com j***&#x40;x.org"},
        {"jane&#0064;example.com jo&commat;x.org", "j***&#0064;example.com j***&commat;x.org"},
        {"jane\xef\xbc\xa0" "ex.com", "j***\xef\xbc\xa0" "ex.com"}, /* U+FF20 */
        {"\xef\xbd\x8a\xef\xbd\x81\xef\xbc\xa0x.jp", "***\xef\xbc\xa0x.jp"},
        {"jane\xef\xb9\xab" "ex.com", "j***\xef\xb9\xab" "ex.com"}, /* U+FE6B */
        {"jane&#46;doe&#64;example.com", "j***&#64;example.com"}, /* entity in it */
        {"&lt;jane&#64;x.com&gt;", "&***&#64;x.com&gt;"},             /* in doubt */
        {"cut jane%40", "cut j***%40"},
        /* URLs: a path segment is no address; a query's value may be */
        {"GET https://mastodon.social/@shop/statuses?limit=40",
         "GET https://mastodon.social/@shop/statuses?limit=40"},
        {"https://mastodon.social/@shop@other.social/1", "https://mastodon.social/@s***@other.social/1"},
        {"GET https://x.org/u?email=jane@example.com&a=1", "GET https://x.org/u?email=j***@example.com&a=1"},
        {"https://x.org/u/jane.doe%40example.com", "https://x.org/u/j***%40example.com"},
        {"lanes x:@a y:%40b", "lanes x:@a y:%40b"},
        /* encoded at signs with no domain after them are text */
        {"discount 50%40 off, 10&#64; 5, 3\xef\xbc\xa0.", "discount 50%40 off, 10&#64; 5, 3\xef\xbc\xa0."},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        hr_mask_email(cases[i][0], out, sizeof out);
        CHECK_STR(out, cases[i][1]);
    }
    /* cut short: never the local part whole */
    hr_mask_email("xx jane.doe@example.com", out, 8);
    CHECK_STR(out, "xx j***");
}

static void test_html_escape(void)
{
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_html_escape(&b, "Tom & Jerry's <b>\"show\"</b>");
    hr_buf_html_escape(&b, "");
    hr_buf_html_escape(&b, " plain");
    hr_buf_putc(&b, '\0');
    CHECK_STR(b.data, "Tom &amp; Jerry&#39;s &lt;b&gt;&quot;show&quot;&lt;/b&gt; plain");
    hr_buf_release(&b);
}

/* after a fork, parent and child draw different ids from the pool */
static void test_random_fork(void)
{
    (void)hr_random_u64(); /* the pool is filled */
    int fd[2];
    REQUIRE(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        uint64_t v = hr_random_u64();
        _exit(write(fd[1], &v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
    }
    uint64_t mine = hr_random_u64(), theirs = 0;
    CHECK(read(fd[0], &theirs, sizeof theirs) == (ssize_t)sizeof theirs);
    waitpid(pid, NULL, 0);
    close(fd[0]);
    close(fd[1]);
    CHECK(mine != theirs);
}

static void test_time(void)
{
    int64_t ms;
    CHECK(hr_parse_rfc3339("2026-03-29T01:30:00+01:00", &ms) == 0);
    char s[40];
    hr_format_rfc3339(ms, s, sizeof s);
    CHECK_STR(s, "2026-03-29T00:30:00Z");
    CHECK(hr_parse_rfc3339("2026-13-01T00:00:00Z", &ms) < 0);
    CHECK(hr_parse_rfc3339("2026-01-01T00:00:00.5Z", &ms) == 0);
    hr_format_rfc3339(ms, s, sizeof s);
    CHECK_STR(s, "2026-01-01T00:00:00.500Z");
}

/* hr_ct_equal: equal only when every byte is, whatever the length and
 * wherever the difference (it compares eight bytes a step) */
static void test_ct_equal(void)
{
    unsigned char a[70], b[70];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (unsigned char)(i * 37 + 1);
    for (size_t n = 0; n <= sizeof a; n++)
        CHECK_INT(hr_ct_equal(a, b, n), 1);
    int missed = 0;
    for (size_t n = 1; n <= sizeof a; n++)
        for (size_t k = 0; k < n; k++) {
            b[k] ^= 0x80;
            missed += hr_ct_equal(a, b, n);
            b[k] ^= 0x01 ^ 0x80;
            missed += hr_ct_equal(a, b, n);
            b[k] ^= 0x01;
        }
    CHECK_INT(missed, 0);
    CHECK_INT(hr_ct_equal("abc", "abd", 2), 1);
}

static void test_token(void)
{
    hr_unsub u = {0};
    snprintf(u.email, sizeof u.email, "ann@example.com");
    snprintf(u.campaign, sizeof u.campaign, "spring");
    snprintf(u.job, sizeof u.job, "abc");
    char *t = hr_unsub_token_make("0123456789abcdef-secret", &u);
    hr_unsub back;
    hr_err err = {0};
    CHECK(hr_unsub_token_verify("0123456789abcdef-secret", t, &back, &err) == 0);
    CHECK_STR(back.email, "ann@example.com");
    CHECK_STR(back.campaign, "spring");
    CHECK(hr_unsub_token_verify("another-secret-0123456", t, &back, &err) < 0);
    t[3] ^= 1; /* altered payload */
    CHECK(hr_unsub_token_verify("0123456789abcdef-secret", t, &back, &err) < 0);
    CHECK(hr_unsub_token_verify("0123456789abcdef-secret", "garbage", &back, &err) < 0);
    free(t);
}

int main(void)
{
    th_run("config", test_config);
    th_run("config_int", test_config_int);
    th_run("key_file", test_key_file);
    th_run("mask", test_mask);
    th_run("time", test_time);
    th_run("html_escape", test_html_escape);
    th_run("random_fork", test_random_fork);
    th_run("token", test_token);
    th_run("ct_equal", test_ct_equal);
    return th_main_end();
}
