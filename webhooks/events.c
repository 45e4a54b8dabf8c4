/* events.c: turns each provider's (already verified) webhook body into
 * herald's normalized events. jansson parses; these functions only map
 * fields. They do not check signatures or touch Redis. */
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const ev_names[HOOK_EV_COUNT] = {
    "none", "delivered",   "open", "click",  "bounce",
    "spam", "unsubscribe", "like", "repost", "reply",
};

const char *hook_ev_name(hook_ev_type t)
{
    return (t >= 0 && t < HOOK_EV_COUNT) ? ev_names[t] : "none";
}

hook_ev_type hook_ev_parse(const char *name)
{
    for (int i = 1; name && i < HOOK_EV_COUNT; i++)
        if (strcmp(ev_names[i], name) == 0) return (hook_ev_type)i;
    return HOOK_EV_NONE;
}

static void event_release(hook_event *e)
{
    free(e->id);
    free(e->job);
    free(e->campaign);
    free(e->platform);
    free(e->platform_id);
    free(e->email);
}

void hook_events_release(hook_events *e)
{
    for (int i = 0; i < e->n; i++)
        event_release(&e->v[i]);
    free(e->v);
    memset(e, 0, sizeof *e);
}

static hook_event *push(hook_events *out)
{
    out->v = hr_realloc(out->v, sizeof *out->v * (size_t)(out->n + 1));
    hook_event *e = &out->v[out->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* truncate drops events appended after n (on a failure half-way). */
static void truncate_to(hook_events *out, int n, int ignored)
{
    while (out->n > n)
        event_release(&out->v[--out->n]);
    out->ignored = ignored;
    if (out->n == 0) { /* callers need not release after a failure */
        free(out->v);
        out->v = NULL;
    }
}

/* event_id returns "<route>:<id>", or "<route>:<sub>:<id>" when sub is not
 * NULL (new string); id is idlen bytes. Each route's ids live under its own
 * name, so what one sender puts in a body never names another route's
 * events. Ids are made per event, and printf showed in the profile. */
static char *event_id(const char *route, const char *sub, const char *id, size_t idlen)
{
    size_t rl = strlen(route), sl = sub ? strlen(sub) + 1 : 0;
    char *s = hr_malloc(rl + sl + idlen + 2);
    memcpy(s, route, rl);
    s[rl] = ':';
    if (sub) {
        memcpy(s + rl + 1, sub, sl - 1);
        s[rl + sl] = ':';
    }
    memcpy(s + rl + sl + 1, id, idlen);
    s[rl + sl + 1 + idlen] = '\0';
    return s;
}

/* str_view returns v's text without copying it: a string of 1..1023 bytes
 * (borrowed from v), or an integer written in decimal into num; else NULL.
 * *len is its length. */
static const char *str_view(json_t *v, char num[24], size_t *len)
{
    if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 1024) {
        *len = json_string_length(v);
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        *len = hook_fmt_i64(num, (int64_t)json_integer_value(v));
        return num;
    }
    return NULL;
}

/* str_val is str_view's text as a new string, or NULL. */
static char *str_val(json_t *v)
{
    char num[24];
    size_t len;
    const char *p = str_view(v, num, &len);
    return p ? hr_strndup(p, len) : NULL;
}

static char *str_of(json_t *o, const char *key)
{
    return str_val(json_object_get(o, key));
}

/* The earliest event time taken (2000-01-01T00:00:00Z, in s). */
enum { TS_MIN_S = 946684800 };

/* ts_val returns the event time v (unix seconds, integer or not, or
 * RFC 3339) in ms, or 0 (unknown) when it is absent or outside [2000, now +
 * 1 day]: a time no sender could mean, checked before any arithmetic so
 * that no value overflows. */
static int64_t ts_val(json_t *v)
{
    if (!v) return 0;
    int64_t max_ms = hr_now_ms() + 86400000;
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        return s >= TS_MIN_S && s <= max_ms / 1000 ? (int64_t)s * 1000 : 0;
    }
    if (json_is_real(v)) {
        double s = json_real_value(v);
        return s >= TS_MIN_S && s * 1000.0 <= (double)max_ms ? (int64_t)(s * 1000.0) : 0;
    }
    int64_t ms;
    if (json_is_string(v) && hr_parse_rfc3339(json_string_value(v), &ms) == 0 &&
        ms >= TS_MIN_S * INT64_C(1000) && ms <= max_ms)
        return ms;
    return 0;
}

