/* driver.c: runs a fuzz target without libFuzzer, as a regression test:
 * every seed file once, then a fixed number of pseudo-random mutations of
 * them from a fixed seed, so a run is the same inputs every time (no
 * coverage feedback: libFuzzer builds, -DHERALD_FUZZ=ON, explore; this
 * keeps what they found from coming back). An input that crashes, or that
 * ASan/UBSan stop on, is written to fuzz-crash-<target> in the working
 * directory; pass that file back to the target to replay it alone.
 *   usage: fuzz_<name> [-n runs] [-s seed] file-or-dir... */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

enum { INPUT_CAP = 1 << 16 };

typedef struct seed {
    char *name;
    unsigned char *data;
    size_t len;
} seed;

static seed *seeds;
static int nseeds;

/* what is running, for the crash handler */
static const unsigned char *cur;
static size_t cur_len;
static char crash_path[512];

static uint64_t rng_state;

static uint64_t rng(void) /* splitmix64: small, and the same everywhere */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

/* Tokens that reach edges the bytes alone rarely do: integer and float
 * limits, JSON and HTTP structure, escapes, UTF-8 and base64 corners. */
static const char *const tokens[] = {
    "0", "-1", "1e300", "-1e300", "1e-300", "9223372036854775807", "-9223372036854775808",
    "18446744073709551616", "4294967296", "2147483648", "NaN", "Infinity", "null", "true",
    "\"\"", "[]", "{}", "\\u0000", "\\ud800", "\"a\":", ",", "\r\n", "\r\n\r\n", "\n",
    "%00", "%", "%zz", "+", "=", "==", "&", "?", "#", "/", "-", "_", "\xc3\xa9", "\xff\xfe",
    "\xed\xa0\x80", "\0", "Content-Length: 99999999999999999999\r\n",
    "Transfer-Encoding: chunked\r\n", "0\r\n\r\n", "ffffffffffffffff\r\n", "<![CDATA[", "]]>",
    "<", ">", "&amp;", "&#x110000;", "\"\"\"", "\t", " ", "2026-02-30T25:61:61Z",
    "9999-12-31T23:59:59+14:00", "0000-00-00 00:00:00",
};

static size_t mutate(unsigned char *b, size_t len, size_t cap)
{
    int steps = 1; /* most often one change: the input stays close to valid */
    while (steps < 5 && below(2))
        steps++;
    for (int s = 0; s < steps; s++) {
        int op = (int)below(10);
        switch (op) {
        case 0: /* flip a bit */
            if (len) b[below(len)] ^= (unsigned char)(1u << below(8));
            break;
        case 1: /* any byte */
            if (len) b[below(len)] = (unsigned char)rng();
            break;
        case 2: { /* a byte that means something to a parser */
            static const char special[] = "\0\x7f\x80\xff\"\\{}[]:,0917-+.eE%=&\r\n <>/";
            if (len) b[below(len)] = (unsigned char)special[below(sizeof special - 1)];
            break;
        }
        case 3: { /* delete a run */
            if (!len) break;
            size_t at = below(len), n = 1 + below(len - at < 16 ? len - at : 16);
            memmove(b + at, b + at + n, len - at - n);
            len -= n;
            break;
        }
        case 4: { /* insert random bytes */
            size_t n = 1 + below(8), at = below(len + 1);
            if (len + n > cap) break;
            memmove(b + at + n, b + at, len - at);
            for (size_t i = 0; i < n; i++)
                b[at + i] = (unsigned char)rng();
            len += n;
            break;
        }
        case 5: { /* repeat a chunk */
            if (!len) break;
            unsigned char chunk[64];
            size_t from = below(len), n = 1 + below(len - from < 64 ? len - from : 64);
            size_t at = below(len + 1);
            if (len + n > cap) break;
            memcpy(chunk, b + from, n);
            memmove(b + at + n, b + at, len - at);
            memcpy(b + at, chunk, n);
            len += n;
            break;
        }
        case 6:   /* insert a token */
        case 7: { /* or put one in place of a run (a number, a name) */
            const char *t = tokens[below(sizeof tokens / sizeof tokens[0])];
            size_t tl = t[0] ? strlen(t) : 1, at = below(len + 1), drop = 0;
            if (op == 7 && at < len) drop = 1 + below(len - at < 20 ? len - at : 20);
            if (len - drop + tl > cap) break;
            memmove(b + at + tl, b + at + drop, len - at - drop);
            memcpy(b + at, t, tl);
            len = len - drop + tl;
            break;
        }
        case 8: { /* a number in the text becomes another: a limit, a neighbour */
            size_t at = below(len + 1), end;
            while (at < len && (b[at] < '0' || b[at] > '9'))
                at++;
            for (end = at; end < len && b[end] >= '0' && b[end] <= '9';)
                end++;
            if (at == len) break;
            static const char *const nums[] = {
                "0", "1", "9223372036854775807", "9223372036854775808", "18446744073709551615",
                "2147483647", "4294967295", "99999999999", "946684799", "253402300800"};
            char num[24];
            if (below(2))
                snprintf(num, sizeof num, "%s", nums[below(sizeof nums / sizeof nums[0])]);
            else
                snprintf(num, sizeof num, "%llu", (unsigned long long)(rng() >> below(64)));
            size_t nl = strlen(num);
            if (len - (end - at) + nl > cap) break;
            memmove(b + at + nl, b + end, len - end);
            memcpy(b + at, num, nl);
            len = len - (end - at) + nl;
            break;
        }
        default: { /* splice: this input's head, another seed's tail */
            const seed *o = &seeds[below((size_t)nseeds)];
            size_t at = below(len + 1), from = below(o->len + 1), n = o->len - from;
            if (at + n > cap) n = cap - at;
            memcpy(b + at, o->data + from, n);
            len = at + n;
            break;
        }
        }
    }
    return len;
}

