/* opt.c: parsing, range checks, --help and defaults of the tools' option tables.
 *
 * opt_parse builds getopt_long's option array from the tool's table (entry i
 * answers OPT_VAL0 + i), applies every default through the same setter as a
 * command-line value, then walks argv. Each setter parses its kind strictly
 * (strtol/strtof with end-pointer checks; no empty value, no trailing text),
 * checks the range or the accepted words, and stores the value at its offset
 * in the tool's options struct. Every message is one line that names the
 * option and what it accepts (opt.h has examples).
 *
 * SPDX-License-Identifier: MIT
 */
#include "opt.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"

#define OPT_MAX 128                /* options in one table */
#define OPT_VAL0 1000              /* getopt_long's answer for entry i is OPT_VAL0 + i */
#define OPT_VAL_PRINT_DEFAULTS 999 /* the hidden --print-defaults */
#define OPT_TEXT_MAX 4096          /* bytes of a list's value */
#define OPT_HELP_COL 30            /* --help: the column the help texts start at */

/* ==== Messages ==== */

/* Prints "prog: --name: " and the message on stderr. */
static void say(const struct opt_tool *t, const struct opt *o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(const struct opt_tool *t, const struct opt *o, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: --%s: ", t->prog, o->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* "[lo, hi]", with a parenthesis for an excluded bound. */
static void range_text(char *buf, size_t len, double lo, double hi, int open) {
    snprintf(buf, len, "%c%.10g, %.10g%c", open & OPT_OPEN_MIN ? '(' : '[', lo, hi,
             open & OPT_OPEN_MAX ? ')' : ']');
}

/* The accepted words joined by sep: "atan, triangle". */
static void names_text(char *buf, size_t len, const char *const *names, const char *sep) {
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? sep : "", names[i]);
}

/* The two names of an OPT_INT_PAIR's numbers, from its meta "N,W". */
static void pair_names(const struct opt *o, char *a, char *b, size_t len) {
    const char *meta = o->meta ? o->meta : "A,B", *comma = strchr(meta, ',');
    size_t n = comma ? (size_t)(comma - meta) : strlen(meta);
    snprintf(a, len, "%.*s", (int)(n < len ? n : len - 1), meta);
    snprintf(b, len, "%s", comma ? comma + 1 : "B");
}

/* What one value (a list: one item) of o may be: "an integer in [1, 10]". */
static void item_accepts(const struct opt *o, char *buf, size_t len) {
    char r[96], w[512];
    range_text(r, sizeof r, o->min, o->max, o->open);
    switch (o->kind) {
    case OPT_INT:
    case OPT_INTS:
        snprintf(buf, len, "an integer in %s", r);
        break;
    case OPT_FLOAT:
    case OPT_FLOATS:
        snprintf(buf, len, "a number in %s", r);
        break;
    case OPT_ENUM:
    case OPT_ENUMS:
        names_text(w, sizeof w, o->names, ", ");
        snprintf(buf, len, "one of %s", w);
        break;
    case OPT_NAMES:
        snprintf(buf, len, "a name of 1 to %zu bytes", o->size - 1);
        break;
    case OPT_PAIR:
        snprintf(buf, len, "LO,HI with LO <= HI, each in %s", r);
        break;
    case OPT_INT_PAIR: {
        char a[32], b[32], r2[96];
        pair_names(o, a, b, sizeof a);
        range_text(r2, sizeof r2, o->min2, o->max2, 0);
        snprintf(buf, len, "%s,%s with %s in %s and %s in %s", a, b, a, r, b, r2);
        break;
    }
    case OPT_PATH:
        snprintf(buf, len, "a file or folder name");
        break;
    case OPT_FLAG:
        snprintf(buf, len, "no value");
        break;
    }
}

/* What the whole value of o may be; a list says how many items. */
static void accepts(const struct opt *o, char *buf, size_t len) {
    char item[600];
    item_accepts(o, item, sizeof item);
    int list = o->kind == OPT_INTS || o->kind == OPT_FLOATS || o->kind == OPT_ENUMS ||
               o->kind == OPT_NAMES;
    if (list && o->min_n == 1 && o->max_n == 1)
        snprintf(buf, len, "one item, %s", item);
    else if (list)
        snprintf(buf, len, "%d to %d comma-separated items, each %s", o->min_n, o->max_n, item);
    else
        snprintf(buf, len, "%s", item);
}

/* ==== Setting one value ==== */

static int in_range(double v, double lo, double hi, int open) {
    if (!(v >= lo && v <= hi))
        return 0; /* NaN too */
    return !((open & OPT_OPEN_MIN) && v == lo) && !((open & OPT_OPEN_MAX) && v == hi);
}

/* Parses s as a whole base-10 integer. */
static int parse_int(const char *s, long *v) {
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return end == s || *end || errno ? -1 : 0;
}

/* Parses s as a whole number (strtof, as the tools always read floats). */
static int parse_float(const char *s, float *v) {
    char *end;
    *v = strtof(s, &end);
    return end == s || *end ? -1 : 0;
}

/* Parses the number s (what: "", or the name of a pair's number and ": ")
 * into *i or *f and checks it is in [lo, hi]. Returns 0 or -1 after saying
 * what is wrong. */
static int set_number(const struct opt_tool *t, const struct opt *o, const char *s, int is_int,
                      double lo, double hi, int open, const char *what, int *i, float *f) {
    char r[96];
    long lv = 0;
    float fv = 0.0f;
    range_text(r, sizeof r, lo, hi, open);
    if (is_int ? parse_int(s, &lv) : parse_float(s, &fv)) {
        say(t, o, "%s'%s' is not %s in %s", what, s, is_int ? "an integer" : "a number", r);
        return -1;
    }
    double v = is_int ? (double)lv : (double)fv;
    if (!in_range(v, lo, hi, open)) {
        say(t, o, "%s%s out of range %s", what, s, r);
        return -1;
    }
    if (is_int)
        *i = (int)lv;
    else
        *f = fv;
    return 0;
}

/* The index of word s in names, or -1. */
static int find_name(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s))
            return i;
    return -1;
}

