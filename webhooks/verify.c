/* verify.c: the providers' webhook signature checks (SendGrid ECDSA, Mailgun
 * and generic HMAC, Postmark basic auth) and reading credential files.
 * Pure functions of their inputs; crypto is OpenSSL's. They do not parse
 * event bodies (events.c does). */
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* b64_decode decodes standard (padded or not) base64; returns length or -1. */
long hook_b64_decode(const char *in, unsigned char *out, size_t outcap)
{
    size_t n = strlen(in);
    while (n && (in[n - 1] == '\n' || in[n - 1] == '\r' || in[n - 1] == ' '))
        n--;
    if (n == 0 || n > 8192) return -1;
    char buf[8200];
    memcpy(buf, in, n);
    while (n % 4)
        buf[n++] = '=';
    buf[n] = '\0';
    if (outcap < n / 4 * 3) return -1;
    int len = EVP_DecodeBlock(out, (const unsigned char *)buf, (int)n);
    if (len < 0) return -1;
    for (size_t i = n; i > 0 && buf[i - 1] == '='; i--)
        len--;
    return len;
}

static int check_window(const char *timestamp, int64_t now_s, int window_s, hr_err *err)
{
    int64_t ts;
    if (!timestamp || hr_parse_i64(timestamp, &ts) != 0)
        return hr_err_set(err, "signature: missing or bad timestamp");
    /* no window is no check: refuse rather than take any old timestamp */
    if (window_s < 1 || ts < now_s - window_s || ts > now_s + window_s)
        return hr_err_set(err, "signature: timestamp outside the replay window");
    return 0;
}

EVP_PKEY *hook_pubkey_load(const char *pubkey, hr_err *err)
{
    EVP_PKEY *k = NULL;
    if (strncmp(pubkey, "-----BEGIN", 10) == 0) {
        BIO *b = BIO_new_mem_buf(pubkey, -1);
        k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
        BIO_free(b);
    } else {
        unsigned char der[2048];
        long n = hook_b64_decode(pubkey, der, sizeof der);
        if (n > 0) {
            const unsigned char *p = der;
            k = d2i_PUBKEY(NULL, &p, n);
        }
    }
    if (!k) hr_err_set(err, "sendgrid: public key is neither PEM nor base64 DER");
    return k;
}

int hook_verify_sendgrid_key(EVP_PKEY *key, const char *sig_b64, const char *timestamp,
                             const char *body, size_t len, int64_t now_s, int window_s, hr_err *err)
{
    if (!sig_b64) return hr_err_set(err, "sendgrid: missing signature header");
    if (check_window(timestamp, now_s, window_s, err) != 0) return -1;
    unsigned char sig[256];
    long sl = hook_b64_decode(sig_b64, sig, sizeof sig);
    if (sl <= 0) return hr_err_set(err, "sendgrid: signature is not base64");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerifyUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
             EVP_DigestVerifyUpdate(ctx, body, len) == 1 &&
             EVP_DigestVerifyFinal(ctx, sig, (size_t)sl) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) return hr_err_set(err, "sendgrid: bad signature");
    return 0;
}

int hook_verify_sendgrid(const char *pubkey, const char *sig_b64, const char *timestamp,
                         const char *body, size_t len, int64_t now_s, int window_s, hr_err *err)
{
    EVP_PKEY *k = hook_pubkey_load(pubkey, err);
    if (!k) return -1;
    int rc = hook_verify_sendgrid_key(k, sig_b64, timestamp, body, len, now_s, window_s, err);
    EVP_PKEY_free(k);
    return rc;
}

