/* smtp.c: a real `herald worker` sends emails over SMTP to the harness's
 * sink on loopback: the message carries every header platforms/ builds
 * (the engine once replaced them with its own HTTP header list), and a
 * header value that would hold a line break once rendered is refused (dead,
 * with the reason), never sent; a message whose final reply is lost is not
 * sent again (unknown), one answered 450 is retried. */
#include "wktest.h"

static char *mail_log, *lost_log, *busy_log;

static void enqueue_email(const char *key, const char *subject, const char *var)
{
    queue_job *j = wt_email_job("smtp", "main", "reader@example.com", key, subject);
    queue_set(&j->to_name, "Ann Reader");
    if (var) queue_job_set_var(j, "company", var);
    wt_enqueue_job(j);
}

static int dead_one(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_redis_int("ZCARD {t}:dead:smtp:main", "") >= 1;
}

static void headers_sent(void)
{
    wt_reset();
    enqueue_email("mail:1", "Your {{company}} invoice", "Acme");
    pid_t w = wt_worker(NULL, "smtp", "--processes", "1", NULL);
    CHECK(wt_wait_done(1, 15000));
    wt_term(w);
    char *m = th_read_file(mail_log, NULL);
    REQUIRE(m);
    const char *want[] = {"\r\nDate: ",
                          "\r\nFrom: news@shop.example\r\n",
                          "\r\nTo: Ann Reader <reader@example.com>\r\n",
                          "\r\nSubject: Your Acme invoice\r\n",
                          "\r\nMessage-ID: <",
                          "\r\nList-Unsubscribe: <http://127.0.0.1:1/u/",
                          "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                          "\r\nX-Herald-Job: "};
    const char *data = strstr(m, "DATA\r\n");
    REQUIRE(data);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(data, want[i])) {
            th_failures++;
            fprintf(stderr, "  the message lacks \"%s\"\n", want[i] + 2);
        }
    CHECK(strstr(data, "\r\nExpect:") == NULL);
    if (th_failures) fprintf(stderr, "--- the sink got:\n%s\n", m);
    free(m);
}

static void injection_refused(void)
{
    wt_reset();
    th_write_file(mail_log, "");
    enqueue_email("mail:2", "Your {{company}} invoice",
                  "Acme\r\nReply-To: attacker@evil.example\r\nX-Injected: yes");
    pid_t w = wt_worker(NULL, "smtp-inject", "--processes", "1", NULL);
    CHECK(th_wait_for(dead_one, NULL, 15000));
    wt_term(w);
    CHECK_INT(wt_done(), 0);
    char *reason = th_redis_cmd(wt.redis, "HVALS {t}:reasons");
    CHECK(reason && strstr(reason, "Subject header") && strstr(reason, "header injection"));
    free(reason);
    char *m = th_read_file(mail_log, NULL);
    CHECK(m && !strstr(m, "MAIL FROM") && !strstr(m, "evil.example"));
    free(m);
}

/* messages counts the messages a sink's log holds */
static long messages(const char *log)
{
    char *m = th_read_file(log, NULL);
    long n = 0;
    for (const char *p = m; p && (p = strstr(p, "\r\nX-Herald-Job: ")); p++) n++;
    free(m);
    return n;
}

static int settled(void *lane)
{
    wt_tick();
    return wt_redis_int("ZCARD {t}:unknown:%s", lane) + wt_redis_int("ZCARD {t}:dead:%s", lane) +
               wt_done() >= 1;
}

/* The server took the message and the connection died before its 250:
 * the message may be on its way, and SMTP has no read-back: the outcome is
 * unknown (for the operator), never a second copy. */
static void lost_reply_not_resent(void)
{
    wt_reset();
    wt_enqueue_job(wt_email_job("smtp", "lost", "reader@example.com", "mail:lost", "Hello"));
    pid_t w = wt_worker(NULL, "smtp-lost", "--processes", "1", NULL);
    CHECK(th_wait_for(settled, "smtp:lost", 15000));
    wt_idle(20); /* time to send it again, which it must not */
    wt_term(w);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:%s", "smtp:lost"), 1);
    CHECK_INT(messages(lost_log), 1);
}

/* A 450 to the message is the server's answer, not a lost one: the send
 * is retried, as any temporary failure, until its attempts run out. */
static void temporary_failure_retried(void)
{
    wt_reset();
    queue_job *j = wt_email_job("smtp", "busy", "reader@example.com", "mail:busy", "Hello");
    j->max_attempts = 2;
    wt_enqueue_job(j);
    pid_t w = wt_worker(NULL, "smtp-busy", "--processes", "1", NULL);
    CHECK(th_wait_for(settled, "smtp:busy", 15000));
    wt_term(w);
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:%s", "smtp:busy"), 1);
    CHECK_INT(messages(busy_log), 2);
    char *reason = th_redis_cmd(wt.redis, "HVALS {t}:reasons");
    CHECK(reason && strstr(reason, "temporary failure (450)"));
    free(reason);
}

int main(void)
{
    char *dir = th_tempdir();
    mail_log = hr_asprintf("%s/mail.log", dir);
    lost_log = hr_asprintf("%s/lost.log", dir);
    busy_log = hr_asprintf("%s/busy.log", dir);
    int port = 0, lost = 0, busy = 0;
    th_smtp_start(250, mail_log, &port);
    th_smtp_start(0, lost_log, &lost);
    th_smtp_start(450, busy_log, &busy);
    hr_buf conf;
    hr_buf_init(&conf);
    const char *names[] = {"main", "lost", "busy"};
    int ports[] = {port, lost, busy};
    for (int i = 0; i < 3; i++)
        hr_buf_printf(&conf,
                      "account smtp:%s base-url=smtp://127.0.0.1:%d "
                      "from=news@shop.example starttls=off "
                      "unsubscribe-base=http://127.0.0.1:1 rate=1000/1s\n",
                      names[i], ports[i]);
    wt_start(conf.data);
    hr_buf_release(&conf);
    th_run("headers_sent", headers_sent);
    th_run("injection_refused", injection_refused);
    th_run("lost_reply_not_resent", lost_reply_not_resent);
    th_run("temporary_failure_retried", temporary_failure_retried);
    wt_stop();
    free(mail_log);
    free(lost_log);
    free(busy_log);
    free(dir);
    return th_main_end();
}