/* Sets item k of list o (at p) from s. Returns 0 or -1 after saying why. */
static int set_item(const struct opt_tool *t, const struct opt *o, const char *s, void *p, int k) {
    char acc[700];
    switch (o->kind) {
    case OPT_INTS:
        return set_number(t, o, s, 1, o->min, o->max, 0, "", (int *)p + k, NULL);
    case OPT_FLOATS:
        return set_number(t, o, s, 0, o->min, o->max, o->open, "", NULL, (float *)p + k);
    case OPT_ENUMS: {
        int idx = find_name(o->names, s);
        if (idx < 0)
            break;
        ((int *)p)[k] = idx;
        return 0;
    }
    case OPT_NAMES:
        if (!*s || strlen(s) >= o->size)
            break;
        memcpy((char *)p + (size_t)k * o->size, s, strlen(s) + 1);
        return 0;
    default:
        KWS_ASSERT(!"not a list");
    }
    item_accepts(o, acc, sizeof acc);
    say(t, o, "'%s' is not %s", s, acc);
    return -1;
}

/* Sets list o from s: its items at p, their number at the count offset. */
static int set_list(const struct opt_tool *t, const struct opt *o, const char *s, void *dst,
                    void *p) {
    char buf[OPT_TEXT_MAX], acc[800];
    int n = 1;
    if (strlen(s) >= sizeof buf) {
        say(t, o, "the value is longer than %zu bytes", sizeof buf - 1);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", s);
    for (const char *c = buf; *c; c++)
        n += *c == ',';
    if (n < o->min_n || n > o->max_n) {
        accepts(o, acc, sizeof acc);
        say(t, o, "'%s' has %d item%s; want %s", s, n, n == 1 ? "" : "s", acc);
        return -1;
    }
    char *item = buf;
    for (int k = 0; k < n; k++) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        if (!*item) {
            accepts(o, acc, sizeof acc);
            say(t, o, "'%s' has an empty item; want %s", s, acc);
            return -1;
        }
        if (set_item(t, o, item, p, k) < 0)
            return -1;
        item = comma ? comma + 1 : item + strlen(item);
    }
    *(int *)((char *)dst + o->count) = n;
    return 0;
}