static int64_t ts_of(json_t *o, const char *key)
{
    return ts_val(json_object_get(o, key));
}

static json_t *load(const char *body, size_t len, const char *who, hr_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) hr_err_set(err, "%s: body is not JSON: line %d: %s", who, je.line, je.text);
    return root;
}

/* Each provider's event names, in hook_ev_type order (index 1..6: delivered,
 * open, click, bounce, spam, unsubscribe). The parsers read them one way, the
 * sandbox writes them the other. */
static const char *const names_sendgrid[] = {NULL,     "delivered",  "open",       "click",
                                             "bounce", "spamreport", "unsubscribe"};
static const char *const names_mailgun[] = {NULL,     "delivered",  "opened",      "clicked",
                                            "failed", "complained", "unsubscribed"};
static const char *const names_postmark[] = {
    NULL, "Delivery", "Open", "Click", "Bounce", "SpamComplaint", "SubscriptionChange"};

static const char *const *provider_names(const char *provider)
{
    if (!provider) return NULL;
    if (strcmp(provider, "sendgrid") == 0) return names_sendgrid;
    if (strcmp(provider, "mailgun") == 0) return names_mailgun;
    if (strcmp(provider, "postmark") == 0) return names_postmark;
    return NULL;
}

const char *hook_provider_event(const char *provider, hook_ev_type t)
{
    const char *const *names = provider_names(provider);
    return names && t > HOOK_EV_NONE && t <= HOOK_EV_UNSUBSCRIBE ? names[t] : NULL;
}

static hook_ev_type provider_type(const char *provider, const char *name)
{
    const char *const *names = provider_names(provider);
    for (int t = HOOK_EV_DELIVERED; name && t <= HOOK_EV_UNSUBSCRIBE; t++)
        if (strcmp(names[t], name) == 0) return (hook_ev_type)t;
    return HOOK_EV_NONE;
}

/* ------------------------------------------------------------ SendGrid */

static hook_ev_type sendgrid_type(json_t *ev)
{
    const char *t = json_string_value(json_object_get(ev, "event"));
    if (t && strcmp(t, "group_unsubscribe") == 0) return HOOK_EV_UNSUBSCRIBE;
    hook_ev_type type = provider_type("sendgrid", t);
    /* "blocked" is a temporary refusal, not a bad address */
    const char *bt = json_string_value(json_object_get(ev, "type"));
    if (type == HOOK_EV_BOUNCE && bt && strcmp(bt, "blocked") == 0) return HOOK_EV_NONE;
    return type;
}

int hook_parse_sendgrid(const char *body, size_t len, hook_events *out, hr_err *err)
{
    json_t *root = load(body, len, "sendgrid", err);
    if (!root) return -1;
    int n0 = out->n, ig0 = out->ignored;
    if (!json_is_array(root)) {
        json_decref(root);
        return hr_err_set(err, "sendgrid: body is not a JSON array of events");
    }
    size_t i;
    json_t *ev;
    json_array_foreach(root, i, ev)
    {
        if (!json_is_object(ev)) {
            hr_err_set(err, "sendgrid: event %zu: not an object", i);
            goto fail;
        }
        char num[24];
        size_t idlen;
        const char *id = str_view(json_object_get(ev, "sg_event_id"), num, &idlen);
        if (!id) {
            hr_err_set(err, "sendgrid: event %zu: no sg_event_id", i);
            goto fail;
        }
        hook_ev_type t = sendgrid_type(ev);
        if (t == HOOK_EV_NONE) {
            out->ignored++;
            continue;
        }
        hook_event *e = push(out);
        e->id = event_id("sendgrid", NULL, id, idlen);
        e->type = t;
        e->platform = hr_strdup("sendgrid");
        e->job = str_of(ev, "herald_job");
        e->campaign = str_of(ev, "herald_campaign");
        json_t *cat = json_object_get(ev, "category");
        if (!e->campaign && json_is_string(cat)) e->campaign = str_of(ev, "category");
        if (!e->campaign && json_is_string(json_array_get(cat, 0)))
            e->campaign = hr_strdup(json_string_value(json_array_get(cat, 0)));
        e->email = str_of(ev, "email");
        char *msg = str_of(ev, "sg_message_id");
        if (msg) { /* "<X-Message-Id>.filter..." : the send answer's id is the prefix */
            char *dot = strchr(msg, '.');
            if (dot) *dot = '\0';
            e->platform_id = msg;
        }
        e->ts_ms = ts_of(ev, "timestamp");
    }
    json_decref(root);
    return 0;
fail:
    truncate_to(out, n0, ig0);
    json_decref(root);
    return -1;
}

