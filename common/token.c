/* token.c: the install's secret, HMAC, base64url and signed unsubscribe
 * tokens. Crypto is OpenSSL's; this file only frames it. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"

/* key_file_open opens path for reading after the checks every key file
 * gets (see hr_key_file_read); NULL with err (untouched when optional and
 * missing). */
static FILE *key_file_open(const char *path, int optional, hr_err *warn, hr_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        /* only a missing file is "not configured": a loop, a denied or a
         * broken file would otherwise turn a route off without a word */
        if (optional && errno == ENOENT) return NULL;
        hr_err_set(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    int known = fstat(fileno(f), &st) == 0;
    if (known && S_ISDIR(st.st_mode)) {
        fclose(f);
        hr_err_set(err, "%s is a directory", path);
        return NULL;
    }
    /* as ssh does for keys: warn, a deployment may want a group to read it */
    if (warn && known && (st.st_mode & 077))
        hr_err_set(warn, "%s is open to group or others (mode %04o; chmod go-rwx)", path,
                   (unsigned)(st.st_mode & 07777));
    return f;
}

#define KEY_FILE_MAX 65536

char *hr_key_file_read(const char *path, int optional, hr_err *warn, hr_err *err)
{
    FILE *f = key_file_open(path, optional, warn, err);
    if (!f) return NULL;
    hr_buf b;
    hr_buf_init(&b);
    char chunk[4096];
    size_t n;
    while (b.len <= KEY_FILE_MAX && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        hr_buf_append(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    /* cutting a key short would only show later as every signature failing */
    if (bad) hr_err_set(err, "cannot read %s", path);
    else if (b.len > KEY_FILE_MAX) hr_err_set(err, "%s: larger than 64 KiB", path);
    else if (b.len == 0 || (b.len = hr_trim_end(b.data, b.len)) == 0)
        hr_err_set(err, "%s is empty", path);
    else return hr_buf_detach(&b);
    if (b.data) explicit_bzero(b.data, b.cap);
    hr_buf_release(&b);
    return NULL;
}

/* read_secret_file keeps the derivation herald has always used (the first
 * 1023 bytes, less trailing CR, LF and spaces; a NUL ends it): the secret
 * keys the suppression hashes and unsubscribe tokens already stored and
 * mailed, so any other reading would silently unsuppress people. */
static char *read_secret_file(const char *path, hr_err *warn, hr_err *err)
{
    hr_err e = {0}, w = {0};
    FILE *f = key_file_open(path, 0, &w, &e);
    if (w.code) hr_err_set(warn, "secret: %s", w.msg);
    if (!f) {
        hr_err_set(err, "secret: %s", e.msg);
        return NULL;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
    buf[n] = '\0';
    char *s = bad || n < 16 ? NULL : hr_strdup(buf);
    explicit_bzero(buf, sizeof buf);
    if (!s)
        hr_err_set(err, bad ? "secret: cannot read %s" : "secret: %s: shorter than 16 bytes",
                   path);
    return s;
}

char *hr_secret_load(const hr_config *c, hr_err *warn, hr_err *err)
{
    const char *env = getenv("HERALD_SECRET");
    if (env) {
        if (strlen(env) < 16) {
            hr_err_set(err, "secret: $HERALD_SECRET is shorter than 16 bytes");
            return NULL;
        }
        return hr_strdup(env);
    }
    const char *file = hr_config_get(c, "secret-file", NULL);
    if (file) return read_secret_file(file, warn, err);
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/herald-secret", dir);
        return read_secret_file(path, warn, err);
    }
    hr_err_set(err, "secret: none configured (set HERALD_SECRET, secret-file, or a "
                    "herald-secret credential)");
    return NULL;
}

void hr_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                    unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, out, &len);
}

void hr_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=') len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++) {
        if (out[i] == '+') out[i] = '-';
        else if (out[i] == '/') out[i] = '_';
    }
}

long hr_b64url_decode(const char *in, unsigned char *out, size_t outcap)
{
    size_t n = strlen(in);
    if (n % 4 == 1) return -1;
    size_t padded = (n + 3) / 4 * 4;
    char *tmp = hr_malloc(padded + 1);
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (c == '+' || c == '/' || c == '=') {
            free(tmp);
            return -1;
        }
        tmp[i] = c;
    }
    for (size_t i = n; i < padded; i++) tmp[i] = '=';
    tmp[padded] = '\0';
    if (padded / 4 * 3 > outcap) {
        free(tmp);
        return -1;
    }
    int len = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
    if (len < (int)(padded - n)) {
        free(tmp);
        return -1;
    }
    long got = len - (long)(padded - n); /* EVP_DecodeBlock counts padding bytes */
    /* Only the canonical spelling is taken: a last character whose spare
     * bits are set (or any other text OpenSSL reads to the same bytes)
     * would let an altered token pass as the one it came from. tmp has
     * room: encoding got bytes takes n characters. */
    hr_b64url_encode(out, (size_t)got, tmp);
    int canonical = strcmp(tmp, in) == 0;
    free(tmp);
    return canonical ? got : -1;
}

