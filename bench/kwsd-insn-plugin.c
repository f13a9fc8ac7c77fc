/* kwsd-insn-plugin.c: a QEMU TCG plugin that counts guest instructions, by function.
 *
 * For bench/kwsd-callgrind --arm64: valgrind does not run aarch64 code on
 * an x86-64 machine, but qemu-user does, and its plugin interface (QEMU 7.2
 * as in Debian 12, plugin API version 1) lets a plugin add each translated
 * block's instruction count to a counter every time the block runs. Each
 * block is charged to the function its first instruction belongs to, as
 * qemu finds it in the main program's symbol table; code of shared
 * libraries (libc, libm, FFTW, libspeexdsp, libsndfile, ...) has no symbol
 * there and is charged to "(libraries)". Counts are self costs (a
 * function's callees are not included) and are added without atomics, so
 * instructions of threads that run at the same time as another may be lost
 * (kwsd's audio path runs on one thread).
 *
 *     qemu-aarch64 -plugin build/bench/libkwsd-insn-plugin.so,out=FILE PROGRAM ARGS...
 *
 * FILE gets "total N" and then "N function" lines, largest first.
 * Declarations below are the few entry points of qemu-plugin.h it uses,
 * written from QEMU's plugin documentation (the header is not packaged).
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== The QEMU plugin interface (API version 1) ==== */

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const char *qemu_plugin_insn_symbol(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);

#define KWS_PLUGIN_EXPORT __attribute__((visibility("default")))
KWS_PLUGIN_EXPORT int qemu_plugin_version = 1;
KWS_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info,
                                          int argc, char **argv);

/* ==== Counters ==== */

#define MAX_FUNCS 8192 /* distinct functions counted; more share the last slot */

struct counter {
    const char *name; /* NULL: free slot */
    uint64_t n;       /* instructions */
};

static struct counter funcs[MAX_FUNCS];
static int n_funcs;
static const char *out_path;

/* The slot of name (a string that lives as long as the program: qemu's
 * symbol table, or a literal). Linear probing on a string hash. */
static uint64_t *slot_of(const char *name) {
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (uint32_t i = 0; i < MAX_FUNCS; i++) {
        struct counter *c = &funcs[(h + i) % MAX_FUNCS];
        if (!c->name && n_funcs < MAX_FUNCS - 1) {
            c->name = name;
            n_funcs++;
            return &c->n;
        }
        if (c->name && !strcmp(c->name, name))
            return &c->n;
    }
    return &funcs[MAX_FUNCS - 1].n;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (n == 0)
        return;
    const char *sym = qemu_plugin_insn_symbol(qemu_plugin_tb_get_insn(tb, 0));
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
                                             slot_of(sym ? sym : "(libraries)"), n);
}

static int by_count(const void *a, const void *b) {
    const struct counter *x = a, *y = b;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

static void on_exit_cb(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    uint64_t total = 0;
    for (int i = 0; i < MAX_FUNCS; i++)
        total += funcs[i].n;
    qsort(funcs, MAX_FUNCS, sizeof funcs[0], by_count);
    FILE *f = out_path ? fopen(out_path, "w") : stderr;
    if (!f)
        f = stderr;
    fprintf(f, "total %llu\n", (unsigned long long)total);
    for (int i = 0; i < MAX_FUNCS && funcs[i].n; i++)
        fprintf(f, "%llu %s\n", (unsigned long long)funcs[i].n,
                funcs[i].name ? funcs[i].name : "(other)");
    if (f != stderr)
        fclose(f);
}

int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc,
                        char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "out=", 4))
            out_path = argv[i] + 4;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