static void put(const char *s)
{
    if (write(2, s, strlen(s)) < 0) { /* nothing more to do while dying */
    }
}

/* on_death saves the input that killed the process (signal or sanitizer). */
static void on_death(void)
{
    static int done;
    if (done++ || !cur) return;
    int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (write(fd, cur, cur_len) < 0) { /* best effort */
        }
        close(fd);
    }
    put("driver: the failing input is in ");
    put(crash_path);
    put("\n");
}

static void on_signal(int sig)
{
    on_death();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* the sanitizers' hook, when one is linked in */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void run(const unsigned char *b, size_t len)
{
    /* an exact-size copy, so reading one byte past the input is caught */
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) abort();
    memcpy(copy, b, len);
    cur = copy;
    cur_len = len;
    LLVMFuzzerTestOneInput(copy, len);
    cur = NULL;
    free(copy);
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "driver: %s: cannot open\n", path);
        exit(2);
    }
    seed s = {.name = strdup(path), .data = malloc(INPUT_CAP)};
    s.len = fread(s.data, 1, INPUT_CAP, f);
    fclose(f);
    seeds = realloc(seeds, sizeof *seeds * (size_t)(nseeds + 1));
    seeds[nseeds++] = s;
}

static void add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "driver: %s: no such file or directory\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort); /* sorted: the same run each time */
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, names[i]->d_name);
            add_file(p);
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    long runs = 0;
    uint64_t seed0 = 1;
    int opt;
    while ((opt = getopt(argc, argv, "n:s:")) != -1) {
        if (opt == 'n')
            runs = atol(optarg);
        else if (opt == 's')
            seed0 = strtoull(optarg, NULL, 10);
        else {
            fprintf(stderr, "usage: %s [-n runs] [-s seed] file-or-dir...\n", argv[0]);
            return 2;
        }
    }
    const char *base = strrchr(argv[0], '/');
    snprintf(crash_path, sizeof crash_path, "fuzz-crash-%s", base ? base + 1 : argv[0]);
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_death);
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGFPE, on_signal);
    signal(SIGABRT, on_signal);
    for (int i = optind; i < argc; i++)
        add_path(argv[i]);
    if (nseeds == 0) {
        fprintf(stderr, "driver: no seed files\n");
        return 2;
    }
    for (int i = 0; i < nseeds; i++)
        run(seeds[i].data, seeds[i].len);
    rng_state = seed0;
    unsigned char *b = malloc(INPUT_CAP);
    for (long r = 0; r < runs; r++) {
        const seed *s = &seeds[below((size_t)nseeds)];
        memcpy(b, s->data, s->len);
        size_t len = mutate(b, s->len, INPUT_CAP);
        run(b, len);
    }
    printf("%s: %d seeds, %ld mutations: ok\n", base ? base + 1 : argv[0], nseeds, runs);
    free(b);
    for (int i = 0; i < nseeds; i++) {
        free(seeds[i].name);
        free(seeds[i].data);
    }
    free(seeds);
    return 0;
}
