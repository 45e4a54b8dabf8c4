/* suppress.c: the suppression list. It stores a keyed hash of each
 * normalized address, never the address, so a leaked Redis dump does not
 * leak the list. */
#include <ctype.h>
#include <string.h>

#include "internal.h"

int queue_email_normalize(const char *email, char *out, size_t outlen)
{
    return queue_email_check(email, out, outlen) ? -1 : 0;
}

const char *queue_email_check(const char *email, char *out, size_t outlen)
{
    while (*email && isspace((unsigned char)*email)) email++;
    size_t n = strlen(email);
    while (n && isspace((unsigned char)email[n - 1])) n--;
    if (n == 0) return "no email address";
    if (n >= outlen || n > 254) return "not an email address: too long";
    const char *at = memchr(email, '@', n);
    if (!at) return "not an email address: no @";
    if (at == email) return "not an email address: nothing before the @";
    if (at == email + n - 1) return "not an email address: nothing after the @";
    if (memchr(at + 1, '@', n - (size_t)(at - email) - 1))
        return "not an email address: more than one @";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';')
            return "not an email address: a space, control character or one of < > , ;";
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    const char *dom = strchr(out, '@') + 1;
    if (!strchr(dom, '.')) return "not an email address: no dot in the domain";
    if (dom[0] == '.' || out[n - 1] == '.')
        return "not an email address: the domain starts or ends with a dot";
    return NULL;
}

int queue_suppress_hash(const char *secret, const char *email, char *out)
{
    char norm[256];
    if (queue_email_normalize(email, norm, sizeof norm) < 0) return -1;
    unsigned char mac[32];
    hr_hmac_sha256(secret, strlen(secret), norm, strlen(norm), mac);
    hr_hex(mac, sizeof mac, out);
    return 0;
}

int queue_suppress_add(queue *q, const char *secret, const char *email, const char *reason,
                       hr_err *err)
{
    char h[65];
    if (queue_suppress_hash(secret, email, h) < 0)
        return hr_err_set(err, "suppress: not an email address");
    redisReply *r = queue_cmd_sync(q, err, "HSET {%s}:suppressed %s %s\t%lld", q->ns, h,
                                   reason ? reason : "manual", (long long)hr_now_ms());
    if (!r) return -1;
    freeReplyObject(r);
    return 0;
}

int queue_is_suppressed(queue *q, const char *secret, const char *email, hr_err *err)
{
    char h[65];
    /* fail closed: an address we cannot normalise cannot be cleared */
    if (queue_suppress_hash(secret, email, h) < 0)
        return hr_err_set(err, "suppress: not an email address");
    redisReply *r = queue_cmd_sync(q, err, "HEXISTS {%s}:suppressed %s", q->ns, h);
    if (!r) return -1;
    int v = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return v;
}
