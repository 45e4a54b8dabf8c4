/* seam.c: TEST SEAM: HERALD_WORKER_CRASH_AT=STEP[:N[:FILE]] makes a worker
 * process die like kill -9 (_exit(137), no cleanup) the N-th time it reaches
 * STEP, so tests can stop it at each step of a send deterministically. With
 * FILE, only the process that creates FILE crashes (once per run, not again
 * in the restarted worker). HERALD_WORKER_STALL_AT=STEP:N:MS[:FILE] instead
 * blocks the process for MS the N-th time (a stalled host: its lease runs
 * out); with FILE, until FILE exists, MS at most (a test orders another
 * process's step before this one's).
 * HERALD_WORKER_CLOCK_SKEW_MS=MS sets the worker's wall clock (wk_clock_ms)
 * that far from the host's: a host whose clock is off Redis's.
 * HERALD_WORKER_NEW_ID_AT=STEP:N makes the process let its lease go (as when
 * Redis refuses a job's update) the N-th time it reaches STEP (wk_seam_new_id).
 * Read once at start; inert when unset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "internal.h"

static char crash_step[32];
static long crash_left;
static char crash_file[512];
static char stall_step[32];
static long stall_left, stall_ms;
static char stall_file[512];
static int64_t clock_skew_ms;
static char newid_step[32];
static long newid_left;

int64_t wk_clock_ms(void) { return hr_now_ms() + clock_skew_ms; }

void wk_seam_init(void)
{
    const char *sk = getenv("HERALD_WORKER_CLOCK_SKEW_MS");
    clock_skew_ms = sk && *sk ? strtoll(sk, NULL, 10) : 0;
    const char *st = getenv("HERALD_WORKER_STALL_AT");
    stall_step[0] = '\0';
    if (st && *st) {
        char *end = NULL;
        size_t n = strcspn(st, ":");
        if (n < sizeof stall_step && st[n] == ':') {
            stall_left = strtol(st + n + 1, &end, 10);
            if (end && *end == ':' && stall_left > 0) {
                stall_ms = strtol(end + 1, &end, 10);
                snprintf(stall_file, sizeof stall_file, "%s", *end == ':' ? end + 1 : "");
                memcpy(stall_step, st, n);
                stall_step[n] = '\0';
            }
        }
    }
    const char *ni = getenv("HERALD_WORKER_NEW_ID_AT");
    newid_step[0] = '\0';
    if (ni && *ni) {
        size_t n = strcspn(ni, ":");
        newid_left = ni[n] == ':' ? strtol(ni + n + 1, NULL, 10) : 1;
        if (n < sizeof newid_step && newid_left > 0) {
            memcpy(newid_step, ni, n);
            newid_step[n] = '\0';
        }
    }
    const char *v = getenv("HERALD_WORKER_CRASH_AT");
    crash_step[0] = '\0';
    if (!v || !*v) return;
    size_t n = strcspn(v, ":");
    if (n >= sizeof crash_step) return;
    memcpy(crash_step, v, n);
    crash_step[n] = '\0';
    char *end = NULL;
    crash_left = v[n] == ':' ? strtol(v + n + 1, &end, 10) : 1;
    if (crash_left < 1) crash_left = 1;
    crash_file[0] = '\0';
    if (end && *end == ':') snprintf(crash_file, sizeof crash_file, "%s", end + 1);
}

void worker_crash_point(const char *step)
{
    if (stall_step[0] && strcmp(step, stall_step) == 0 && --stall_left == 0) {
        hr_log(HR_LOG_WARN, "test seam: stalling", "step", step, NULL);
        hr_log_flush(); /* tests wait for it */
        for (long ms = 0; ms < stall_ms; ms += 5) {
            if (stall_file[0] && access(stall_file, F_OK) == 0) break;
            usleep(5000);
        }
    }
    if (!crash_step[0] || strcmp(step, crash_step) != 0) return;
    if (--crash_left > 0) return;
    if (crash_file[0]) {
        int fd = open(crash_file, O_CREAT | O_EXCL | O_WRONLY, 0600);
        if (fd < 0) {
            crash_step[0] = '\0'; /* someone crashed already: not us */
            return;
        }
        close(fd);
    }
    hr_log(HR_LOG_WARN, "test seam: crashing", "step", step, NULL);
    hr_log_flush(); /* _exit: what the loop logged before, and this */
    _exit(137);
}

int wk_seam_new_id(const char *step)
{
    if (!newid_step[0] || strcmp(step, newid_step) != 0 || --newid_left != 0) return 0;
    hr_log(HR_LOG_WARN, "test seam: letting the lease go", "step", step, NULL);
    return 1;
}
