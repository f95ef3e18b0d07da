/*
 * example_support.h — what the example tests share (test_custom_layer,
 * test_embed, test_transfer): a temporary directory under the build
 * directory, installing Plexus there and building an example against the
 * INSTALLED headers with pkg-config, tiny synthetic IDX data sets, reading
 * one tensor out of a safetensors checkpoint, and training callbacks.
 *
 * Header-only (static inline), included by one test file each.
 */
#ifndef PLX_EXAMPLE_SUPPORT_H
#define PLX_EXAMPLE_SUPPORT_H

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../test_util.h"

/* ---- A temporary directory ------------------------------------------------ */

typedef struct ex_env {
    char dir[PATH_MAX];            /* <build>/<name>_XXXXXX, 0755 */
    char prefix[PATH_MAX + 32];    /* dir/prefix, once installed */
    char pkg_config[PATH_MAX + 96]; /* the pkg-config command for that prefix */
    int sanitize;                  /* the build this test belongs to is SANITIZE=1 */
} ex_env;

/* Not /tmp: it may be mounted noexec (plugins are dlopen'ed, programs run). */
static inline void ex_make_dir(ex_env *e, const char *name)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/%s_XXXXXX", PLX_TEST_BUILD_DIR, name);
    assert_non_null(mkdtemp(e->dir));
    assert_int_equal(chmod(e->dir, 0755), 0);
    const char *base = strrchr(PLX_TEST_BUILD_DIR, '/');
    e->sanitize = base != NULL && strcmp(base + 1, "build-san") == 0;
}

static inline void ex_remove_dir(ex_env *e)
{
    if (e->dir[0] == '\0')
        return;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", e->dir);
    e->dir[0] = '\0';
}

/* dir/name into out. */
static inline void ex_path(const ex_env *e, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", e->dir, name);
}

/* ---- Tools and commands -------------------------------------------------- */

static inline int ex_have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Prints why and returns 0 when one of the tools is missing. */
static inline int ex_have_tools(const char *const *tools, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!ex_have_tool(tools[i])) {
            print_message("skipping: %s is not installed\n", tools[i]);
            return 0;
        }
    return 1;
}

static inline void ex_print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL)
        print_message("  | %s", line);
    fclose(f);
}