/* Sets a pair "A,B" (OPT_PAIR or OPT_INT_PAIR) at p from s. */
static int set_pair(const struct opt_tool *t, const struct opt *o, const char *s, void *p) {
    char a[OPT_TEXT_MAX], acc[700], na[32], nb[32], wa[40], wb[40];
    const char *comma = strchr(s, ',');
    if (!comma || strlen(s) >= sizeof a) {
        accepts(o, acc, sizeof acc);
        say(t, o, "'%s' is not %s", s, acc);
        return -1;
    }
    snprintf(a, sizeof a, "%.*s", (int)(comma - s), s);
    if (o->kind == OPT_INT_PAIR) {
        int *v = p;
        pair_names(o, na, nb, sizeof na);
        snprintf(wa, sizeof wa, "%s ", na);
        snprintf(wb, sizeof wb, "%s ", nb);
        return set_number(t, o, a, 1, o->min, o->max, 0, wa, &v[0], NULL) < 0 ||
                       set_number(t, o, comma + 1, 1, o->min2, o->max2, 0, wb, &v[1], NULL) < 0
                   ? -1
                   : 0;
    }
    float *v = p, lo, hi;
    if (set_number(t, o, a, 0, o->min, o->max, 0, "LO ", NULL, &lo) < 0 ||
        set_number(t, o, comma + 1, 0, o->min, o->max, 0, "HI ", NULL, &hi) < 0)
        return -1;
    if (lo > hi) {
        say(t, o, "LO %s is above HI %s", a, comma + 1);
        return -1;
    }
    v[0] = lo;
    v[1] = hi;
    return 0;
}

/* Parses s as o's value and stores it in dst. Returns 0 or -1 after one
 * line on stderr. */
static int set_value(const struct opt_tool *t, const struct opt *o, const char *s, void *dst) {
    void *p = (char *)dst + o->off;
    char acc[800];
    if (o->kind == OPT_FLAG) {
        *(int *)p = 1;
        return 0;
    }
    if (!s || !*s) {
        accepts(o, acc, sizeof acc);
        say(t, o, "needs a value: %s", acc);
        return -1;
    }
    switch (o->kind) {
    case OPT_INT:
        return set_number(t, o, s, 1, o->min, o->max, 0, "", p, NULL);
    case OPT_FLOAT:
        return set_number(t, o, s, 0, o->min, o->max, o->open, "", NULL, p);
    case OPT_PATH:
        *(const char **)p = s;
        return 0;
    case OPT_ENUM: {
        int idx = find_name(o->names, s);
        if (idx < 0) {
            item_accepts(o, acc, sizeof acc);
            say(t, o, "'%s' is not %s", s, acc);
            return -1;
        }
        *(int *)p = idx;
        return 0;
    }
    case OPT_PAIR:
    case OPT_INT_PAIR:
        return set_pair(t, o, s, p);
    case OPT_INTS:
    case OPT_FLOATS:
    case OPT_ENUMS:
    case OPT_NAMES:
        return set_list(t, o, s, dst, p);
    case OPT_FLAG:
        break;
    }
    return 0;
}

/* ==== Help and defaults ==== */

