/* smtp.c: SMTP through libcurl: plat_smtp_setup configures the worker's
 * easy handle (envelope, headers, a multipart/alternative body built with
 * curl_mime_*); the outcome comes from the SMTP reply code. No socket is
 * touched here: the worker runs the transfer. */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

char *email_addr(const char *name, const char *addr);

struct plat_smtp_owned {
    struct curl_slist *rcpt, *headers, *inline_hdr;
    curl_mime *mime;
    char *from, *user, *pass;
};

static long email_count(const plat_account *a, const char *text)
{
    return plat_count_graphemes(text);
}

/* a header value with non-ASCII text becomes an RFC 2047 encoded-word */
static char *encode_word(const char *v)
{
    int ascii = 1;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p >= 0x80) ascii = 0;
    if (ascii) return hr_strdup(v);
    size_t n = strlen(v);
    unsigned char *out = hr_malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock(out, (const unsigned char *)v, (int)n);
    char *r = hr_asprintf("=?UTF-8?B?%s?=", (char *)out);
    free(out);
    return r;
}

/* crlf: message lines end in CRLF (RFC 5322); curl's quoted-printable
 * encoder would otherwise encode bare LFs as =0A */
static char *crlf(const char *t)
{
    hr_buf b;
    hr_buf_init(&b);
    for (const char *p = t; *p; p++) {
        if (*p == '\n' && (p == t || p[-1] != '\r')) hr_buf_putc(&b, '\r');
        hr_buf_putc(&b, *p);
    }
    if (!b.data) hr_buf_append(&b, "", 0);
    return hr_buf_detach(&b);
}

static int smtp_request(plat_send *s, plat_request *req, hr_err *err)
{
    req_init(req, "SMTP", hr_strdup(s->a->base_url));
    return 0;
}

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *v)
{
    char *h = hr_asprintf("%s: %s", name, v);
    struct curl_slist *n = curl_slist_append(l, h);
    free(h);
    if (!n) abort();
    return n;
}

