/* test_sandbox_smtp.c: `herald sandbox --smtp-listen`: the SMTP relay
 * stand-in takes a message from libcurl's SMTP client (the worker's), records
 * it like an email provider's send (recipient, job, Message-ID, the message
 * dot-unstuffed), answers protocol errors with RFC 5321's codes, and injects
 * the faults set for "smtp": a temporary failure (451), a refusal (550) and a
 * dropped connection. */
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "harness.h"

static int hport, sport;

typedef struct upload {
    const char *data;
    size_t off, len;
} upload;

static size_t on_read(char *buf, size_t sz, size_t n, void *u)
{
    upload *up = u;
    size_t k = up->len - up->off < sz * n ? up->len - up->off : sz * n;
    memcpy(buf, up->data + up->off, k);
    up->off += k;
    return k;
}

/* send_mail sends message to rcpt through the stand-in with libcurl; returns
 * curl's result and the last SMTP reply code in *code. */
static CURLcode send_mail(const char *rcpt, const char *message, long *code)
{
    CURL *c = curl_easy_init();
    char url[64], to[200];
    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", sport);
    snprintf(to, sizeof to, "<%s>", rcpt);
    struct curl_slist *r = curl_slist_append(NULL, to);
    upload up = {message, 0, strlen(message)};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERNAME, "relay-user");
    curl_easy_setopt(c, CURLOPT_PASSWORD, "relay-pass");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, "<news@shop.example>");
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, r);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(c);
    *code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(r);
    curl_easy_cleanup(c);
    return rc;
}

/* http sends a request to the sandbox's HTTP side; returns the parsed JSON
 * answer (NULL if none). */
static json_t *http(const char *method, const char *path, const char *body)
{
    char *out = NULL;
    th_http(hport, method, path, NULL, body, &out);
    json_t *j = out ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return j;
}

static json_t *smtp_records(void)
{
    json_t *j = http("GET", "/_sandbox/posts?platform=smtp", NULL);
    json_t *posts = json_incref(json_object_get(j, "posts"));
    json_decref(j);
    return posts;
}

static const char MESSAGE[] = "From: Shop <news@shop.example>\r\n"
                              "To: ann@example.com\r\n"
                              "Subject: New post\r\n"
                              "Message-ID: <0000000Bqrstuvwxyzab@herald>\r\n"
                              "X-Herald-Job: 0000000Bqrstuvwxyzab\r\n"
                              "\r\n"
                              "Hello Ann,\r\n"
                              ".a line that starts with a dot\r\n"
                              "bye\r\n";

static void test_accepts(void)
{
    long code;
    CHECK_INT(send_mail("ann@example.com", MESSAGE, &code), CURLE_OK);
    CHECK_INT(code, 250);
    json_t *posts = smtp_records();
    REQUIRE(json_array_size(posts) == 1);
    json_t *p = json_array_get(posts, 0);
    CHECK_STR(json_string_value(json_object_get(p, "kind")), "email");
    CHECK_STR(json_string_value(json_object_get(p, "job")), "0000000Bqrstuvwxyzab");
    CHECK_INT(json_integer_value(json_object_get(p, "status")), 250);
    json_t *b = json_object_get(p, "body");
    CHECK_STR(json_string_value(json_object_get(b, "from")), "news@shop.example");
    CHECK_STR(json_string_value(json_array_get(json_object_get(b, "to"), 0)), "ann@example.com");
    /* curl doubled the leading dot on the wire; the record has it once */
    const char *data = json_string_value(json_object_get(b, "data"));
    CHECK(data && strstr(data, "\r\n.a line that starts with a dot\r\n"));
    CHECK(data && !strstr(data, ".."));
    json_decref(posts);
}

static void test_faults(void)
{
    long code;
    json_decref(http("POST", "/_sandbox/faults", "{\"platform\":\"smtp\",\"rate500\":1}"));
    CHECK(send_mail("bob@example.com", MESSAGE, &code) != CURLE_OK);
    CHECK_INT(code, 451);
    json_decref(http("POST", "/_sandbox/faults",
                     "{\"platform\":\"smtp\",\"rate4xx\":1,\"message\":\"mailbox unavailable\"}"));
    CHECK(send_mail("bob@example.com", MESSAGE, &code) != CURLE_OK);
    CHECK_INT(code, 550);
    json_decref(http("POST", "/_sandbox/faults", "{\"platform\":\"smtp\",\"drop\":1}"));
    CHECK(send_mail("bob@example.com", MESSAGE, &code) != CURLE_OK);
    CHECK(code != 250);
    json_decref(http("POST", "/_sandbox/reset", NULL));
    json_t *posts = smtp_records();
    CHECK_INT(json_array_size(posts), 0); /* nothing refused was recorded */
    json_decref(posts);
    CHECK_INT(send_mail("bob@example.com", MESSAGE, &code), CURLE_OK);
    posts = smtp_records();
    CHECK_INT(json_array_size(posts), 1);
    json_decref(posts);
}

/* talk sends lines on a raw connection and returns everything answered
 * after the greeting, up to the answer to the last line. */
static char *talk(const char *const *lines)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sport)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_puts(&b, "");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        th_failures++;
        close(fd);
        return hr_buf_detach(&b);
    }
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0); /* the greeting */
    CHECK(n > 3 && !strncmp(buf, "220", 3));
    for (int i = 0; lines[i]; i++) {
        send(fd, lines[i], strlen(lines[i]), 0);
        send(fd, "\r\n", 2, 0);
        n = recv(fd, buf, sizeof buf - 1, 0);
        if (n <= 0) break;
        hr_buf_append(&b, buf, (size_t)n);
    }
    close(fd);
    hr_buf_puts(&b, "");
    return hr_buf_detach(&b);
}

static void test_protocol(void)
{
    const char *order[] = {"HELO test", "RCPT TO:<a@example.com>", "DATA", "MAIL FROM:bad",
                           "MAIL FROM:<a@example.com>", "RCPT TO:<nobody>", "DATA", "WHAT",
                           "QUIT", NULL};
    char *got = talk(order);
    const char *want[] = {"250 ", "503 5.5.1 need MAIL", "503 5.5.1 need RCPT", "501 5.5.4",
                          "250 2.1.0", "501 5.1.3", "503 5.5.1 need RCPT", "500 5.5.2",
                          "221 "};
    const char *p = got;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(p, want[i]);
        if (!hit) fprintf(stderr, "protocol: no \"%s\" after: %s\n", want[i], p);
        CHECK(hit != NULL);
        if (hit) p = hit + strlen(want[i]);
    }
    free(got);
}

static int up(void *arg)
{
    (void)arg;
    json_t *j = http("GET", "/healthz", NULL);
    json_decref(j);
    return j != NULL;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char *dir = th_tempdir();
    hport = th_free_port();
    sport = th_free_port();
    char listen[64], smtp[64], log[600];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", hport);
    snprintf(smtp, sizeof smtp, "127.0.0.1:%d", sport);
    snprintf(log, sizeof log, "%s/sandbox.log", dir);
    char *argv[] = {HERALD_BIN, "sandbox", "--listen", listen, "--smtp-listen", smtp, NULL};
    pid_t pid = th_spawn(argv, log);
    if (!th_wait_for(up, NULL, 10000)) abort();
    th_run("accepts", test_accepts);
    th_run("faults", test_faults);
    th_run("protocol", test_protocol);
    th_kill(pid, SIGTERM);
    free(dir);
    curl_global_cleanup();
    return th_main_end();
}
