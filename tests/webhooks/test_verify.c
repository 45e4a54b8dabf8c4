/* test_verify.c: the signature checks and event parsers, without a server:
 * valid, forged, replayed, truncated and malformed inputs for each. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "webhooks.h"

static const char *key = "whsec-test-key-0123456789";

static void test_generic(void)
{
    const char *body = "{\"events\":[{\"id\":\"e1\",\"type\":\"like\",\"platform\":\"x\","
                       "\"platform_id\":\"123\"}]}";
    char sig[200];
    int64_t now = 1700000000;
    hook_sign_generic(key, now, body, strlen(body), sig, sizeof sig);
    hr_err err = {0};
    /* the signature is HMAC-SHA256 of "<t>.<body>", as documented for senders */
    char signed_text[256], want[200], hex[65];
    snprintf(signed_text, sizeof signed_text, "%lld.%s", (long long)now, body);
    unsigned char mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)signed_text,
         strlen(signed_text), mac, &maclen);
    hr_hex(mac, maclen, hex);
    snprintf(want, sizeof want, "t=%lld,v1=%s", (long long)now, hex);
    CHECK_STR(sig, want);
    CHECK_INT(hook_verify_generic(key, sig, body, strlen(body), now, 300, &err), 0);
    /* within the window either side */
    CHECK_INT(hook_verify_generic(key, sig, body, strlen(body), now + 299, 300, &err), 0);
    /* replayed after the window */
    CHECK_INT(hook_verify_generic(key, sig, body, strlen(body), now + 301, 300, &err), -1);
    CHECK(strstr(err.msg, "replay") != NULL);
    /* altered body, wrong key, truncated header, missing header */
    char *alt = strdup(body);
    alt[10] = 'X';
    CHECK_INT(hook_verify_generic(key, sig, alt, strlen(alt), now, 300, &err), -1);
    free(alt);
    CHECK_INT(hook_verify_generic("other-key-0123456789", sig, body, strlen(body), now, 300, &err),
              -1);
    char trunc[200];
    snprintf(trunc, sizeof trunc, "%.*s", (int)strlen(sig) - 3, sig);
    CHECK_INT(hook_verify_generic(key, trunc, body, strlen(body), now, 300, &err), -1);
    CHECK_INT(hook_verify_generic(key, NULL, body, strlen(body), now, 300, &err), -1);
    CHECK_INT(hook_verify_generic(key, "garbage", body, strlen(body), now, 300, &err), -1);
    CHECK_INT(hook_verify_generic(key, "t=abc,v1=00", body, strlen(body), now, 300, &err), -1);
}

static void test_mailgun(void)
{
    const char *mk = "key-mailgun-signing-0123";
    const char *ts = "1700000000", *tok = "5d2c0b7e1f9a4c3b8e6d0a1f2b3c4d5e6f7a8b9c0d1e2f3a4b";
    unsigned char mac[32];
    char msg[200], hex[65];
    snprintf(msg, sizeof msg, "%s%s", ts, tok);
    hr_hmac_sha256(mk, strlen(mk), msg, strlen(msg), mac);
    hr_hex(mac, 32, hex);
    hr_err err = {0};
    CHECK_INT(hook_verify_mailgun(mk, ts, tok, hex, 1700000010, 300, &err), 0);
    CHECK_INT(hook_verify_mailgun(mk, ts, tok, hex, 1700001000, 300, &err), -1);
    hex[5] = hex[5] == 'a' ? 'b' : 'a';
    CHECK_INT(hook_verify_mailgun(mk, ts, tok, hex, 1700000010, 300, &err), -1);
    CHECK_INT(hook_verify_mailgun(mk, ts, tok, "short", 1700000010, 300, &err), -1);
    CHECK_INT(hook_verify_mailgun(mk, NULL, tok, hex, 1700000010, 300, &err), -1);
}

