/* email.c: emails are checked against the suppression list at send time,
 * not only at enqueue: an address suppressed after its job was queued is
 * refused (dead, with the reason) and never reaches the provider. */
#include "wktest.h"

static void enqueue_email(const char *to, const char *key)
{
    queue_job *j = wt_email_job("sendgrid", "main", to, key, "Hello");
    queue_set(&j->html, "<p>Hello</p>");
    queue_set(&j->body_text, "Hello");
    wt_enqueue_job(j);
}

static int settled(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_done() >= 1 && wt_redis_int("ZCARD {t}:dead:sendgrid:main", "") >= 1;
}

static void suppressed_at_send_time(void)
{
    wt_reset();
    enqueue_email("ann@example.com", "mail:ann");
    enqueue_email("bob@example.com", "mail:bob");
    /* bob unsubscribes after his email was queued */
    hr_err err = {0};
    CHECK(queue_suppress_add(wt.q, "test-secret-0123456789abcdef", "Bob@Example.com",
                             "unsubscribe", &err) == 0);
    pid_t w = wt_worker(NULL, "email", "--processes", "1", NULL);
    CHECK(th_wait_for(settled, NULL, 15000));
    wt_term(w);
    char path[128];
    snprintf(path, sizeof path, "/_sandbox/posts?platform=sendgrid&kind=email");
    char *body = NULL;
    CHECK_INT(th_http(wt.sandbox_port, NULL, path, NULL, NULL, &body), 200);
    CHECK(body && strstr(body, "ann@example.com") != NULL);
    CHECK(body && strstr(body, "bob@example.com") == NULL);
    free(body);
    char *reason = th_redis_cmd(wt.redis, "HVALS {t}:reasons");
    CHECK(reason && strstr(reason, "suppressed"));
    free(reason);
    /* the log names the job, masked, never the address */
    char log[700];
    snprintf(log, sizeof log, "%s/email.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && !strstr(text, "bob@example.com"));
    free(text);
}

int main(void)
{
    wt_start("account sendgrid:main base-url=http://127.0.0.1:$PORT credentials=sg-main "
             "from=news@shop.example rate=1000/1s\n");
    char *cred = hr_asprintf("%s/sg-main", wt.dir);
    th_write_file(cred, "SG.sandbox-key");
    free(cred);
    th_run("suppressed_at_send_time", suppressed_at_send_time);
    wt_stop();
    return th_main_end();
}
