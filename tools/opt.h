/* opt.h: the command-line option tables of kwsd's tools.
 *
 * A tool describes each option once, in a table of struct opt: its name,
 * kind, range, the place of its value in the tool's options struct and its
 * help text. The defaults come from the struct the tool hands to opt_parse:
 * a library's *_default() fills it (kwsd-train: train_recipe_default), so
 * the library holds each default once; a tool whose options have no library
 * struct writes a default in the table (.def, as on the command line,
 * parsed and checked like any value, so it can never be out of its own
 * range). opt_parse then fills the struct from argv, checking
 * every value against its range and every enum word against its names;
 * the first bad value ends it with one line on stderr that names the option
 * and what it accepts:
 *
 *     kwsd-train: --epochs: 0 out of range [1, 100000]
 *     kwsd-train: --surrogate: 'foo' is not one of atan, triangle
 *     kwsd-train: --epochs: needs a value: an integer in [1, 100000]
 *
 * --help prints the usage lines and one entry per option from the same
 * table, with the default the struct holds; a hidden --print-defaults prints
 * every option's value after the defaults (one "--name value" line each, on
 * stdout) for tests. Checks that
 * need two options together stay in the tool, after opt_parse.
 *
 *     struct my_opts { int epochs; const char *out; };
 *     static const struct opt my_opts_table[] = {
 *         {"epochs", OPT_INT, offsetof(struct my_opts, epochs), .min = 1, .max = 1000,
 *          .def = "40", .help = "passes over the data"},
 *         {"out", OPT_PATH, offsetof(struct my_opts, out), .meta = "FILE", .required = 1,
 *          .help = "model file to write"},
 *         {NULL}};
 *     static const struct opt_tool my_tool = {"my-tool", "usage: my-tool --out FILE\n",
 *                                             my_opts_table};
 *     struct my_opts o = {0};
 *     int rc = opt_parse(&my_tool, &o, argc, argv);
 *     if (rc != OPT_OK)
 *         return rc == OPT_EXIT ? 0 : 2;
 *
 * Thread-safety: opt_parse drives getopt_long, whose state is global; call
 * it from main only.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TOOLS_OPT_H
#define KWS_TOOLS_OPT_H

#include <stddef.h>
#include <stdio.h>

/* What an option's value is, and what its destination holds. */
enum opt_kind {
    OPT_FLAG,     /* no value; int, set to 1 when given */
    OPT_INT,      /* int in [min, max] */
    OPT_FLOAT,    /* float in [min, max] (a bound in .open is excluded) */
    OPT_PATH,     /* const char *, a non-empty file or folder name (points into argv) */
    OPT_ENUM,     /* int: the index in names of the word given */
    OPT_PAIR,     /* float[2]: "LO,HI", each in [min, max], LO <= HI */
    OPT_INT_PAIR, /* int[2]: "A,B" (names in meta), A in [min, max], B in [min2, max2] */
    OPT_INTS,     /* int[max_n]: "a,b,...", min_n..max_n integers, each in [min, max] */
    OPT_FLOATS,   /* float[max_n]: "a,b,...", min_n..max_n numbers, each in [min, max] */
    OPT_ENUMS,    /* int[max_n]: "a,b,...", min_n..max_n words of names, as indices */
    OPT_NAMES,    /* char[max_n][size]: "a,b,...", min_n..max_n names of 1..size-1 bytes */
};

/* .open: which bounds of an OPT_FLOAT range are excluded. */
#define OPT_OPEN_MIN 1 /* (min, ... */
#define OPT_OPEN_MAX 2 /* ..., max) */

/* .set: the int field set to 1 when the option is on the command line. */
#define OPT_SET(type, field) (offsetof(type, field) + 1)

/* One option. Fields a kind does not use stay 0. */
struct opt {
    const char *name;         /* long name without "--", e.g. "epochs" */
    enum opt_kind kind;       /* what the value is */
    size_t off;               /* offset of the value in the options struct */
    double min, max;          /* numbers: the range (of each number of a pair or list) */
    double min2, max2;        /* OPT_INT_PAIR: the second number's range */
    int open;                 /* OPT_FLOAT: OPT_OPEN_MIN | OPT_OPEN_MAX */
    const char *const *names; /* OPT_ENUM, OPT_ENUMS: the accepted words, NULL-terminated */
    size_t count;             /* lists: offset of the int that holds how many items */
    int min_n, max_n;         /* lists: how many items (max_n: the array's length) */
    size_t size;              /* OPT_NAMES: bytes of each name's buffer, NUL included */
    size_t set;               /* OPT_SET(type, field), or 0: nothing marks it given */
    int required;             /* 1: the command line must give it */
    const char *def;          /* default, as on the command line; NULL: the one dst holds */
    const char *meta;         /* the value in --help instead of the default, e.g. "DIR" */
    const char *help;         /* help text; '\n' starts another line */
};

/* A tool: its name, the usage lines --help starts with, and its table. */
struct opt_tool {
    const char *prog;       /* starts every message, e.g. "kwsd-train" */
    const char *usage;      /* usage lines, each ending in '\n' */
    const struct opt *opts; /* the table, ended by an entry whose name is NULL */
};

/* What opt_parse returns. */
enum {
    OPT_OK = 0,     /* dst holds the options: go on */
    OPT_EXIT = 1,   /* --help or --print-defaults printed: exit 0 */
    OPT_ERROR = -1, /* a bad command line, said on stderr: exit 2 */
};

/* Sets every option of t with a def in dst (an options struct, zeroed or
 * filled with a library's defaults), then parses argv[1..argc) into it: --name VALUE or --name=VALUE, any
 * unique prefix of a name, -h or --help. Values that are given twice keep
 * the last. Returns OPT_OK, OPT_EXIT after printing the help (stderr) or
 * the values (stdout), or OPT_ERROR after one line on stderr that names the
 * option and the values it accepts. argv may be permuted (getopt_long);
 * OPT_PATH values point into it. */
int opt_parse(const struct opt_tool *t, void *dst, int argc, char **argv);

/* Prints t's help: the usage lines, then each option with its default (the
 * value in dst, the options struct after the defaults) or the form of its
 * value (meta), and its help text. */
void opt_usage(const struct opt_tool *t, const void *dst, FILE *f);

#endif /* KWS_TOOLS_OPT_H */