static void test_basic(void)
{
    hr_err err = {0};
    /* "user:pass" in base64 is dXNlcjpwYXNz */
    CHECK_INT(hook_verify_basic("user:pass", "Basic dXNlcjpwYXNz", &err), 0);
    /* the scheme in any case (RFC 7235), more than one space after it */
    CHECK_INT(hook_verify_basic("user:pass", "basic dXNlcjpwYXNz", &err), 0);
    CHECK_INT(hook_verify_basic("user:pass", "BASIC  dXNlcjpwYXNz", &err), 0);
    CHECK_INT(hook_verify_basic("user:pass", "Basicx dXNlcjpwYXNz", &err), -1);
    CHECK_INT(hook_verify_basic("user:pass", "Basic dXNlcjpwYXNy", &err), -1);
    CHECK_INT(hook_verify_basic("user:pass", "Bearer dXNlcjpwYXNz", &err), -1);
    CHECK_INT(hook_verify_basic("user:pass", NULL, &err), -1);
    CHECK_INT(hook_verify_basic("user:pass", "Basic dXNlcjpwYX", &err), -1);
}

static void test_sendgrid(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    REQUIRE(k);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, k);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *pem = strndup(p, (size_t)n);
    BIO_free(b);
    const char *body =
        "[{\"email\":\"ann@example.com\",\"event\":\"open\",\"sg_event_id\":\"x1\"}]";
    const char *ts = "1700000000";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[128];
    size_t sl = sizeof sig;
    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k);
    EVP_DigestSignUpdate(ctx, ts, strlen(ts));
    EVP_DigestSignUpdate(ctx, body, strlen(body));
    EVP_DigestSignFinal(ctx, sig, &sl);
    EVP_MD_CTX_free(ctx);
    char b64[200];
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)sl);
    hr_err err = {0};
    CHECK_INT(hook_verify_sendgrid(pem, b64, ts, body, strlen(body), 1700000001, 300, &err), 0);
    /* the DER key as SendGrid's UI shows it (base64, no PEM armour) works too */
    hr_buf der;
    hr_buf_init(&der);
    for (char *line = strchr(pem, '\n') + 1; *line && *line != '-'; line = strchr(line, '\n') + 1)
        hr_buf_append(&der, line, (size_t)(strchr(line, '\n') - line));
    CHECK_INT(hook_verify_sendgrid(der.data, b64, ts, body, strlen(body), 1700000001, 300, &err),
              0);
    hr_buf_release(&der);
    CHECK_INT(
        hook_verify_sendgrid(pem, b64, "1700000001", body, strlen(body), 1700000001, 300, &err),
        -1);
    CHECK_INT(hook_verify_sendgrid(pem, b64, ts, body, strlen(body) - 1, 1700000001, 300, &err),
              -1);
    CHECK_INT(hook_verify_sendgrid(pem, b64, ts, body, strlen(body), 1800000000, 300, &err), -1);
    CHECK_INT(hook_verify_sendgrid(pem, "!!!", ts, body, strlen(body), 1700000001, 300, &err), -1);
    CHECK_INT(hook_verify_sendgrid(pem, NULL, ts, body, strlen(body), 1700000001, 300, &err), -1);
    CHECK_INT(hook_verify_sendgrid("not a key", b64, ts, body, strlen(body), 1700000001, 300, &err),
              -1);
    free(pem);
    EVP_PKEY_free(k);
}