/* o's value in dst as it would be written on the command line. */
static void value_text(const struct opt *o, const void *dst, char *buf, size_t len) {
    const char *p = (const char *)dst + o->off;
    int n = 1;
    size_t at = 0;
    buf[0] = '\0';
    switch (o->kind) {
    case OPT_FLAG:
    case OPT_INT:
        snprintf(buf, len, "%d", *(const int *)p);
        return;
    case OPT_FLOAT:
        snprintf(buf, len, "%.9g", (double)*(const float *)p);
        return;
    case OPT_PATH:
        snprintf(buf, len, "%s", *(const char *const *)p ? *(const char *const *)p : "");
        return;
    case OPT_ENUM:
        snprintf(buf, len, "%s", o->names[*(const int *)p]);
        return;
    case OPT_PAIR:
        snprintf(buf, len, "%.9g,%.9g", (double)((const float *)p)[0],
                 (double)((const float *)p)[1]);
        return;
    case OPT_INT_PAIR:
        snprintf(buf, len, "%d,%d", ((const int *)p)[0], ((const int *)p)[1]);
        return;
    case OPT_INTS:
    case OPT_FLOATS:
    case OPT_ENUMS:
    case OPT_NAMES:
        n = *(const int *)((const char *)dst + o->count);
        break;
    }
    for (int k = 0; k < n && at < len; k++) {
        const char *sep = k ? "," : "";
        if (o->kind == OPT_INTS)
            at += (size_t)snprintf(buf + at, len - at, "%s%d", sep, ((const int *)p)[k]);
        else if (o->kind == OPT_FLOATS)
            at +=
                (size_t)snprintf(buf + at, len - at, "%s%.9g", sep, (double)((const float *)p)[k]);
        else if (o->kind == OPT_ENUMS)
            at += (size_t)snprintf(buf + at, len - at, "%s%s", sep, o->names[((const int *)p)[k]]);
        else
            at += (size_t)snprintf(buf + at, len - at, "%s%s", sep, p + (size_t)k * o->size);
    }
}

/* Prints every option's value in dst, one "--name value" line each. */
static void print_values(const struct opt_tool *t, const void *dst, FILE *f) {
    char v[OPT_TEXT_MAX];
    for (const struct opt *o = t->opts; o->name; o++) {
        value_text(o, dst, v, sizeof v);
        fprintf(f, "--%s%s%s\n", o->name, v[0] ? " " : "", v);
    }
}

/* The value shown beside o's name in --help: its words, the form of its
 * value (meta), or its default: the value dst holds before the command line
 * (a library's *_default() or the table's def), numbers to 6 digits. */
static void help_value(const struct opt *o, const void *dst, char *buf, size_t len) {
    if (o->kind == OPT_FLAG)
        buf[0] = '\0';
    else if (o->kind == OPT_ENUM)
        names_text(buf, len, o->names, "|");
    else if (o->meta)
        snprintf(buf, len, "%s", o->meta);
    else if (o->kind == OPT_FLOAT)
        snprintf(buf, len, "%g", (double)*(const float *)((const char *)dst + o->off));
    else if (o->kind == OPT_PAIR)
        snprintf(buf, len, "%g,%g", (double)((const float *)((const char *)dst + o->off))[0],
                 (double)((const float *)((const char *)dst + o->off))[1]);
    else
        value_text(o, dst, buf, len);
}

void opt_usage(const struct opt_tool *t, const void *dst, FILE *f) {
    char v[256], left[320];
    fputs(t->usage, f);
    for (const struct opt *o = t->opts; o->name; o++) {
        help_value(o, dst, v, sizeof v);
        int n = snprintf(left, sizeof left, "  --%s%s%s", o->name,
                         !v[0]         ? ""
                         : v[0] == '-' ? "="
                                       : " ",
                         v);
        fputs(left, f);
        if (n >= OPT_HELP_COL - 1) {
            fputc('\n', f);
            n = 0;
        }
        fprintf(f, "%*s", OPT_HELP_COL - n, "");
        for (const char *h = o->help; *h; h++) {
            fputc(*h, f);
            if (*h == '\n')
                fprintf(f, "%*s", OPT_HELP_COL, "");
        }
        if (o->kind == OPT_ENUM) {
            /* the words stand where the default would: say it after the text */
            const char *def = o->names[*(const int *)((const char *)dst + o->off)];
            const char *last = strrchr(o->help, '\n');
            size_t w = strlen(last ? last + 1 : o->help) + strlen(def) + 11;
            if (OPT_HELP_COL + w > 96)
                fprintf(f, "\n%*s", OPT_HELP_COL - 1, "");
            fprintf(f, " (default %s)", def);
        }
        fputc('\n', f);
    }
    fprintf(f, "  --help%*sthis text\n", OPT_HELP_COL - 8, "");
}