int hook_verify_mailgun(const char *key, const char *timestamp, const char *token,
                        const char *sig_hex, int64_t now_s, int window_s, hr_err *err)
{
    if (!token || !sig_hex) return hr_err_set(err, "mailgun: missing token or signature");
    if (check_window(timestamp, now_s, window_s, err) != 0) return -1;
    hr_buf msg;
    hr_buf_init(&msg);
    hr_buf_puts(&msg, timestamp);
    hr_buf_puts(&msg, token);
    unsigned char mac[32];
    hr_hmac_sha256(key, strlen(key), msg.data, msg.len, mac);
    hr_buf_release(&msg);
    char hex[65];
    hr_hex(mac, 32, hex);
    if (strlen(sig_hex) != 64 || !hr_ct_equal(hex, sig_hex, 64))
        return hr_err_set(err, "mailgun: bad signature");
    return 0;
}

int hook_verify_basic(const char *userpass, const char *authorization, hr_err *err)
{
    /* the scheme is case-insensitive (RFC 7235), then one or more spaces */
    if (!authorization || strncasecmp(authorization, "Basic ", 6) != 0)
        return hr_err_set(err, "postmark: missing basic auth");
    size_t n = strlen(userpass);
    if (n > 1000) return hr_err_set(err, "postmark: credential too long");
    unsigned char want[1400];
    int wl = EVP_EncodeBlock(want, (const unsigned char *)userpass, (int)n);
    const char *got = authorization + 6;
    while (*got == ' ')
        got++;
    if ((size_t)wl != strlen(got) || !hr_ct_equal(want, got, (size_t)wl))
        return hr_err_set(err, "postmark: bad credentials");
    return 0;
}

/* A keyed HMAC-SHA256 set up once: OpenSSL 3's one-shot HMAC() fetches the
 * digest and sets the key on every call, which costs more than hashing a
 * small webhook. EVP_MAC_init without a key restarts the context with the
 * key it has (cheaper again than duplicating a keyed context per message). */
struct hook_mac {
    EVP_MAC *mac;
    EVP_MAC_CTX *keyed;
};

hook_mac *hook_mac_new(const char *key)
{
    hook_mac *m = hr_calloc(1, sizeof *m);
    m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    m->keyed = m->mac ? EVP_MAC_CTX_new(m->mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!m->keyed || EVP_MAC_init(m->keyed, (const unsigned char *)key, strlen(key), params) != 1) {
        /* OpenSSL without HMAC: nothing herald can do */
        fprintf(stderr, "herald: OpenSSL HMAC-SHA256 is unavailable\n");
        abort();
    }
    return m;
}

void hook_mac_free(hook_mac *m)
{
    if (!m) return;
    EVP_MAC_CTX_free(m->keyed);
    EVP_MAC_free(m->mac);
    free(m);
}

void hook_mac_hex(hook_mac *m, const void *a, size_t alen, const void *b, size_t blen,
                  char hex[65])
{
    EVP_MAC_CTX *x = m->keyed;
    unsigned char out[32];
    size_t outlen = 0;
    if (EVP_MAC_init(x, NULL, 0, NULL) != 1 || EVP_MAC_update(x, a, alen) != 1 ||
        EVP_MAC_update(x, b, blen) != 1 ||
        EVP_MAC_final(x, out, &outlen, sizeof out) != 1 || outlen != 32) {
        fprintf(stderr, "herald: HMAC-SHA256 failed\n");
        abort();
    }
    hr_hex(out, 32, hex);
}

/* generic_mac: the MAC of "<t>.<body>"; t (at most 23 characters) and
 * its dot go as one piece: each EVP_MAC_update costs about as much as
 * hashing a small webhook's block */
static void generic_mac(hook_mac *m, const char *t, const char *body, size_t len, char hex[65])
{
    char head[25];
    size_t tl = strnlen(t, 23);
    memcpy(head, t, tl);
    head[tl] = '.';
    hook_mac_hex(m, head, tl + 1, body, len, hex);
}

void hook_sign_generic_mac(hook_mac *m, int64_t now_s, const char *body, size_t len, char *out,
                           size_t outlen)
{
    char t[24], hex[65];
    hook_fmt_i64(t, now_s);
    generic_mac(m, t, body, len, hex);
    snprintf(out, outlen, "t=%s,v1=%s", t, hex);
}