static void test_parsers(void)
{
    hook_events ev = {0};
    hr_err err = {0};
    const char *sg = "[{\"email\":\"Ann@Example.com\",\"timestamp\":1700000000,\"event\":\"open\","
                     "\"sg_event_id\":\"e1\",\"sg_message_id\":\"abc.filter0\",\"herald_job\":"
                     "\"0000000AAAAAAAAAAAAA\",\"herald_campaign\":\"spring\"},"
                     "{\"event\":\"processed\",\"sg_event_id\":\"e2\"},"
                     "{\"event\":\"bounce\",\"type\":\"blocked\",\"sg_event_id\":\"e3\"},"
                     "{\"event\":\"spamreport\",\"sg_event_id\":\"e4\",\"email\":\"b@x.org\"}]";
    CHECK_INT(hook_parse_sendgrid(sg, strlen(sg), &ev, &err), 0);
    CHECK_INT(ev.n, 2);
    CHECK_INT(ev.ignored, 2);
    CHECK_STR(ev.v[0].id, "sendgrid:e1");
    CHECK_INT(ev.v[0].type, HOOK_EV_OPEN);
    CHECK_STR(ev.v[0].platform_id, "abc");
    CHECK_STR(ev.v[0].campaign, "spring");
    CHECK_INT(ev.v[0].ts_ms, 1700000000000LL);
    CHECK_INT(ev.v[1].type, HOOK_EV_SPAM);
    hook_events_release(&ev);
    /* truncated, malformed, missing ids: nothing is appended */
    CHECK_INT(hook_parse_sendgrid(sg, strlen(sg) - 5, &ev, &err), -1);
    CHECK_INT(ev.n, 0);
    CHECK_INT(hook_parse_sendgrid("{}", 2, &ev, &err), -1);
    const char *noid = "[{\"event\":\"open\",\"sg_event_id\":\"a\"},{\"event\":\"open\"}]";
    CHECK_INT(hook_parse_sendgrid(noid, strlen(noid), &ev, &err), -1);
    CHECK(strstr(err.msg, "event 1") != NULL);
    CHECK_INT(ev.n, 0);

    const char *mg = "{\"signature\":{},\"event-data\":{\"event\":\"failed\",\"severity\":"
                     "\"permanent\",\"id\":\"m1\",\"recipient\":\"c@y.org\",\"timestamp\":"
                     "1700000000.5,\"user-variables\":{\"herald-job\":\"J\"},\"tags\":[\"camp\"],"
                     "\"message\":{\"headers\":{\"message-id\":\"20261121.1@mg.example\"}}}}";
    CHECK_INT(hook_parse_mailgun(mg, strlen(mg), &ev, &err), 0);
    REQUIRE(ev.n == 1);
    CHECK_INT(ev.v[0].type, HOOK_EV_BOUNCE);
    CHECK_STR(ev.v[0].platform_id, "<20261121.1@mg.example>");
    CHECK_STR(ev.v[0].campaign, "camp");
    CHECK_STR(ev.v[0].job, "J");
    hook_events_release(&ev);
    CHECK_INT(hook_parse_mailgun("{\"event-data\":{}}", 17, &ev, &err), -1);
    CHECK_INT(hook_parse_mailgun("[", 1, &ev, &err), -1);

    const char *pm = "{\"RecordType\":\"SubscriptionChange\",\"SuppressSending\":true,"
                     "\"MessageID\":\"u-1\",\"Recipient\":\"d@z.org\",\"Metadata\":{\"herald_job\":"
                     "\"J2\"}}";
    CHECK_INT(hook_parse_postmark(pm, strlen(pm), &ev, &err), 0);
    REQUIRE(ev.n == 1);
    CHECK_INT(ev.v[0].type, HOOK_EV_UNSUBSCRIBE);
    CHECK(strncmp(ev.v[0].id, "postmark:", 9) == 0);
    hook_events_release(&ev);
    /* the same body is the same event id; another body another */
    hook_events a = {0}, b = {0};
    hook_parse_postmark(pm, strlen(pm), &a, &err);
    hook_parse_postmark(pm, strlen(pm), &b, &err);
    CHECK_STR(a.v[0].id, b.v[0].id);
    hook_events_release(&a);
    hook_events_release(&b);
    CHECK_INT(hook_parse_postmark("{\"MessageID\":1}", 15, &ev, &err), -1);

    const char *gen =
        "[{\"id\":\"g1\",\"type\":\"repost\",\"platform\":\"bluesky\",\"platform_id\":"
        "\"at://x\"},{\"id\":\"g2\",\"type\":\"weird\",\"job\":\"J\"}]";
    CHECK_INT(hook_parse_generic(gen, strlen(gen), &ev, &err), 0);
    CHECK_INT(ev.n, 1);
    CHECK_INT(ev.ignored, 1);
    CHECK_STR(ev.v[0].id, "generic:bluesky:g1");
    hook_events_release(&ev);
    const char *nomatch = "{\"events\":[{\"id\":\"g1\",\"type\":\"like\"}]}";
    CHECK_INT(hook_parse_generic(nomatch, strlen(nomatch), &ev, &err), -1);
    CHECK_INT(hook_parse_generic("{\"events\":3}", 12, &ev, &err), -1);
    /* every field read, an integer id, keys that only look alike ignored */
    const char *all = "{\"events\":[{\"idx\":\"no\",\"platform_ids\":\"no\",\"id\":42,"
                      "\"type\":\"click\",\"platform\":\"x\",\"platform_id\":\"p9\",\"job\":"
                      "\"J\",\"campaign\":\"C\",\"email\":\"e@x.org\",\"ts\":1700000001,"
                      "\"tss\":5,\"Job\":\"no\"}]}";
    CHECK_INT(hook_parse_generic(all, strlen(all), &ev, &err), 0);
    REQUIRE(ev.n == 1);
    CHECK_STR(ev.v[0].id, "generic:x:42");
    CHECK_INT(ev.v[0].type, HOOK_EV_CLICK);
    CHECK_STR(ev.v[0].platform, "x");
    CHECK_STR(ev.v[0].platform_id, "p9");
    CHECK_STR(ev.v[0].job, "J");
    CHECK_STR(ev.v[0].campaign, "C");
    CHECK_STR(ev.v[0].email, "e@x.org");
    CHECK_INT(ev.v[0].ts_ms, 1700000001000LL);
    hook_events_release(&ev);
    /* an event that is not an object, an empty id */
    CHECK_INT(hook_parse_generic("[\"id\"]", 6, &ev, &err), -1);
    CHECK(strstr(err.msg, "event 0") != NULL);
    const char *empty = "[{\"id\":\"\",\"type\":\"like\",\"job\":\"J\"}]";
    CHECK_INT(hook_parse_generic(empty, strlen(empty), &ev, &err), -1);
    CHECK_INT(ev.n, 0);
}

