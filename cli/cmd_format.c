/* cmd_format.c: `herald format --platform P [--account NAME] [--job] [--fit]
 * [--thread] [--json]`: reads a post on stdin and prints what that platform
 * would be sent. Its --json output is a stable interface (docs/format.md).
 * It sends nothing and needs no Redis. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "platforms.h"
#include "queue.h"

static char *read_all(FILE *f, size_t *len)
{
    hr_buf b;
    hr_buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) hr_buf_append(&b, chunk, n);
    if (!b.data) hr_buf_append(&b, "", 0);
    *len = b.len;
    return hr_buf_detach(&b);
}

static plat_account *pick_account(const char *platform, const char *name,
                                  const char *job_account, hr_err *err)
{
    const hr_config *c = cli_config();
    plat_account *a = NULL;
    hr_err ignored = {0};
    if (name) {
        a = plat_account_find(c, platform, name, err);
    } else if (job_account && (a = plat_account_find(c, platform, job_account, &ignored))) {
        /* the job's own account, when configured */
    } else {
        /* the first configured account of that platform, else defaults */
        int pos = -1;
        const hr_conf_line *l;
        size_t pl = strlen(platform);
        while (!a && (l = hr_config_next(c, "account", &pos)))
            if (l->argc > 0 && strncmp(l->argv[0], platform, pl) == 0 && l->argv[0][pl] == ':')
                a = plat_account_parse(l, c->path, err);
        if (!a && !err->msg[0]) a = plat_account_default(platform, err);
    }
    if (!a) return NULL;
    hr_err cerr = {0};
    /* a preview shows where the secret goes, never the secret */
    if (plat_account_load_credential(a, c, NULL, &cerr) != 0 || !a->credential)
        a->credential = hr_strdup("CREDENTIAL");
    return a;
}

int cmd_format(int argc, char **argv)
{
    const char *platform = cli_take_opt(&argc, argv, "platform");
    const char *acct = cli_take_opt(&argc, argv, "account");
    int json = cli_has_flag(&argc, argv, "json");
    int as_job = cli_has_flag(&argc, argv, "job");
    int fit = cli_has_flag(&argc, argv, "fit");
    int thread = cli_has_flag(&argc, argv, "thread");
    int bad = cli_args_left(argc, argv, 0, 0);
    if (bad) return bad;

    size_t len;
    char *in = read_all(stdin, &len);
    if (strlen(in) != len) {
        fprintf(stderr, "herald format: stdin: contains a NUL byte\n");
        free(in);
        return 2;
    }
    hr_err err = {0};
    queue_job *job = NULL;
    if (as_job) {
        job = queue_job_from_json(in, &err);
        if (!job) {
            fprintf(stderr, "herald format: stdin: %s\n", err.msg);
            free(in);
            return 2;
        }
        if (!platform) platform = job->platform;
    } else {
        /* the newline a shell or editor adds is not part of the post */
        if (len && in[len - 1] == '\n') in[--len] = '\0';
        if (len && in[len - 1] == '\r') in[--len] = '\0';
    }
    if (!platform) {
        free(in);
        queue_job_free(job);
        return cli_usage();
    }
    if (!plat_known(platform)) {
        fprintf(stderr, "herald format: unknown platform \"%s\" (one of:", platform);
        for (const char *const *n = plat_names(); *n; n++) fprintf(stderr, " %s", *n);
        fprintf(stderr, ")\n");
        free(in);
        queue_job_free(job);
        return 2;
    }
    plat_account *a = pick_account(platform, acct, job ? job->account : NULL, &err);
    if (!a) {
        fprintf(stderr, "herald format: %s\n", err.msg);
        free(in);
        queue_job_free(job);
        return 2;
    }

    plat_post post;
    int flags = (fit ? PLAT_FMT_FIT : 0) | (thread ? PLAT_FMT_THREAD : 0);
    char *secret = NULL;
    int rc;
    if (job) {
        hr_err serr = {0};
        secret = hr_secret_load(cli_config(), NULL, &serr);
        plat_ctx ctx = {.secret = secret};
        if (!job->id[0]) queue_job_assign_id(job);
        rc = plat_format_job(a, job, &ctx, flags, &post, &err);
    } else {
        job = queue_job_new();
        queue_set(&job->platform, platform);
        queue_set(&job->account, a->name);
        queue_set(&job->text, in);
        queue_set(&job->idem_key, "hr-preview");
        rc = plat_format_text(a, in, flags, &post, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "herald format: %s\n", err.msg);
        plat_post_release(&post);
        plat_account_free(a);
        queue_job_free(job);
        free(secret);
        free(in);
        return 2;
    }
    if (json) {
        plat_request req = {0};
        hr_err rerr = {0};
        int have = post.valid && plat_post_request(a, job, &post, &req, &rerr) == 0;
        char *out = plat_preview_json(a, &post, have ? &req : NULL);
        printf("%s\n", out);
        free(out);
        plat_request_release(&req);
    } else {
        for (int i = 0; i < post.nparts; i++) {
            if (i) printf("\n---\n");
            fputs(post.parts[i].text, stdout);
        }
        printf("\n");
        if (post.subject) fprintf(stderr, "subject: %s\n", post.subject);
        fprintf(stderr, "length %ld of %ld%s%s\n", post.nparts ? post.parts[0].length : 0,
                post.limit, post.valid ? "" : ": ", post.valid ? "" : post.reason);
    }
    int status = post.valid ? 0 : 1;
    plat_post_release(&post);
    plat_account_free(a);
    queue_job_free(job);
    if (secret) explicit_bzero(secret, strlen(secret));
    free(secret);
    free(in);
    return status;
}
