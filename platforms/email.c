/* email.c: what every email provider shares: the headers each message
 * carries (RFC 8058 one-click unsubscribe, Message-ID, the job id), and the
 * "Name <address>" form. Provider JSON/form shapes live in their files. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* email_headers fills out with borrowed name/value pairs; returns the count */
int email_headers(plat_send *s, plat_header *out, int max)
{
    int n = 0;
    const plat_post *p = &s->post;
    if (p->unsubscribe_url && n + 2 <= max) {
        if (!s->unsub_header) s->unsub_header = hr_asprintf("<%s>", p->unsubscribe_url);
        out[n++] = (plat_header){"List-Unsubscribe", s->unsub_header};
        out[n++] = (plat_header){"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"};
    }
    if (p->message_id && n < max) out[n++] = (plat_header){"Message-ID", p->message_id};
    if (s->job->id[0] && n < max) out[n++] = (plat_header){"X-Herald-Job", s->job->id};
    return n;
}

/* email_addr returns "Name <addr>" or "addr" (new string); the name is
 * quoted when it holds specials. */
char *email_addr(const char *name, const char *addr);
char *email_addr(const char *name, const char *addr)
{
    if (!name || !*name) return hr_strdup(addr ? addr : "");
    if (strpbrk(name, "()<>[]:;@\\,.\"")) {
        hr_buf b;
        hr_buf_init(&b);
        hr_buf_putc(&b, '"');
        for (const char *c = name; *c; c++) {
            if (*c == '"' || *c == '\\') hr_buf_putc(&b, '\\');
            hr_buf_putc(&b, *c);
        }
        hr_buf_printf(&b, "\" <%s>", addr ? addr : "");
        return hr_buf_detach(&b);
    }
    return hr_asprintf("%s <%s>", name, addr ? addr : "");
}
