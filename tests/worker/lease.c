/* lease.c: a worker whose id changes while a fetch is on its way (it let
 * its lease go, or found it gone) hands that fetch's jobs back to their
 * lanes at once: they are sent under the new id, once each, without
 * waiting for the old id's lease to run out. */
#include "wktest.h"

/* inflight_fields: the fields left in every in-flight record */
static long inflight_fields(void)
{
    char *s = th_redis_cmd(wt.redis,
                           "EVAL %s 0",
                           "local n = 0 for _, k in ipairs(redis.call('KEYS', '{t}:inflight:*')) "
                           "do n = n + redis.call('HLEN', k) end return n");
    long v = s ? strtol(s, NULL, 10) : -1;
    free(s);
    return v;
}

static void new_id_during_fetch(void)
{
    wt_reset();
    enum { N = 40 };
    wt_enqueue("x", "@a", "fetched under the old id", N);
    /* a lease of an hour: the jobs left to the old one's expiry would not
     * be sent within this test */
    pid_t w = wt_worker("HERALD_WORKER_NEW_ID_AT=fetch_sent:1", "newid", "--processes", "1",
                        "--lease", "1h", NULL);
    CHECK(wt_wait_done(N, 20000));
    wt_term(w);
    wt_sent_once("x", "@a", N);
    CHECK_INT(inflight_fields(), 0);
    CHECK_INT(wt_log_count("newid", "test seam: letting the lease go"), 1);
    CHECK(wt_log_count("newid", "fetch under an old id handed back") >= 1);
    CHECK_INT(wt_log_count("newid", "not sending"), 0);
}

int main(void)
{
    wt_start(NULL);
    th_run("new_id_during_fetch", new_id_during_fetch);
    wt_stop();
    return th_main_end();
}