/* The first cap-1 bytes of a file, NUL-terminated, in a malloc'd buffer. */
static inline char *ex_read_text(const char *path, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static inline int ex_file_contains(const char *path, const char *needle)
{
    char *text = ex_read_text(path, 1 << 16);
    int found = text != NULL && strstr(text, needle) != NULL;
    free(text);
    return found;
}

static inline void ex_run_or_fail(const char *cmd, const char *log)
{
    int rc = system(cmd);
    if (rc != 0) {
        print_message("command failed (status %d): %s\n", rc, cmd);
        ex_print_file(log);
        fail_msg("command failed: %s", cmd);
    }
}

/* ---- Installing Plexus and building an example against it --------------- */

/* Installs the build this test belongs to into dir/prefix and sets the
 * pkg-config command that finds it. */
static inline void ex_install(ex_env *e)
{
    /* A make running this test (make test) must not leak its jobserver or
     * command-line variables into ours. */
    unsetenv("MAKEFLAGS");
    unsetenv("MFLAGS");
    unsetenv("MAKELEVEL");
    unsetenv("PKG_CONFIG_PATH");
    snprintf(e->prefix, sizeof e->prefix, "%s/prefix", e->dir);

    /* Same BUILD directory (relative to the source tree when inside it) and
     * SANITIZE setting. `-o all` installs the artifacts as they are:
     * rebuilding here would race other makes and bake the temporary PREFIX
     * into objects. */
    const char *src = PLX_TEST_SOURCE_DIR, *build = PLX_TEST_BUILD_DIR;
    size_t src_len = strlen(src);
    const char *build_arg = strncmp(build, src, src_len) == 0 && build[src_len] == '/' ? build + src_len + 1 : build;
    char log[PATH_MAX + 32], cmd[8 * PATH_MAX];
    ex_path(e, "install.log", log, sizeof log);
    snprintf(cmd, sizeof cmd, "make -C '%s' -o all install PREFIX='%s' DESTDIR= BUILD='%s' SANITIZE=%d >'%s' 2>&1",
             src, e->prefix, build_arg, e->sanitize, log);
    ex_run_or_fail(cmd, log);

    char path[PATH_MAX + 64], want_prefix[PATH_MAX + 64];
    struct stat st;
    snprintf(path, sizeof path, "%s/include/plexus/plexus.h", e->prefix);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/lib/pkgconfig/plexus.pc", e->prefix);
    assert_int_equal(stat(path, &st), 0);
    /* With `-o all` plexus.pc keeps the PREFIX it was generated for; then
     * pkg-config is told the prefix, so the example still builds against
     * the headers installed here. */
    snprintf(want_prefix, sizeof want_prefix, "prefix=%s\n", e->prefix);
    if (ex_file_contains(path, want_prefix))
        snprintf(e->pkg_config, sizeof e->pkg_config, "pkg-config");
    else
        snprintf(e->pkg_config, sizeof e->pkg_config, "pkg-config --define-variable=prefix=%s", e->prefix);
}

/* Builds examples/<example> with `make OUT=<out> <extra>` against the
 * installed prefix, -Werror, and checks that it was compiled with the
 * installed headers (not the source tree's abi/). */
static inline void ex_build_example(const ex_env *e, const char *example, const char *out, const char *extra)
{
    char log[PATH_MAX + 64], cmd[8 * PATH_MAX];
    snprintf(log, sizeof log, "%s/build-%s.log", e->dir, example);
    snprintf(cmd, sizeof cmd,
             "PKG_CONFIG_PATH='%s/lib/pkgconfig' make -C '%s/examples/%s' OUT='%s' PKG_CONFIG='%s' "
             "EXTRA_CFLAGS=-Werror %s >'%s' 2>&1",
             e->prefix, PLX_TEST_SOURCE_DIR, example, out, e->pkg_config, extra ? extra : "", log);
    ex_run_or_fail(cmd, log);
    char include_flag[PATH_MAX + 64];
    snprintf(include_flag, sizeof include_flag, "-I%s/include/plexus", e->prefix);
    if (!ex_file_contains(log, include_flag)) {
        ex_print_file(log);
        fail_msg("examples/%s was not compiled with %s", example, include_flag);
    }
}

/* ---- Synthetic data: 8x8 images whose class is a function of the pixels --- */

static inline void ex_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes an uncompressed IDX file of unsigned bytes with dims[ndim]. */
static inline void ex_write_idx_u8(const char *path, int32_t ndim, const uint32_t *dims, const unsigned char *data)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        fail_msg("cannot write %s", path);
    unsigned char head[4 + 4 * 4] = {0, 0, 0x08, (unsigned char)ndim};
    size_t n = 1;
    for (int32_t d = 0; d < ndim; d++) {
        ex_put_be32(head + 4 + 4 * d, dims[d]);
        n *= dims[d];
    }
    assert_int_equal(fwrite(head, 1, 4 + 4 * (size_t)ndim, f), 4 + 4 * (size_t)ndim);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

#define EX_SIDE 8
#define EX_PIXELS (EX_SIDE * EX_SIDE)

/* n images of noise (0..79) with one bright 4x4 patch (160..255) in a
 * quadrant drawn at random: labels4 = the quadrant (0 top-left, 1 top-right,
 * 2 bottom-left, 3 bottom-right); labels2 = 0 for the top half, 1 for the
 * bottom. Either array may be NULL. */
static inline void ex_make_images(uint64_t seed, int64_t n, unsigned char *images, unsigned char *labels4,
                                  unsigned char *labels2)
{
    uint64_t rng = seed;
    for (int64_t i = 0; i < n; i++) {
        int q = (int)tu_rand_int(&rng, 0, 3);
        unsigned char *img = images + i * EX_PIXELS;
        for (int p = 0; p < EX_PIXELS; p++)
            img[p] = (unsigned char)tu_rand_int(&rng, 0, 79);
        int r0 = (q / 2) * 4, c0 = (q % 2) * 4;
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 4; c++)
                img[(r0 + r) * EX_SIDE + c0 + c] = (unsigned char)tu_rand_int(&rng, 160, 255);
        if (labels4 != NULL)
            labels4[i] = (unsigned char)q;
        if (labels2 != NULL)
            labels2[i] = (unsigned char)(q / 2);
    }
}

/* Writes into dir: train-images / train-labels4 / train-labels2 (n_train)
 * and test-images / test-labels4 / test-labels2 (n_test), uncompressed IDX
 * (the loader reads gzip'd and plain files alike). */
static inline void ex_write_dataset(const ex_env *e, int64_t n_train, int64_t n_test)
{
    const struct {
        const char *prefix;
        int64_t n;
        uint64_t seed;
    } sets[2] = {{"train", n_train, 0x7a11}, {"test", n_test, 0x7e57}};
    for (int s = 0; s < 2; s++) {
        int64_t n = sets[s].n;
        unsigned char *images = malloc((size_t)(n * EX_PIXELS)), *l4 = malloc((size_t)n), *l2 = malloc((size_t)n);
        assert_true(images != NULL && l4 != NULL && l2 != NULL);
        ex_make_images(sets[s].seed, n, images, l4, l2);
        char path[PATH_MAX + 64];
        uint32_t idims[3] = {(uint32_t)n, EX_SIDE, EX_SIDE}, ldims[1] = {(uint32_t)n};
        snprintf(path, sizeof path, "%s/%s-images", e->dir, sets[s].prefix);
        ex_write_idx_u8(path, 3, idims, images);
        snprintf(path, sizeof path, "%s/%s-labels4", e->dir, sets[s].prefix);
        ex_write_idx_u8(path, 1, ldims, l4);
        snprintf(path, sizeof path, "%s/%s-labels2", e->dir, sets[s].prefix);
        ex_write_idx_u8(path, 1, ldims, l2);
        free(images);
        free(l4);
        free(l2);
    }
}