/* ------------------------------------------------------------- Mailgun */

int hook_parse_mailgun(const char *body, size_t len, hook_events *out, hr_err *err)
{
    json_t *root = load(body, len, "mailgun", err);
    if (!root) return -1;
    int rc = hook_parse_mailgun_json(root, out, err);
    json_decref(root);
    return rc;
}

int hook_parse_mailgun_json(json_t *root, hook_events *out, hr_err *err)
{
    json_t *ed = json_object_get(root, "event-data");
    if (!json_is_object(ed)) return hr_err_set(err, "mailgun: no event-data object");
    const char *t = json_string_value(json_object_get(ed, "event"));
    char num[24];
    size_t idlen;
    const char *id = str_view(json_object_get(ed, "id"), num, &idlen);
    if (!t || !id)
        return hr_err_set(err, "mailgun: event-data: missing %s", t ? "id" : "event");
    hook_ev_type type = provider_type("mailgun", t);
    if (type == HOOK_EV_BOUNCE) { /* only permanent failures are bounces */
        const char *sev = json_string_value(json_object_get(ed, "severity"));
        if (!sev || strcmp(sev, "permanent") != 0) type = HOOK_EV_NONE;
    }
    if (type == HOOK_EV_NONE) {
        out->ignored++;
        return 0;
    }
    hook_event *e = push(out);
    e->id = event_id("mailgun", NULL, id, idlen);
    e->type = type;
    e->platform = hr_strdup("mailgun");
    json_t *uv = json_object_get(ed, "user-variables");
    e->job = str_of(uv, "herald-job");
    e->campaign = str_of(uv, "herald-campaign");
    json_t *tags = json_object_get(ed, "tags");
    if (!e->campaign && json_is_string(json_array_get(tags, 0)))
        e->campaign = hr_strdup(json_string_value(json_array_get(tags, 0)));
    e->email = str_of(ed, "recipient");
    json_t *hdrs = json_object_get(json_object_get(ed, "message"), "headers");
    char *mid = str_of(hdrs, "message-id");
    if (mid) {
        e->platform_id = hr_asprintf("<%s>", mid); /* the send answer's id keeps <> */
        free(mid);
    }
    e->ts_ms = ts_of(ed, "timestamp");
    return 0;
}

/* ------------------------------------------------------------ Postmark */

int hook_parse_postmark(const char *body, size_t len, hook_events *out, hr_err *err)
{
    json_t *root = load(body, len, "postmark", err);
    if (!root) return -1;
    if (!json_is_object(root)) {
        json_decref(root);
        return hr_err_set(err, "postmark: body is not a JSON object");
    }
    const char *rt = json_string_value(json_object_get(root, "RecordType"));
    if (!rt) {
        json_decref(root);
        return hr_err_set(err, "postmark: no RecordType");
    }
    hook_ev_type type = provider_type("postmark", rt);
    if (type == HOOK_EV_BOUNCE) { /* soft bounces and the like are not */
        const char *bt = json_string_value(json_object_get(root, "Type"));
        if (bt && strcmp(bt, "HardBounce") != 0 && strcmp(bt, "BadEmailAddress") != 0)
            type = HOOK_EV_NONE;
    } else if (type == HOOK_EV_UNSUBSCRIBE &&
               !json_is_true(json_object_get(root, "SuppressSending"))) {
        type = HOOK_EV_NONE; /* a resubscribe */
    }
    if (type == HOOK_EV_NONE) {
        out->ignored++;
        json_decref(root);
        return 0;
    }
    hook_event *e = push(out);
    /* Postmark has no event id on most record types: a delivery of the same
     * body is the same event, so its hash is the id. */
    char *pid = str_of(root, "ID");
    if (pid) {
        e->id = hr_asprintf("postmark:%s:%s", rt, pid);
        free(pid);
    } else {
        unsigned char d[32];
        char hex[65];
        SHA256((const unsigned char *)body, len, d);
        hr_hex(d, 16, hex);
        e->id = hr_asprintf("postmark:%s", hex);
    }
    e->type = type;
    e->platform = hr_strdup("postmark");
    json_t *md = json_object_get(root, "Metadata");
    e->job = str_of(md, "herald_job");
    e->campaign = str_of(md, "herald_campaign");
    if (!e->campaign) e->campaign = str_of(root, "Tag");
    e->email = str_of(root, "Recipient");
    if (!e->email) e->email = str_of(root, "Email");
    e->platform_id = str_of(root, "MessageID");
    e->ts_ms = ts_of(root, "ReceivedAt");
    if (!e->ts_ms) e->ts_ms = ts_of(root, "DeliveredAt");
    if (!e->ts_ms) e->ts_ms = ts_of(root, "BouncedAt");
    json_decref(root);
    return 0;
}