/* ==== Parsing ==== */

/* A value that is the next option: the option before it has none. */
static int is_option(const char *s) {
    return s[0] == '-' && s[1] == '-' && isalpha((unsigned char)s[2]);
}

/* Says what is wrong with the argument getopt_long did not take (arg, and
 * its optopt): a value given to a flag, an unknown short option, or a long
 * name that is no option's or a prefix of several. */
static void say_unknown(const struct opt_tool *t, const char *arg, int opt) {
    static const char *const own[] = {"help", "print-defaults"};
    if (opt >= OPT_VAL0) {
        say(t, &t->opts[opt - OPT_VAL0], "takes no value");
        return;
    }
    if (opt > 0 || strncmp(arg, "--", 2)) {
        fprintf(stderr, "%s: unknown option '-%c' (--help lists the options)\n", t->prog,
                opt > 0 ? opt : arg[1]);
        return;
    }
    char name[128], which[512] = "";
    size_t n = strcspn(arg + 2, "="), at = 0;
    int hits = 0;
    snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), arg + 2);
    int n_opts = 0;
    while (t->opts[n_opts].name)
        n_opts++;
    for (int i = 0; i < n_opts + 2; i++) {
        const char *nm = i < n_opts ? t->opts[i].name : own[i - n_opts];
        if (!strncmp(nm, name, strlen(name)) && at < sizeof which) {
            at += (size_t)snprintf(which + at, sizeof which - at, "%s--%s", hits ? ", " : "", nm);
            hits++;
        }
    }
    if (hits > 1)
        fprintf(stderr, "%s: option '--%s' is ambiguous: %s\n", t->prog, name, which);
    else
        fprintf(stderr, "%s: unknown option '--%s' (--help lists the options)\n", t->prog, name);
}

int opt_parse(const struct opt_tool *t, void *dst, int argc, char **argv) {
    struct option lo[OPT_MAX + 3];
    int n = 0;
    for (const struct opt *o = t->opts; o->name; o++, n++) {
        KWS_ASSERT(n < OPT_MAX);
        lo[n] = (struct option){o->name, o->kind == OPT_FLAG ? no_argument : required_argument,
                                NULL, OPT_VAL0 + n};
        if (o->def && o->kind != OPT_FLAG && set_value(t, o, o->def, dst) < 0)
            return OPT_ERROR; /* a table whose default breaks its own range */
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n + 1] = (struct option){"print-defaults", no_argument, NULL, OPT_VAL_PRINT_DEFAULTS};
    lo[n + 2] = (struct option){NULL, 0, NULL, 0};

    char given[OPT_MAX] = {0};
    int c;
    opterr = 0;
    optind = 0; /* glibc: start afresh */
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (c == 'h') {
            opt_usage(t, dst, stderr);
            return OPT_EXIT;
        }
        if (c == OPT_VAL_PRINT_DEFAULTS) {
            print_values(t, dst, stdout);
            return OPT_EXIT;
        }
        if (c == '?') {
            say_unknown(t, argv[optind - 1], optopt);
            return OPT_ERROR;
        }
        const struct opt *o = &t->opts[(c == ':' ? optopt : c) - OPT_VAL0];
        const char *val = c == ':' || (optarg && is_option(optarg)) ? NULL : optarg;
        if (set_value(t, o, val, dst) < 0)
            return OPT_ERROR;
        if (o->set)
            *(int *)((char *)dst + o->set - 1) = 1;
        given[o - t->opts] = 1;
    }
    if (optind < argc) {
        fprintf(stderr, "%s: '%s' is not an option (--help lists the options)\n", t->prog,
                argv[optind]);
        return OPT_ERROR;
    }
    for (const struct opt *o = t->opts; o->name; o++)
        if (o->required && !given[o - t->opts]) {
            char v[256];
            help_value(o, dst, v, sizeof v);
            fprintf(stderr, "%s: --%s %s is required (--help lists the options)\n", t->prog,
                    o->name, v);
            return OPT_ERROR;
        }
    return OPT_OK;
}