/* The "data" section of a model file for that data set (labels "4" or "2"). */
static inline void ex_data_json(const ex_env *e, const char *labels, char *out, size_t cap)
{
    snprintf(out, cap,
             "{\"format\": \"idx\", \"dir\": \"%s\", \"train_images\": \"train-images\", "
             "\"train_labels\": \"train-labels%s\", \"test_images\": \"test-images\", "
             "\"test_labels\": \"test-labels%s\"}",
             e->dir, labels, labels);
}

/* ---- Reading a tensor from a safetensors file ----------------------------- */

static inline uint64_t ex_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The f32 tensor `name` of a safetensors file as a malloc'd array (*count
 * elements), or NULL when the file has no such tensor. A minimal reader
 * for the compact headers Plexus writes; fails the test on a malformed
 * file. */
static inline float *ex_read_tensor(const char *path, const char *name, int64_t *count)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, f), 8);
    uint64_t hlen = ex_le64(len8);
    assert_true(hlen > 0 && hlen < (64u << 20));
    char *header = malloc(hlen + 1);
    assert_non_null(header);
    assert_int_equal(fread(header, 1, hlen, f), hlen);
    header[hlen] = '\0';
    char key[256];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *at = strstr(header, key);
    float *data = NULL;
    if (at != NULL) {
        const char *end = strchr(at + strlen(key), '}');
        const char *dtype = strstr(at, "\"dtype\":\"F32\"");
        const char *offsets = strstr(at, "\"data_offsets\":[");
        if (end == NULL || dtype == NULL || dtype > end || offsets == NULL || offsets > end)
            fail_msg("%s: cannot read the header entry of '%s'", path, name);
        unsigned long long begin = 0, stop = 0;
        if (sscanf(offsets + strlen("\"data_offsets\":["), "%llu,%llu", &begin, &stop) != 2 || stop < begin ||
            (stop - begin) % 4 != 0)
            fail_msg("%s: bad data_offsets of '%s'", path, name);
        *count = (int64_t)((stop - begin) / 4);
        data = malloc(stop - begin + 4);
        assert_non_null(data);
        assert_int_equal(fseek(f, (long)(8 + hlen + begin), SEEK_SET), 0);
        assert_int_equal(fread(data, 1, stop - begin, f), stop - begin);
    }
    free(header);
    fclose(f);
    return data;
}

/* As ex_read_tensor, failing the test when the tensor is missing. */
static inline float *ex_tensor(const char *path, const char *name, int64_t *count)
{
    float *data = ex_read_tensor(path, name, count);
    if (data == NULL)
        fail_msg("%s has no tensor '%s'", path, name);
    return data;
}

/* ---- Models --------------------------------------------------------------- */

/* Training losses: the mean loss of each finished epoch. */
typedef struct ex_losses {
    double epoch_loss[64];
    int32_t n;
} ex_losses;

static inline void ex_record_loss(void *user, const plx_train_progress *p)
{
    ex_losses *l = user;
    if (p->epoch_done && l->n < 64)
        l->epoch_loss[l->n++] = p->loss;
}

static inline plx_model *ex_parse(plx_context *ctx, const char *json, const char *origin)
{
    plx_model *m = NULL;
    plx_status st = plx_model_parse(ctx, json, origin, &m);
    if (st != PLX_OK)
        fail_msg("plx_model_parse(%s): %s: %s", origin, plx_status_name(st), plx_last_error(ctx));
    return m;
}

static inline void ex_save(plx_model *m, plx_context *ctx, const char *path)
{
    plx_status st = plx_model_save(m, path);
    if (st != PLX_OK)
        fail_msg("plx_model_save(%s): %s: %s", path, plx_status_name(st), plx_last_error(ctx));
}

/* Trains with the model file's settings, recording epoch losses. */
static inline plx_train_result ex_train(plx_model *m, plx_context *ctx, ex_losses *losses)
{
    plx_train_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.progress = ex_record_loss;
    o.progress_user = losses;
    plx_train_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    plx_status st = plx_model_train(m, &o, &r);
    if (st != PLX_OK)
        fail_msg("plx_model_train: %s: %s", plx_status_name(st), plx_last_error(ctx));
    return r;
}

/* Opens a context on build/plugins plus extra plugin paths (NULL-ended). */
static inline plx_context *ex_open(const char *extra_path)
{
    const char *const paths[2] = {PLX_TEST_PLUGIN_DIR, extra_path};
    return tu_open_paths(paths, extra_path ? 2 : 1, NULL);
}

#endif