static int copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* A token is base64url(nonce[12] | ciphertext | tag[16]): the payload
 * "email\ncampaign\njob" sealed with AES-256-GCM under a key derived from
 * the secret, so the address is not readable in the URL (proxies log URLs)
 * and any change to the token fails the tag. Fields cannot hold newlines. */
#define TOKEN_NONCE 12
#define TOKEN_TAG 16

static void token_key(const char *secret, unsigned char key[32])
{
    static const char label[] = "herald unsubscribe token v1";
    hr_hmac_sha256(secret, strlen(secret), label, sizeof label - 1, key);
}

char *hr_unsub_token_make(const char *secret, const hr_unsub *u)
{
    char payload[512];
    int n = snprintf(payload, sizeof payload, "%s\n%s\n%s", u->email, u->campaign, u->job);
    if (n < 0 || (size_t)n >= sizeof payload) n = (int)sizeof payload - 1;
    unsigned char key[32], raw[TOKEN_NONCE + sizeof payload + TOKEN_TAG];
    token_key(secret, key);
    hr_random_bytes(raw, TOKEN_NONCE);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
        EVP_EncryptUpdate(c, raw + TOKEN_NONCE, &len, (unsigned char *)payload, n) != 1 ||
        EVP_EncryptFinal_ex(c, raw + TOKEN_NONCE + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TOKEN_TAG, raw + TOKEN_NONCE + len + fin) !=
            1) {
        fprintf(stderr, "herald: unsubscribe token: OpenSSL failed\n");
        abort(); /* our own invariant: AES-GCM with valid arguments */
    }
    EVP_CIPHER_CTX_free(c);
    size_t total = (size_t)(TOKEN_NONCE + len + fin + TOKEN_TAG);
    char *out = hr_malloc(total * 4 / 3 + 4);
    hr_b64url_encode(raw, total, out);
    OPENSSL_cleanse(key, sizeof key);
    return out;
}

char *hr_unsub_url(const char *base, const char *token)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    if (bl >= 2 && base[bl - 2] == '/' && base[bl - 1] == 'u') bl -= 2;
    return hr_asprintf("%.*s/u/%s", (int)bl, base, token);
}

int hr_unsub_token_verify(const char *secret, const char *token, hr_unsub *u, hr_err *err)
{
    size_t tl = strlen(token);
    if (tl < 8 || tl > 1000) return hr_err_set(err, "unsubscribe token: malformed");
    unsigned char raw[800];
    long n = hr_b64url_decode(token, raw, sizeof raw);
    if (n < TOKEN_NONCE + TOKEN_TAG + 4) return hr_err_set(err, "unsubscribe token: malformed");
    unsigned char key[32], payload[800];
    token_key(secret, key);
    int clen = (int)n - TOKEN_NONCE - TOKEN_TAG, len = 0, fin = 0, ok = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, raw) == 1 &&
        EVP_DecryptUpdate(c, payload, &len, raw + TOKEN_NONCE, clen) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TOKEN_TAG, raw + TOKEN_NONCE + clen) == 1 &&
        EVP_DecryptFinal_ex(c, payload + len, &fin) == 1)
        ok = 1; /* the tag matched: the token is ours and unaltered */
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) return hr_err_set(err, "unsubscribe token: bad signature");
    payload[len + fin] = '\0';
    char *a = (char *)payload, *b = strchr(a, '\n'), *d = b ? strchr(b + 1, '\n') : NULL;
    if (!b || !d) return hr_err_set(err, "unsubscribe token: malformed payload");
    *b = *d = '\0';
    memset(u, 0, sizeof *u);
    if (copy_field(u->email, sizeof u->email, a) < 0 ||
        copy_field(u->campaign, sizeof u->campaign, b + 1) < 0 ||
        copy_field(u->job, sizeof u->job, d + 1) < 0)
        return hr_err_set(err, "unsubscribe token: field too long");
    return 0;
}