/* ------------------------------------------------------------- generic */

/* A generic event's fields, found in one walk over its keys: a lookup per
 * field hashed each name again, 8 per event (load rejects repeated keys, so
 * the walk finds what the lookups did). */
enum { G_ID, G_TYPE, G_PLATFORM, G_JOB, G_CAMPAIGN, G_PLATFORM_ID, G_EMAIL, G_TS, G_N };
static const struct {
    const char *name;
    size_t len;
} generic_keys[G_N] = {
#define GK(s) {s, sizeof s - 1}
    GK("id"),       GK("type"),        GK("platform"), GK("job"),
    GK("campaign"), GK("platform_id"), GK("email"),    GK("ts"),
#undef GK
};

static void generic_fields(json_t *ev, json_t *f[G_N])
{
    for (int k = 0; k < G_N; k++)
        f[k] = NULL;
    for (void *it = json_object_iter(ev); it; it = json_object_iter_next(ev, it)) {
        size_t kl = json_object_iter_key_len(it);
        const char *key = json_object_iter_key(it);
        for (int k = 0; k < G_N; k++)
            if (kl == generic_keys[k].len && memcmp(key, generic_keys[k].name, kl) == 0) {
                f[k] = json_object_iter_value(it);
                break;
            }
    }
}

int hook_parse_generic(const char *body, size_t len, hook_events *out, hr_err *err)
{
    json_t *root = load(body, len, "generic", err);
    if (!root) return -1;
    json_t *arr = json_is_array(root) ? root : json_object_get(root, "events");
    int n0 = out->n, ig0 = out->ignored;
    if (!json_is_array(arr)) {
        json_decref(root);
        return hr_err_set(err, "generic: no events array");
    }
    size_t i;
    json_t *ev;
    json_array_foreach(arr, i, ev)
    {
        json_t *f[G_N];
        generic_fields(ev, f); /* none when ev is not an object */
        char num[24];
        size_t idlen;
        const char *id = str_view(f[G_ID], num, &idlen);
        const char *t = json_string_value(f[G_TYPE]);
        if (!id || !t) {
            hr_err_set(err, "generic: event %zu: needs \"id\" and \"type\"", i);
            goto fail;
        }
        hook_ev_type type = hook_ev_parse(t);
        if (type == HOOK_EV_NONE) {
            out->ignored++;
            continue;
        }
        hook_event *e = push(out);
        e->platform = str_val(f[G_PLATFORM]);
        /* "generic:<platform>:<id>": the body's platform names where the
         * event happened, never a provider route's ids ("sendgrid:...") */
        e->id = event_id("generic", e->platform, id, idlen);
        e->type = type;
        e->job = str_val(f[G_JOB]);
        e->campaign = str_val(f[G_CAMPAIGN]);
        e->platform_id = str_val(f[G_PLATFORM_ID]);
        e->email = str_val(f[G_EMAIL]);
        e->ts_ms = ts_val(f[G_TS]);
        if (!e->job && !e->platform_id && !e->email) {
            hr_err_set(err, "generic: event %zu: needs \"job\", \"platform_id\" or \"email\"", i);
            goto fail;
        }
    }
    json_decref(root);
    return 0;
fail:
    truncate_to(out, n0, ig0);
    json_decref(root);
    return -1;
}