static void test_names(void)
{
    for (int t = 1; t < HOOK_EV_COUNT; t++)
        CHECK_INT(hook_ev_parse(hook_ev_name((hook_ev_type)t)), t);
    CHECK_INT(hook_ev_parse("nope"), HOOK_EV_NONE);
    CHECK_INT(hook_ev_parse(NULL), HOOK_EV_NONE);
}

/* b64url: unsubscribe tokens decode only as spelled canonically; the spare
 * bits of a last character are not a second spelling of the same bytes. */
static void test_b64url(void)
{
    unsigned char out[16];
    CHECK_INT(hr_b64url_decode("QQ", out, sizeof out), 1); /* "A" */
    CHECK_INT(out[0], 'A');
    CHECK_INT(hr_b64url_decode("QUI", out, sizeof out), 2); /* "AB" */
    CHECK_INT(hr_b64url_decode("QUJD", out, sizeof out), 3);
    CHECK_INT(hr_b64url_decode("-_8", out, sizeof out), 2);
    CHECK_INT(hr_b64url_decode("QR", out, sizeof out), -1);  /* spare bits set */
    CHECK_INT(hr_b64url_decode("QUJ", out, sizeof out), -1); /* spare bits set */
    CHECK_INT(hr_b64url_decode("QQ==", out, sizeof out), -1);
    CHECK_INT(hr_b64url_decode("+/8", out, sizeof out), -1);
    CHECK_INT(hr_b64url_decode("Q", out, sizeof out), -1);
    CHECK_INT(hr_b64url_decode(" QUJD", out, sizeof out), -1);
}

int main(void)
{
    th_run("generic", test_generic);
    th_run("mailgun", test_mailgun);
    th_run("basic", test_basic);
    th_run("sendgrid", test_sendgrid);
    th_run("parsers", test_parsers);
    th_run("names", test_names);
    th_run("b64url", test_b64url);
    return th_main_end();
}
