/* notify.c: sd_notify for daemons run by systemd (Type=notify, WatchdogSec=).
 * The one file of common/ that knows about libsystemd; without it, or
 * outside systemd, every call does nothing. */
#include "common.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

void hr_notify(const char *state)
{
    /* unset_environment 0: a supervisor's forked workers notify too
     * (NotifyAccess=all in herald-worker@.service). */
    sd_notify(0, state);
}

int64_t hr_notify_watchdog_ms(void)
{
    uint64_t us = 0;
    if (sd_watchdog_enabled(0, &us) <= 0) return 0;
    return (int64_t)(us / 1000);
}
#else
void hr_notify(const char *state) { (void)state; }
int64_t hr_notify_watchdog_ms(void) { return 0; }
#endif
