/* test_config_curve.c: transport.curve's key files, read and judged by config_load.
 *
 * Each case writes key files into a temporary folder, loads a small YAML
 * file naming them and checks the one diagnostic it must produce, byte for
 * byte with its position: a missing file, a short key, a character outside
 * Z85, a group of five worth 2^32 or more, a secret key others may read, an
 * empty or missing folder of client keys, a bad client key, and each of the
 * two keys without the other. The good case checks what is read and that
 * config_dump writes the file names back.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kws/config.h"
#include "kws/err.h"

/* Two valid Z85 keys (from zmq_curve_keypair). */
#define KEY_A "KVE.3oeWf/fi<Lb!{x#ni4*BdY(V)]Vx25!eKZ6+"
#define KEY_B "MfeuTER{K68L)-04Nbks2}A%K*DGtC9&T&rO]J!e"

static char tmpdir[64];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws_curve_XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect(eq(int, system(cmd), 0));
}

/* tmpdir/name in one of four rotating buffers. */
static const char *at(const char *name) {
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static void write_key(const char *name, const char *text, mode_t mode) {
    FILE *f = fopen(at(name), "w");
    cr_assert(not(eq(ptr, f, NULL)), "cannot write %s", at(name));
    fputs(text, f);
    fclose(f);
    cr_assert(eq(int, chmod(at(name), mode), 0));
}

/* A good set: tmpdir/server.key_secret and two clients, a note and a folder
 * that are not keys. */
static void write_good_keys(void) {
    write_key("server.key_secret", KEY_A "\n", 0600);
    cr_assert(eq(int, mkdir(at("clients"), 0755), 0));
    write_key("clients/phone.key", KEY_B "\n", 0644);
    write_key("clients/laptop.key", KEY_A "\r\n", 0644);
    write_key("clients/README", "not a key\n", 0644);
    cr_assert(eq(int, mkdir(at("clients/old.key"), 0755), 0));
}

/* Parses transport.curve with the given secret_key_file and clients_dir
 * (NULL: the key left out) and expects one error, want, with "@" standing
 * for tmpdir. */
static void expect_error(const char *secret, const char *clients, const char *want_fmt) {
    static struct kws_config c, before;
    static struct config_diags d;
    char yaml[1024], want[512];
    size_t n = 0;

    n += (size_t)snprintf(yaml + n, sizeof yaml - n, "transport:\n  curve:\n");
    if (secret)
        n += (size_t)snprintf(yaml + n, sizeof yaml - n, "    secret_key_file: \"%s\"\n", secret);
    if (clients)
        snprintf(yaml + n, sizeof yaml - n, "    clients_dir: \"%s\"\n", clients);
    size_t w = 0;
    for (const char *p = want_fmt; *p && w < sizeof want - 64; p++)
        w += (size_t)(*p == '@' ? snprintf(want + w, sizeof want - w, "%s", tmpdir)
                                : snprintf(want + w, sizeof want - w, "%c", *p));
    config_defaults(&c);
    before = c;
    cr_assert(eq(int, config_parse_string(&c, "t.yaml", yaml, &d), KWS_ECONFIG), "%s", yaml);
    cr_expect(eq(int, d.n, 1), "%s\n%s", yaml, d.msg[0]);
    cr_expect(eq(str, d.msg[0], want), "%s", yaml);
    cr_expect(eq(int, memcmp(&c, &before, sizeof c), 0), "config changed on failure");
}

Test(config_curve, good_keys, .init = setup, .fini = teardown) {
    static struct kws_config c, back;
    static struct config_diags d;
    char yaml[512], *out = NULL;
    size_t len = 0;

    write_good_keys();
    snprintf(yaml, sizeof yaml,
             "transport:\n  curve:\n    secret_key_file: %s\n    clients_dir: %s\n",
             at("server.key_secret"), at("clients"));
    cr_assert(eq(int, config_parse_string(&c, "t.yaml", yaml, &d), 0), "%s", d.msg[0]);
    cr_expect(eq(str, c.transport.curve.secret_key, KEY_A));
    cr_assert(eq(int, c.transport.curve.n_clients, 2));
    cr_expect(eq(str, c.transport.curve.clients[0].name, "laptop"));
    cr_expect(eq(str, c.transport.curve.clients[0].key, KEY_A), "a CR before the newline is cut");
    cr_expect(eq(str, c.transport.curve.clients[1].name, "phone"));
    cr_expect(eq(str, c.transport.curve.clients[1].key, KEY_B));

    FILE *f = open_memstream(&out, &len);
    config_dump(&c, f);
    fclose(f);
    cr_expect(not(eq(ptr, strstr(out, "  curve:\n    secret_key_file: \""), NULL)), "%s", out);
    cr_expect(eq(ptr, strstr(out, KEY_A), NULL), "the dump shows no key, only file names");
    cr_assert(eq(int, config_parse_string(&back, "dump.yaml", out, &d), 0), "%s", d.msg[0]);
    cr_expect(eq(int, memcmp(&back.transport, &c.transport, sizeof c.transport), 0), "%s", out);
    free(out);

    /* Off by default, and the defaults' dump says so. */
    config_defaults(&c);
    cr_expect(eq(str, c.transport.curve.secret_key_file, ""));
    cr_expect(eq(int, c.transport.curve.n_clients, 0));
}

Test(config_curve, secret_key_errors, .init = setup, .fini = teardown) {
    write_good_keys();
    write_key("short.key_secret", "KVE.3oeWf/fi<Lb!{x#ni4*BdY(V)]Vx25!eKZ6\n", 0600);
    write_key("tilde.key_secret", "KVE.~oeWf/fi<Lb!{x#ni4*BdY(V)]Vx25!eKZ6+\n", 0600);
    write_key("big.key_secret", "#####oeWf/fi<Lb!{x#ni4*BdY(V)]Vx25!eKZ6+\n", 0600);
    write_key("open.key_secret", KEY_A "\n", 0644);
    write_key("empty.key_secret", "", 0600);

    expect_error(at("none"), at("clients"),
                 "t.yaml:3:22: transport.curve.secret_key_file: @/none: No such file or directory");
    expect_error(at("short.key_secret"), at("clients"),
                 "t.yaml:3:22: transport.curve.secret_key_file: @/short.key_secret: first line "
                 "is 39 characters, expected a 40-character Z85 key");
    expect_error(at("empty.key_secret"), at("clients"),
                 "t.yaml:3:22: transport.curve.secret_key_file: @/empty.key_secret: first line "
                 "is 0 characters, expected a 40-character Z85 key");
    expect_error(at("tilde.key_secret"), at("clients"),
                 "t.yaml:3:22: transport.curve.secret_key_file: @/tilde.key_secret: not a Z85 "
                 "key: character 5 is '~'");
    expect_error(at("big.key_secret"), at("clients"),
                 "t.yaml:3:22: transport.curve.secret_key_file: @/big.key_secret: not a Z85 key: "
                 "characters 1-5 are out of range");
    expect_error(at("open.key_secret"), at("clients"),
                 "t.yaml:3:22: transport.curve.secret_key_file: @/open.key_secret: others may "
                 "read or write it (mode 0644): chmod o-rwx @/open.key_secret");
    expect_error(tmpdir, at("clients"),
                 "t.yaml:3:22: transport.curve.secret_key_file: @: a directory, not a regular "
                 "file");
}

Test(config_curve, clients_errors, .init = setup, .fini = teardown) {
    write_good_keys();
    cr_assert(eq(int, mkdir(at("empty"), 0755), 0));
    write_key("empty/notes.txt", KEY_B "\n", 0644);
    cr_assert(eq(int, mkdir(at("bad"), 0755), 0));
    write_key("bad/ok.key", KEY_B "\n", 0644);
    write_key("bad/short.key", "MfeuTER{K68L\n", 0644);

    expect_error(at("server.key_secret"), at("empty"),
                 "t.yaml:4:18: transport.curve.clients_dir: @/empty: no client keys (*.key files) "
                 "in it");
    expect_error(at("server.key_secret"), at("nowhere"),
                 "t.yaml:4:18: transport.curve.clients_dir: @/nowhere: No such file or directory");
    expect_error(at("server.key_secret"), at("bad"),
                 "t.yaml:4:18: transport.curve.clients_dir: @/bad/short.key: first line is 12 "
                 "characters, expected a 40-character Z85 key");
    expect_error(at("server.key_secret"), NULL,
                 "t.yaml:3:22: transport.curve.clients_dir: empty: with a secret key, give the "
                 "folder of allowed client keys (CURVE without it would let anyone with the "
                 "server's public key subscribe)");
    expect_error(at("server.key_secret"), "",
                 "t.yaml:4:18: transport.curve.clients_dir: empty: with a secret key, give the "
                 "folder of allowed client keys (CURVE without it would let anyone with the "
                 "server's public key subscribe)");
    expect_error(NULL, at("clients"),
                 "t.yaml:3:18: transport.curve.clients_dir: needs "
                 "transport.curve.secret_key_file (the server's key): without it CURVE is off "
                 "and anyone may subscribe");
}

/* Another key's error does not hide a key file's; a refused curve key's
 * files are not read (its value is not known). */
Test(config_curve, key_file_errors_beside_other_errors, .init = setup, .fini = teardown) {
    static struct kws_config c;
    static struct config_diags d;
    char yaml[512], want[512];

    write_good_keys();
    snprintf(yaml, sizeof yaml,
             "audio:\n  rate: 5\ntransport:\n  curve:\n    secret_key_file: %s\n"
             "    clients_dir: %s\n",
             at("none"), at("clients"));
    cr_assert(eq(int, config_parse_string(&c, "t.yaml", yaml, &d), KWS_ECONFIG));
    cr_assert(eq(int, d.n, 2), "%s", d.msg[0]);
    cr_expect(eq(str, d.msg[0], "t.yaml:2:9: audio.rate: 5 out of range [8000, 192000]"));
    snprintf(want, sizeof want,
             "t.yaml:5:22: transport.curve.secret_key_file: %s: No such file or directory",
             at("none"));
    cr_expect(eq(str, d.msg[1], want));

    snprintf(yaml, sizeof yaml,
             "transport:\n  curve:\n    secret_key_file: [a]\n    clients_dir: %s\n",
             at("clients"));
    cr_assert(eq(int, config_parse_string(&c, "t.yaml", yaml, &d), KWS_ECONFIG));
    cr_expect(eq(int, d.n, 1), "%s\n%s", d.msg[0], d.msg[1]);
    cr_expect(
        eq(str, d.msg[0],
           "t.yaml:3:22: transport.curve.secret_key_file: expected a string, got a sequence"));
}
