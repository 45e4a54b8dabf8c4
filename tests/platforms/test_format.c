/* test_format.c: what a job becomes: links with UTM parameters, hashtags,
 * HTML to text, fitting and threads, templates, Bluesky facets, LinkedIn
 * little text, and emails (variables, unsubscribe, Message-ID). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "platforms.h"
#include "tdata.h"

char *plat_linkedin_little_text(const char *t); /* platforms/linkedin.c */

static plat_account *acct(const char *line)
{
    hr_err err = {0};
    hr_config *c = hr_config_parse(line, "test.conf", &err);
    if (!c) {
        fprintf(stderr, "config: %s\n", err.msg);
        abort();
    }
    int pos = -1;
    const hr_conf_line *l = hr_config_next(c, "account", &pos);
    plat_account *a = plat_account_parse(l, c->path, &err);
    if (!a) fprintf(stderr, "account: %s\n", err.msg);
    hr_config_free(c);
    return a;
}

static void test_utm(void)
{
    struct {
        const char *in, *out;
    } v[] = {
        {"https://shop.example/p?id=3#top",
         "https://shop.example/p?id=3&utm_source=x&utm_medium=social&utm_campaign=spring#top"},
        {"https://shop.example",
         "https://shop.example/?utm_source=x&utm_medium=social&utm_campaign=spring"},
        {"https://shop.example/a?utm_source=news", "https://shop.example/a?utm_source=news"},
        {"mailto:a@b.example", "mailto:a@b.example"},
        {"not a url", "not a url"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(v); i++) {
        char *o = plat_add_utm(v[i].in, "x", "social", "spring");
        CHECK_STR(o, v[i].out);
        free(o);
    }
    char *o = plat_add_utm("https://s.example/?a=1", "x", "social", "spring sale&more");
    CHECK(strstr(o, "?a=1&utm_source=x") != NULL);
    CHECK(strstr(o, "spring sale") == NULL && strstr(o, "&more") == NULL);
    free(o);
}

static void test_hashtags(void)
{
    struct {
        const char *platform, *in, *out;
    } v[] = {
        {"x", "summer sale", "#SummerSale"}, {"x", "e-commerce", "#ECommerce"},
        {"x", "C++", "#C"},                   {"x", "2024", NULL},
        {"x", "café", "#café"},               {"x", "東京", "#東京"},
        {"x", "#already", "#already"},        {"x", "under_score", "#under_score"},
        {"threads", "under_score", "#UnderScore"}, {"mastodon", "  ", NULL},
        {"bluesky", "über cool", "#ÜberCool"},  {"x", "year 2024", "#Year2024"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(v); i++) {
        char *h = plat_hashtag(v[i].platform, v[i].in);
        if (v[i].out) CHECK_STR(h, v[i].out);
        else CHECK(h == NULL);
        free(h);
    }
}

static void test_html(void)
{
    struct {
        const char *in, *out;
    } v[] = {
        {"<p>Hello &amp; welcome</p><p>Second</p>", "Hello & welcome\n\nSecond"},
        {"Caf&eacute; &#8212; <b>bold</b>", "Café — bold"},
        {"<script>alert(1)</script><style>p{}</style>Text", "Text"},
        {"<ul><li>one</li><li>two</li></ul>", "- one\n- two"},
        {"line<br>break", "line\nbreak"},
        {"  lots   of\n\nspace  ", "lots of space"},
        {"<p>unclosed <i>tags", "unclosed tags"},
        {"", ""},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(v); i++) {
        char *t = plat_html_to_text(v[i].in, strlen(v[i].in));
        CHECK_STR(t, v[i].out);
        free(t);
    }
}

static void test_fit(void)
{
    plat_account *x = acct("account x:@shop");
    REQUIRE(x);
    /* words, then a link and hashtags that must stay whole */
    char *t = td_unescape("\\{60*word } and more https://shop.example/a #Sale #Spring");
    char *f = plat_fit(x, t, 280);
    REQUIRE(f);
    CHECK(plat_count_x(f) <= 280);
    CHECK(strstr(f, "word\xE2\x80\xA6 https://shop.example/a #Sale #Spring") != NULL);
    free(f);
    free(t);
    /* CJK has no spaces: cut on graphemes */
    t = td_unescape("\\{200*你}");
    f = plat_fit(x, t, 280);
    CHECK_INT(plat_count_x(f), 280);
    CHECK(strcmp(f + strlen(f) - 3, "\xE2\x80\xA6") == 0);
    free(f);
    free(t);
    /* mostly CJK with a few words: a word cut would lose most of it */
    t = td_unescape("Sale now \\{200*日}");
    f = plat_fit(x, t, 280);
    CHECK_INT(plat_count_x(f), 279); /* 9 + 134 * 2 + the ellipsis' 2 */
    free(f);
    free(t);
    /* a long article with many links and tags is cut without quadratic work */
    t = td_unescape("\\{5000*word https://a.example/x #tag }");
    f = plat_fit(x, t, 280);
    REQUIRE(f);
    CHECK(plat_count_x(f) <= 280);
    free(f);
    free(t);
    /* only hashtags: whole tags are dropped from the end, in linear work */
    t = td_unescape("\\{20000*#tag }");
    f = plat_fit(x, t, 280);
    REQUIRE(f);
    CHECK_INT(plat_count_x(f), 279); /* 56 tags of 5 with spaces between */
    CHECK(strcmp(f + strlen(f) - 4, "#tag") == 0);
    free(f);
    free(t);
    /* emoji sequences are never split */
    t = td_unescape("\\{200*👨‍👩‍👧}");
    f = plat_fit(x, t, 10);
    CHECK_STR(f, "👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧…");
    free(f);
    free(t);
    /* exactly the limit is left alone */
    t = td_unescape("\\{280*a}");
    f = plat_fit(x, t, 280);
    CHECK_STR(f, t);
    free(f);
    free(t);
    plat_account_free(x);
}

static void test_thread(void)
{
    plat_account *x = acct("account x:@shop");
    char *t = td_unescape("\\{120*lorem ipsum }end");
    plat_post p;
    hr_err err = {0};
    REQUIRE(plat_format_text(x, t, PLAT_FMT_THREAD, &p, &err) == 0);
    CHECK(p.nparts >= 5);
    CHECK(p.valid);
    char suffix[32];
    snprintf(suffix, sizeof suffix, " 1/%d", p.nparts);
    CHECK(strstr(p.parts[0].text, suffix) != NULL);
    for (int i = 0; i < p.nparts; i++) CHECK(p.parts[i].length <= 280);
    CHECK(strstr(p.parts[p.nparts - 1].text, "end ") != NULL);
    plat_post_release(&p);
    /* LinkedIn does not thread: it is cut */
    plat_account *li = acct("account linkedin:shop author=urn:li:organization:1 limit=100");
    REQUIRE(plat_format_text(li, t, PLAT_FMT_THREAD, &p, &err) == 0);
    CHECK_INT(p.nparts, 1);
    CHECK(p.parts[0].length <= 100);
    plat_post_release(&p);
    plat_account_free(li);
    free(t);
    plat_account_free(x);
}

static queue_job *post_job(const char *platform)
{
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_POST;
    queue_set(&j->platform, platform);
    queue_set(&j->account, "@shop");
    queue_set(&j->campaign, "spring");
    queue_set(&j->title, "Spring &amp; summer collection");
    queue_set(&j->excerpt, "<p>Our new collection is here. It has linen shirts, straw hats and "
                           "sandals for the warm days ahead, all made in small workshops.</p>");
    queue_set(&j->link, "https://shop.example/blog/spring?ref=home#new");
    queue_job_add_tag(j, "summer sale");
    queue_job_add_tag(j, "Summer Sale");
    queue_job_add_tag(j, "linen");
    queue_job_add_tag(j, "hats");
    queue_set(&j->idem_key, "hr-abc");
    return j;
}

static void test_template(void)
{
    plat_account *x = acct("account x:@shop");
    queue_job *j = post_job("x");
    plat_post p;
    hr_err err = {0};
    REQUIRE(plat_format_job(x, j, NULL, 0, &p, &err) == 0);
    CHECK(p.valid);
    const char *t = p.parts[0].text;
    CHECK(strncmp(t, "Spring & summer collection\n\nOur new collection", 45) == 0);
    CHECK(strstr(t, "https://shop.example/blog/spring?ref=home&utm_source=x&utm_medium=social"
                    "&utm_campaign=spring#new") != NULL);
    CHECK(strstr(t, "#SummerSale #Linen") != NULL || strstr(t, "#SummerSale #linen") != NULL);
    CHECK(strstr(t, "#hats") == NULL); /* X keeps 2 hashtags */
    plat_post_release(&p);
    /* a tight limit cuts the excerpt on a word, keeps the link whole */
    plat_account *x2 = acct("account x:@shop limit=80");
    REQUIRE(plat_format_job(x2, j, NULL, 0, &p, &err) == 0);
    CHECK(p.valid);
    CHECK(p.parts[0].length <= 80);
    CHECK(strstr(p.parts[0].text, "utm_campaign=spring#new") != NULL);
    plat_post_release(&p);
    /* a custom template from the job */
    queue_job_set_meta(j, "template", "{{title}} {{link}}");
    REQUIRE(plat_format_job(x, j, NULL, 0, &p, &err) == 0);
    CHECK(strncmp(p.parts[0].text, "Spring & summer collection https://", 35) == 0);
    plat_post_release(&p);
    /* Bluesky shows the link shortened and links the full URI */
    plat_account *b = acct("account bluesky:@shop.bsky.social handle=shop.bsky.social");
    queue_job_set_meta(j, "template", "{{title}} {{link}}");
    REQUIRE(plat_format_job(b, j, NULL, 0, &p, &err) == 0);
    CHECK(strstr(p.parts[0].text, "shop.example/blog/spring?...") != NULL);
    REQUIRE(p.parts[0].nfacets == 1);
    CHECK_INT(p.parts[0].facets[0].type, PLAT_FACET_LINK);
    CHECK(strncmp(p.parts[0].facets[0].value, "https://shop.example/blog/spring?ref=home&utm",
                  45) == 0);
    CHECK(strncmp(p.parts[0].text + p.parts[0].facets[0].byte_start, "shop.example/", 13) == 0);
    plat_post_release(&p);
    /* thread on request */
    queue_job_set_meta(j, "template", "{{title}}\n\n{{excerpt}} {{excerpt}} {{excerpt}} {{link}}");
    queue_job_set_meta(j, "thread", "1");
    plat_account *m = acct("account mastodon:@shop@m.example limit=120");
    REQUIRE(plat_format_job(m, j, NULL, 0, &p, &err) == 0);
    CHECK(p.nparts > 2);
    CHECK(p.valid);
    plat_post_release(&p);
    plat_account_free(m);
    plat_account_free(b);
    plat_account_free(x2);
    queue_job_free(j);
    plat_account_free(x);
}

/* a text rendered upstream gets the job's link with UTM parameters */
static void test_text_link(void)
{
    queue_job *j = queue_job_new();
    queue_set(&j->platform, "x");
    queue_set(&j->campaign, "c1");
    queue_set(&j->link, "https://shop.example/p");
    queue_set(&j->text, "New: https://shop.example/p (and https://shop.example/p2)");
    plat_account *x = acct("account x:@shop");
    plat_post p;
    hr_err err = {0};
    REQUIRE(plat_format_job(x, j, NULL, 0, &p, &err) == 0);
    CHECK_STR(p.parts[0].text, "New: https://shop.example/p?utm_source=x&utm_medium=social&"
                               "utm_campaign=c1 (and https://shop.example/p2)");
    plat_post_release(&p);
    plat_account *b = acct("account bluesky:@shop.bsky.social");
    REQUIRE(plat_format_job(b, j, NULL, 0, &p, &err) == 0);
    CHECK(strncmp(p.parts[0].text, "New: shop.example/p?utm_source...", 33) == 0);
    REQUIRE(p.parts[0].nfacets == 2);
    CHECK_INT(p.parts[0].facets[0].byte_start, 5);
    CHECK(strstr(p.parts[0].facets[0].value, "https://shop.example/p?utm_source=bluesky") ==
          p.parts[0].facets[0].value);
    CHECK_STR(p.parts[0].facets[1].value, "https://shop.example/p2");
    plat_post_release(&p);
    plat_account_free(b);
    plat_account_free(x);
    queue_job_free(j);
}

static void test_facets(void)
{
    plat_account *b = acct("account bluesky:@shop.bsky.social");
    char *path = td_path("facets.txt");
    size_t len;
    char *data = th_read_file(path, &len);
    REQUIRE(data);
    queue_job *j = queue_job_new();
    queue_set(&j->platform, "bluesky");
    queue_job_set_meta(j, "did:alice.bsky.social", "did:plc:alice");
    char *save = NULL;
    char *text = NULL;
    plat_post p = {0};
    int fi = 0, blocks = 0;
    for (char *l = strtok_r(data, "\n", &save);; l = strtok_r(NULL, "\n", &save)) {
        if (!l || strncmp(l, "> ", 2) == 0) {
            if (text) {
                if (fi != p.parts[0].nfacets) {
                    fprintf(stderr, "facets.txt: \"%s\": %d facets, expected %d\n", text,
                            p.parts[0].nfacets, fi);
                    th_failures++;
                }
                plat_post_release(&p);
                free(text);
                text = NULL;
            }
            if (!l) break;
            text = td_unescape(l + 2);
            hr_err err = {0};
            /* format through a job so mentions can resolve */
            queue_set(&j->text, text);
            if (plat_format_job(b, j, NULL, 0, &p, &err) != 0) {
                fprintf(stderr, "facets.txt: %s\n", err.msg);
                th_failures++;
            }
            fi = 0;
            blocks++;
            continue;
        }
        if (l[0] == '#' || !text) continue;
        char type[16], val[256];
        size_t s, e;
        if (sscanf(l, "%15s %zu %zu %255s", type, &s, &e, val) != 4) continue;
        if (fi >= p.parts[0].nfacets) {
            fprintf(stderr, "facets.txt: \"%s\": missing facet %s\n", text, l);
            th_failures++;
            fi++;
            continue;
        }
        const plat_facet *f = &p.parts[0].facets[fi++];
        const char *tn = f->type == PLAT_FACET_LINK ? "link"
                         : f->type == PLAT_FACET_MENTION ? "mention" : "tag";
        if (strcmp(tn, type) || f->byte_start != s || f->byte_end != e || strcmp(f->value, val)) {
            fprintf(stderr, "facets.txt: \"%s\": got %s %zu %zu %s, expected %s\n", text, tn,
                    f->byte_start, f->byte_end, f->value, l);
            th_failures++;
        }
    }
    CHECK(blocks >= 8);
    queue_job_free(j);
    free(data);
    free(path);
    plat_account_free(b);
}

static void test_little_text(void)
{
    char *t = plat_linkedin_little_text("Hi (all) @team_x *new* #Launch see https://a.example/x_(y)");
    CHECK_STR(t, "Hi \\(all\\) \\@team\\_x \\*new\\* {hashtag|\\#|Launch} see "
                 "https://a.example/x_(y)");
    free(t);
}

static void test_email(void)
{
    plat_account *a = acct("account sendgrid:main from=news@shop.example from-name=Shop "
                           "unsubscribe-base=https://hooks.shop.example/");
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_EMAIL;
    queue_set(&j->platform, "sendgrid");
    queue_set(&j->account, "main");
    queue_set(&j->campaign, "spring");
    queue_set(&j->to, "Ann@Example.com");
    queue_set(&j->to_name, "Ann Lee");
    queue_set(&j->subject, "Hello {{first_name|there}}, {{ city | your town }} awaits");
    queue_set(&j->html, "<p>Hi {{first_name}} &amp; {{nick|friend}}</p><p>{{evil}}</p>"
                        "<a href=\"{{unsubscribe_url}}\">unsubscribe</a>");
    queue_set(&j->preheader, "New <things>");
    queue_job_set_var(j, "evil", "<script>x</script>");
    queue_job_assign_id(j);
    plat_ctx ctx = {.secret = "0123456789abcdef0123456789abcdef"};
    plat_post p;
    hr_err err = {0};
    REQUIRE(plat_format_job(a, j, &ctx, 0, &p, &err) == 0);
    CHECK(p.valid);
    CHECK_STR(p.subject, "Hello Ann, your town awaits");
    CHECK(strstr(p.html, "Hi Ann &amp; friend") != NULL);
    CHECK(strstr(p.html, "&lt;script&gt;x&lt;/script&gt;") != NULL);
    CHECK(strstr(p.html, "New &lt;things&gt;</div>") != NULL);
    REQUIRE(p.unsubscribe_url);
    CHECK(strncmp(p.unsubscribe_url, "https://hooks.shop.example/u/", 29) == 0);
    hr_unsub u;
    CHECK(hr_unsub_token_verify(ctx.secret, p.unsubscribe_url + 29, &u, &err) == 0);
    CHECK_STR(u.email, "ann@example.com");
    CHECK_STR(u.campaign, "spring");
    CHECK_STR(u.job, j->id);
    CHECK(strstr(p.text, "Hi Ann & friend") != NULL);
    char mid[128];
    snprintf(mid, sizeof mid, "<%s.herald@shop.example>", j->id);
    CHECK_STR(p.message_id, mid);
    plat_post_release(&p);

    /* a base that already ends in the /u route is not given a second one */
    plat_account *au = acct("account sendgrid:main from=news@shop.example "
                            "unsubscribe-base=https://hooks.shop.example/u/");
    REQUIRE(plat_format_job(au, j, &ctx, 0, &p, &err) == 0);
    REQUIRE(p.unsubscribe_url);
    CHECK(strncmp(p.unsubscribe_url, "https://hooks.shop.example/u/", 29) == 0);
    CHECK(hr_unsub_token_verify(ctx.secret, p.unsubscribe_url + 29, &u, &err) == 0);
    plat_post_release(&p);
    plat_account_free(au);

    /* header injection is refused, in the raw fields and as rendered (a
     * variable from a CRM export, a contact's name), naming the header;
     * long subjects are not valid */
    const char *inject[][3] = {
        {"subject", "Hi\r\nBcc: x@evil.example", "Subject header would hold a line break"},
        {"subject", "Hi {{nick}}", "Subject header would hold a line break"},
        {"subject", "Hi\x01", "Subject header would hold a control character (0x01)"},
        {"to_name", "Ann\nBcc: x@evil.example", "To (name) header would hold a line break"},
        {"to", "ann@example.com\r\nBcc: x@evil.example", "To header would hold a line break"},
    };
    queue_job_set_var(j, "nick", "Ann\r\nReply-To: attacker@evil.example");
    for (size_t i = 0; i < sizeof inject / sizeof inject[0]; i++) {
        queue_job *k = queue_job_dup(j);
        queue_set(strcmp(inject[i][0], "subject") == 0 ? &k->subject
                  : strcmp(inject[i][0], "to") == 0    ? &k->to
                                                       : &k->to_name,
                  inject[i][1]);
        REQUIRE(plat_format_job(a, k, &ctx, 0, &p, &err) == 0);
        CHECK_INT(p.valid, 0);
        if (!strstr(p.reason, inject[i][2])) {
            th_failures++;
            fprintf(stderr, "injection %zu: reason \"%s\"\n", i, p.reason);
        }
        plat_post_release(&p);
        queue_job_free(k);
    }
    char *long_subject = td_unescape("\\{201*é}");
    queue_set(&j->subject, long_subject);
    free(long_subject);
    REQUIRE(plat_format_job(a, j, &ctx, 0, &p, &err) == 0);
    CHECK_INT(p.valid, 0);
    plat_post_release(&p);
    queue_set(&j->to, "not-an-address");
    CHECK(plat_format_job(a, j, &ctx, 0, &p, &err) == -1);
    plat_post_release(&p);
    queue_job_free(j);
    plat_account_free(a);
}

static void test_accounts(void)
{
    hr_err err = {0};
    hr_config *c = hr_config_parse(
        "account x:@shop base-url=http://127.0.0.1:8700/ credentials=x-shop tz=UTC rate=5\n"
        "account mastodon:@shop@mastodon.social base-url=https://mastodon.social limit=450\n"
        "account nosuch:thing\n"
        "account x:@bad limit=zero\n",
        "t.conf", &err);
    REQUIRE(c);
    plat_account *a = plat_account_find(c, "x", "@shop", &err);
    REQUIRE(a);
    CHECK_STR(a->base_url, "http://127.0.0.1:8700");
    CHECK_STR(plat_account_opt(a, "tz", NULL), "UTC");
    CHECK_INT(a->limit, 280);
    /* credentials come from a file, never the config */
    char *dir = th_tempdir();
    char *f = hr_asprintf("%s/x-shop", dir);
    th_write_file(f, "s3cret-token\n");
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    CHECK(plat_account_load_credential(a, c, NULL, &err) == 0);
    CHECK_STR(a->credential, "s3cret-token");
    unsetenv("CREDENTIALS_DIRECTORY");
    CHECK(plat_account_load_credential(a, c, NULL, &err) == -1);
    CHECK(strstr(err.msg, "s3cret") == NULL);
    plat_account_free(a);
    a = plat_account_find(c, "mastodon", "@shop@mastodon.social", &err);
    REQUIRE(a);
    CHECK_INT(a->limit, 450);
    plat_account_free(a);
    CHECK(plat_account_find(c, "nosuch", "thing", &err) == NULL);
    CHECK(strstr(err.msg, "t.conf:3: account: unknown platform") != NULL);
    CHECK(plat_account_find(c, "x", "@bad", &err) == NULL);
    CHECK(strstr(err.msg, "t.conf:4") != NULL);
    CHECK(plat_account_find(c, "x", "@none", &err) == NULL);
    free(f);
    free(dir);
    hr_config_free(c);
}

static void test_rkey(void)
{
    char a[14], b[14], c[14];
    plat_bluesky_rkey("hr-abc", a);
    plat_bluesky_rkey("hr-abc", b);
    plat_bluesky_rkey("hr-abd", c);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK_INT(strlen(a), 13);
    CHECK(strchr("234567abcdefghij", a[0]) != NULL);
    for (int i = 0; i < 13; i++) CHECK(strchr("234567abcdefghijklmnopqrstuvwxyz", a[i]) != NULL);
}

int main(void)
{
    th_run("utm", test_utm);
    th_run("hashtags", test_hashtags);
    th_run("html", test_html);
    th_run("fit", test_fit);
    th_run("thread", test_thread);
    th_run("template", test_template);
    th_run("text_link", test_text_link);
    th_run("facets", test_facets);
    th_run("little_text", test_little_text);
    th_run("email", test_email);
    th_run("accounts", test_accounts);
    th_run("rkey", test_rkey);
    return th_main_end();
}
