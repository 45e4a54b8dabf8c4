/* noplat.c: stand-ins used only while herald is built without platforms/
 * (the module being absent from the tree): the worker then refuses to run
 * with a clear message instead of failing to link. */
#ifndef HAVE_HERALD_PLATFORMS
#include "internal.h"

int worker_process_main(const worker_opts *o)
{
    (void)o;
    hr_log(HR_LOG_ERROR, "worker: built without platforms/: nothing can be sent", NULL);
    return 1;
}

int wk_reconciler_main(const worker_opts *o)
{
    (void)o;
    return 1;
}
#endif
