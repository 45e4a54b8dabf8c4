/* notify.c: sd_notify for worker processes run by systemd (Type=notify,
 * WatchdogSec=). The only file that knows about libsystemd; without it, or
 * outside systemd, every call does nothing. */
#include "internal.h"

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

void wk_notify(const char *state)
{
    /* unset_environment 0: forked workers notify too (NotifyAccess=all). */
    sd_notify(0, state);
}

uint64_t wk_notify_watchdog_us(void)
{
    uint64_t us = 0;
    if (sd_watchdog_enabled(0, &us) <= 0) return 0;
    return us;
}
#else
void wk_notify(const char *state) { (void)state; }
uint64_t wk_notify_watchdog_us(void) { return 0; }
#endif