void hook_sign_generic(const char *key, int64_t now_s, const char *body, size_t len, char *out,
                       size_t outlen)
{
    hook_mac *m = hook_mac_new(key);
    hook_sign_generic_mac(m, now_s, body, len, out, outlen);
    hook_mac_free(m);
}

int hook_verify_generic(const char *key, const char *sig_header, const char *body, size_t len,
                        int64_t now_s, int window_s, hr_err *err)
{
    hook_mac *m = hook_mac_new(key);
    int rc = hook_verify_generic_mac(m, sig_header, body, len, now_s, window_s, err);
    hook_mac_free(m);
    return rc;
}

int hook_verify_generic_mac(hook_mac *m, const char *sig_header, const char *body, size_t len,
                            int64_t now_s, int window_s, hr_err *err)
{
    if (!sig_header) return hr_err_set(err, "generic: missing X-Herald-Signature");
    char t[24] = "", v1[65] = "";
    const char *p = sig_header;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        if (seg > 2 && strncmp(p, "t=", 2) == 0 && seg - 2 < sizeof t) {
            memcpy(t, p + 2, seg - 2);
            t[seg - 2] = '\0';
        } else if (seg == 67 && strncmp(p, "v1=", 3) == 0) {
            memcpy(v1, p + 3, 64);
            v1[64] = '\0';
        }
        p += seg;
    }
    if (!t[0] || !v1[0]) return hr_err_set(err, "generic: malformed X-Herald-Signature");
    if (check_window(t, now_s, window_s, err) != 0) return -1;
    char hex[65];
    generic_mac(m, t, body, len, hex);
    if (!hr_ct_equal(hex, v1, 64)) return hr_err_set(err, "generic: bad signature");
    return 0;
}

/* credential_path resolves where key's secret is: the config's file, else
 * $CREDENTIALS_DIRECTORY/name (*optional set: absent means not configured),
 * else NULL. */
static const char *credential_path(const hr_config *c, const char *key, const char *name,
                                   char *buf, size_t cap, int *optional)
{
    const char *file = c ? hr_config_get(c, key, NULL) : NULL;
    *optional = 0;
    if (file) return file;
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (!dir) return NULL;
    snprintf(buf, cap, "%s/%s", dir, name);
    *optional = 1;
    return buf;
}

char *hook_credential(const hr_config *c, const char *key, const char *name, hr_err *warn,
                      hr_err *err)
{
    char path[1024];
    int optional;
    const char *file = credential_path(c, key, name, path, sizeof path, &optional);
    if (!file) return NULL;
    hr_err e = {0}, w = {0};
    char *v = hr_key_file_read(file, optional, &w, &e);
    if (!v && e.code) hr_err_set(err, "credential %s: %s", key, e.msg);
    if (w.code) hr_err_set(warn, "credential %s: %s", key, w.msg);
    return v;
}

EVP_PKEY *hook_sendgrid_key_load(const hr_config *c, hr_err *warn, hr_err *err)
{
    static const char key[] = "sendgrid-webhook-key-file";
    char path[1024];
    int optional;
    const char *file = credential_path(c, key, "sendgrid-webhook-key", path, sizeof path,
                                       &optional);
    char *pem = hook_credential(c, key, "sendgrid-webhook-key", warn, err);
    if (!pem) return NULL;
    hr_err e = {0};
    EVP_PKEY *k = hook_pubkey_load(pem, &e);
    free(pem);
    if (!k) hr_err_set(err, "credential %s: %s: %s", key, file, e.msg);
    return k;
}

int hook_credential_check(const hr_config *c, const char *key, const char *name, hr_err *warn,
                          hr_err *err)
{
    if (strcmp(key, "sendgrid-webhook-key-file") == 0) {
        EVP_PKEY *k = hook_sendgrid_key_load(c, warn, err);
        EVP_PKEY_free(k);
    } else {
        char *v = hook_credential(c, key, name, warn, err);
        if (v) explicit_bzero(v, strlen(v));
        free(v);
    }
    return err->code ? -1 : 0;
}