int plat_smtp_setup(plat_send *s, void *easy, struct plat_smtp_owned **owned, hr_err *err)
{
    CURL *c = easy;
    *owned = NULL;
    if (strcmp(s->a->platform, "smtp") != 0)
        return hr_err_set(err, "%s: not an SMTP account", s->a->platform);
    const plat_post *p = &s->post;
    struct plat_smtp_owned *o = hr_calloc(1, sizeof *o);
    curl_easy_setopt(c, CURLOPT_URL, s->a->base_url);
    if (s->a->credential) {
        const char *colon = strchr(s->a->credential, ':');
        o->user = colon ? hr_strndup(s->a->credential, (size_t)(colon - s->a->credential))
                        : hr_strdup(s->a->credential);
        o->pass = hr_strdup(colon ? colon + 1 : "");
        curl_easy_setopt(c, CURLOPT_USERNAME, o->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, o->pass);
    }
    if (strncmp(s->a->base_url, "smtp://", 7) == 0 &&
        strcmp(plat_account_opt(s->a, "starttls", "try"), "off") != 0)
        curl_easy_setopt(c, CURLOPT_USE_SSL, (long)(strcmp(plat_account_opt(s->a, "starttls",
                                                                             "try"),
                                                            "require") == 0
                                                         ? CURLUSESSL_ALL
                                                         : CURLUSESSL_TRY));
    o->from = hr_asprintf("<%s>", p->from);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, o->from);
    char *rcpt = hr_asprintf("<%s>", p->to);
    o->rcpt = curl_slist_append(NULL, rcpt);
    free(rcpt);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, o->rcpt);

    char *from = email_addr(p->from_name, p->from), *to = email_addr(p->to_name, p->to);
    char *fn = p->from_name ? encode_word(p->from_name) : NULL;
    char *tn = p->to_name ? encode_word(p->to_name) : NULL;
    char *fromh = email_addr(fn, p->from), *toh = email_addr(tn, p->to);
    char *subj = encode_word(p->subject);
    char date[64];
    time_t now = (time_t)(send_now(s) / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    o->headers = add_header(o->headers, "Date", date);
    o->headers = add_header(o->headers, "From", fromh);
    o->headers = add_header(o->headers, "To", toh);
    o->headers = add_header(o->headers, "Subject", subj);
    const char *rt = plat_account_opt(s->a, "reply-to", NULL);
    if (rt) o->headers = add_header(o->headers, "Reply-To", rt);
    plat_header hs[8];
    int nh = email_headers(s, hs, 8);
    for (int i = 0; i < nh; i++) o->headers = add_header(o->headers, hs[i].name, hs[i].value);
    free(from);
    free(to);
    free(fn);
    free(tn);
    free(fromh);
    free(toh);
    free(subj);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, o->headers);

    /* multipart/alternative: plain text first, HTML last (preferred) */
    o->mime = curl_mime_init(c);
    curl_mime *alt = curl_mime_init(c);
    curl_mimepart *part = curl_mime_addpart(alt);
    char *text = crlf(p->text);
    curl_mime_data(part, text, CURL_ZERO_TERMINATED); /* curl copies it */
    free(text);
    curl_mime_type(part, "text/plain; charset=utf-8");
    curl_mime_encoder(part, "quoted-printable");
    if (p->html) {
        part = curl_mime_addpart(alt);
        char *html = crlf(p->html);
        curl_mime_data(part, html, CURL_ZERO_TERMINATED);
        free(html);
        curl_mime_type(part, "text/html; charset=utf-8");
        curl_mime_encoder(part, "quoted-printable");
    }
    part = curl_mime_addpart(o->mime);
    curl_mime_subparts(part, alt);
    curl_mime_type(part, "multipart/alternative");
    o->inline_hdr = curl_slist_append(NULL, "Content-Disposition: inline");
    curl_mime_headers(part, o->inline_hdr, 0);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, o->mime);
    *owned = o;
    return 0;
}

void plat_smtp_cleanup(struct plat_smtp_owned *o)
{
    if (!o) return;
    curl_slist_free_all(o->rcpt);
    curl_slist_free_all(o->headers);
    curl_slist_free_all(o->inline_hdr);
    curl_mime_free(o->mime);
    free(o->from);
    free(o->user);
    if (o->pass) explicit_bzero(o->pass, strlen(o->pass));
    free(o->pass);
    free(o);
}

/* The worker puts CURLINFO_RESPONSE_CODE (the last SMTP reply) in status
 * and maps curl's error to terr. A 4xx or 5xx is the server's word (curl
 * fails the transfer on one): the message was refused, whichever command it
 * answered. Without one, a failure is the transport's: unknown once the
 * message may have gone out (the worker's fully_sent), else retried. */
static void smtp_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (r->status == 535 || r->status == 534 || r->status == 530)
        out_set(o, PLAT_OUT_REAUTH, "smtp: authentication failed (%ld)", r->status);
    else if (r->status >= 400 && r->status < 500)
        out_set(o, PLAT_OUT_TRANSIENT, "smtp: temporary failure (%ld)", r->status);
    else if (r->status >= 500)
        out_set(o, PLAT_OUT_PERMANENT, "smtp: refused (%ld)", r->status);
    else if (r->terr != PLAT_TE_NONE || r->status == 0)
        plat_classify_http(r, send_now(s), o);
    else if (r->status >= 200 && r->status < 300)
        out_sent(o, s->post.message_id);
    else
        out_set(o, PLAT_OUT_PERMANENT, "smtp: refused (%ld)", r->status);
}

const plat_ops plat_smtp_ops = {
    .name = "smtp",
    .email = 1,
    .default_base = "smtp://127.0.0.1:25",
    .default_limit = 200,
    .count = email_count,
    .request = smtp_request,
    .response = smtp_response,
};
