/*
 * loader.c — finds plugin files, loads them (RTLD_NOW | RTLD_LOCAL), checks
 * their descriptor and tables, probes and initializes them, and records every
 * file examined with the exact reason when one is refused. A broken plugin
 * never takes the runtime down: it is listed and skipped.
 *
 * Search order, highest first: explicit paths from the options,
 * PLEXUS_PLUGIN_PATH (colon-separated files or directories), the directory
 * next to libplexus.so ("plugins" and "plexus/plugins" beside it), the
 * compiled-in install directory. Never the current directory. In a
 * directory, files named libplexus-*.so are taken in name order.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#ifndef PLX_INSTALL_PLUGIN_DIR
#define PLX_INSTALL_PLUGIN_DIR "/usr/local/lib/plexus/plugins"
#endif

#define REASON_CAP 1024

static plx_status add_record(plx_context *ctx, const char *path, plugin_record **out)
{
    if (ctx->n_plugins == ctx->cap_plugins) {
        size_t cap = ctx->cap_plugins ? ctx->cap_plugins * 2 : 8;
        plugin_record *grown = realloc(ctx->plugins, cap * sizeof *grown);
        if (grown == NULL)
            return PLX_OUT_OF_MEMORY;
        ctx->plugins = grown;
        ctx->cap_plugins = cap;
    }
    plugin_record *r = &ctx->plugins[ctx->n_plugins];
    memset(r, 0, sizeof *r);
    r->path = strdup(path);
    if (r->path == NULL)
        return PLX_OUT_OF_MEMORY;
    r->backend_index = -1;
    r->status = PLX_PLUGIN_REFUSED;
    ctx->n_plugins++;
    *out = r;
    return PLX_OK;
}

static void refuse(plx_context *ctx, plugin_record *r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(plx_context *ctx, plugin_record *r, const char *fmt, ...)
{
    char reason[REASON_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    free(r->reason);
    r->reason = strdup(reason);
    r->status = PLX_PLUGIN_REFUSED;
    /* A plugin refused after its init (a bad backend table) still has its
     * shutdown to run; examine_file closes it after that. */
    if (r->handle != NULL && !r->initialized) {
        dlclose(r->handle);
        r->handle = NULL;
    }
    bool disabled = strncmp(reason, "disabled", 8) == 0;
    ctx_log(ctx, disabled ? PLX_LOG_INFO : PLX_LOG_WARN, "plugin %s refused: %s", r->path, reason);
}

/* Group- or world-writable, or owned by someone other than root or us:
 * anyone could replace the code we are about to run. */
static bool insecure(const struct stat *st, char *why, size_t cap, const char *what, const char *path)
{
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        snprintf(why, cap, "insecure: %s %s is %s-writable (set PLEXUS_ALLOW_INSECURE_PLUGINS=1 to allow)", what,
                 path, (st->st_mode & S_IWOTH) ? "world" : "group");
        return true;
    }
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        snprintf(why, cap,
                 "insecure: %s %s is owned by uid %u, not root or the current user (set "
                 "PLEXUS_ALLOW_INSECURE_PLUGINS=1 to allow)",
                 what, path, (unsigned)st->st_uid);
        return true;
    }
    return false;
}

static bool name_valid(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static bool ranked_out(const plx_context *ctx, const char *backend)
{
    if (ctx->n_ranking == 0)
        return false;
    for (size_t i = 0; i < ctx->n_ranking; i++)
        if (strcmp(ctx->ranking[i], backend) == 0)
            return false;
    return true;
}

static int32_t rank_of(const plx_context *ctx, const char *backend)
{
    for (size_t i = 0; i < ctx->n_ranking; i++)
        if (strcmp(ctx->ranking[i], backend) == 0)
            return (int32_t)i;
    return -1;
}

/* Reads the first bytes to tell "not a shared object" from dlerror noise. */
static bool looks_like_elf(const char *path)
{
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return true; /* let dlopen report it */
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F';
}

/* Validates the backend table and registers it. Returns false (with the
 * record refused) on any problem. */
static bool register_backend(plx_context *ctx, plugin_record *r)
{
    const plx_backend_api *src = r->desc.backend;
    if (src->struct_size < offsetof(plx_backend_api, run) + sizeof(src->run)) {
        /* 1.0 tables end at `run`; nothing shorter is a usable backend. */
        refuse(ctx, r, "backend table too small (%u bytes, ABI %u.0 needs %zu)", (unsigned)src->struct_size,
               (unsigned)PLX_ABI_MAJOR, offsetof(plx_backend_api, run) + sizeof(src->run));
        return false;
    }
    backend_record b;
    memset(&b, 0, sizeof b);
    size_t n = src->struct_size < sizeof b.api ? src->struct_size : sizeof b.api;
    memcpy(&b.api, src, n);
    b.api.struct_size = (uint32_t)sizeof b.api;
    if (!name_valid(b.api.name)) {
        refuse(ctx, r, "backend name '%s' is not [a-z0-9_]{1,64}", b.api.name ? b.api.name : "(null)");
        return false;
    }
    const char *missing = b.api.device_count == NULL ? "device_count"
                          : b.api.device_info == NULL ? "device_info"
                          : b.api.op_names == NULL ? "op_names"
                          : b.api.run == NULL ? "run"
                                               : NULL;
    if (missing != NULL) {
        refuse(ctx, r, "backend %s: required slot %s is NULL", b.api.name, missing);
        return false;
    }
    for (size_t i = 0; i < ctx->n_backends; i++)
        if (strcmp(ctx->backends[i].name, b.api.name) == 0) {
            refuse(ctx, r, "duplicate: backend %s is already provided by %s", b.api.name,
                   ctx->plugins[ctx->backends[i].plugin_index].path);
            return false;
        }
    if (ranked_out(ctx, b.api.name)) {
        refuse(ctx, r, "disabled: backend %s is not in the backend list '%s'", b.api.name, ctx->backends_spec);
        return false;
    }
    b.state = r->state;
    b.n_devices = b.api.device_count(b.state);
    if (b.n_devices <= 0 || b.n_devices > 1024) {
        refuse(ctx, r, "backend %s reports %d devices", b.api.name, (int)b.n_devices);
        return false;
    }
    b.devices = calloc((size_t)b.n_devices, sizeof *b.devices);
    if (b.devices == NULL) {
        refuse(ctx, r, "out of memory");
        return false;
    }
    for (int32_t d = 0; d < b.n_devices; d++) {
        b.devices[d].struct_size = (uint32_t)sizeof b.devices[d];
        plx_status st = b.api.device_info(b.state, d, &b.devices[d]);
        b.devices[d].struct_size = (uint32_t)sizeof b.devices[d];
        if (st != PLX_OK) {
            refuse(ctx, r, "backend %s: device_info(%d) failed: %s: %s", b.api.name, (int)d, plx_status_name(st),
                   plx_last_error(ctx));
            free(b.devices);
            return false;
        }
        if (b.devices[d].name == NULL)
            b.devices[d].name = "device";
        bool host_memory = (b.devices[d].caps & PLX_DEVICE_CAP_HOST_MEMORY) != 0;
        if (!host_memory && (b.api.buffer_alloc == NULL || b.api.buffer_free == NULL || b.api.copy == NULL)) {
            refuse(ctx, r, "backend %s: device %s has its own memory but buffer_alloc/buffer_free/copy are missing",
                   b.api.name, b.devices[d].name);
            free(b.devices);
            return false;
        }
    }
    size_t n_names = 0;
    const char *const *names = b.api.op_names(b.state, &n_names);
    if (names == NULL && n_names != 0) {
        refuse(ctx, r, "backend %s: op_names returned NULL with count %zu", b.api.name, n_names);
        free(b.devices);
        return false;
    }
    b.op_ids = calloc(n_names ? n_names : 1, sizeof *b.op_ids);
    if (b.op_ids == NULL) {
        refuse(ctx, r, "out of memory");
        free(b.devices);
        return false;
    }
    for (size_t i = 0; i < n_names; i++) {
        int32_t id = names[i] ? op_intern(ctx, names[i]) : -1;
        if (id < 0) {
            ctx_log(ctx, PLX_LOG_WARN, "plugin %s: backend %s lists op '%s', which is not a valid or known op name; ignored",
                    r->path, b.api.name, names[i] ? names[i] : "(null)");
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < b.n_ops; j++)
            dup |= b.op_ids[j] == id;
        if (!dup)
            b.op_ids[b.n_ops++] = id;
    }
    b.name = strdup(b.api.name);
    b.plugin_index = (int32_t)(r - ctx->plugins);
    b.rank = rank_of(ctx, b.api.name);
    backend_record *grown = realloc(ctx->backends, (ctx->n_backends + 1) * sizeof *grown);
    if (b.name == NULL || grown == NULL) {
        if (grown != NULL)
            ctx->backends = grown;
        free(b.name);
        free(b.op_ids);
        free(b.devices);
        refuse(ctx, r, "out of memory");
        return false;
    }
    ctx->backends = grown;
    r->backend_index = (int32_t)ctx->n_backends;
    ctx->backends[ctx->n_backends++] = b;
    return true;
}

static void examine_file(plx_context *ctx, const char *path, const struct stat *dir_st, const char *dir)
{
    char resolved[PATH_MAX];
    if (realpath(path, resolved) == NULL)
        snprintf(resolved, sizeof resolved, "%s", path);
    /* The same file reached twice (explicit path and a directory) is
     * examined once. */
    for (size_t i = 0; i < ctx->n_plugins; i++)
        if (strcmp(ctx->plugins[i].path, resolved) == 0)
            return;
    plugin_record *r;
    if (add_record(ctx, resolved, &r) != PLX_OK)
        return;
    char why[REASON_CAP];
    struct stat st;
    if (stat(resolved, &st) != 0) {
        refuse(ctx, r, "cannot stat: %s", strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        refuse(ctx, r, "not a regular file");
        return;
    }
    if (!ctx->allow_insecure) {
        if (insecure(&st, why, sizeof why, "file", resolved) ||
            (dir_st != NULL && insecure(dir_st, why, sizeof why, "directory", dir))) {
            refuse(ctx, r, "%s", why);
            return;
        }
    }
    if (!looks_like_elf(resolved)) {
        refuse(ctx, r, "not an ELF shared object");
        return;
    }
    dlerror();
    r->handle = dlopen(resolved, RTLD_NOW | RTLD_LOCAL);
    if (r->handle == NULL) {
        const char *e = dlerror();
        refuse(ctx, r, "dlopen failed: %s", e ? e : "unknown error");
        return;
    }
    dlerror();
    void *sym = dlsym(r->handle, PLX_PLUGIN_ENTRY_SYMBOL);
    if (sym == NULL) {
        refuse(ctx, r, "not a plexus plugin: no symbol %s", PLX_PLUGIN_ENTRY_SYMBOL);
        return;
    }
    plx_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object to function pointer, as POSIX allows */
    const plx_plugin_desc *desc = entry();
    if (desc == NULL) {
        refuse(ctx, r, "%s returned NULL", PLX_PLUGIN_ENTRY_SYMBOL);
        return;
    }
    /* Only the three fixed fields may be read before the major is checked. */
    if (desc->struct_size < offsetof(plx_plugin_desc, name)) {
        refuse(ctx, r, "descriptor struct_size %u is too small", (unsigned)desc->struct_size);
        return;
    }
    r->abi_major = desc->abi_major;
    r->abi_minor = desc->abi_minor;
    if (desc->abi_major != PLX_ABI_MAJOR) {
        refuse(ctx, r, "ABI mismatch: plugin %u.%u, runtime %u.%u", (unsigned)desc->abi_major,
               (unsigned)desc->abi_minor, (unsigned)PLX_ABI_MAJOR, (unsigned)PLX_ABI_MINOR);
        return;
    }
    size_t n = desc->struct_size < sizeof r->desc ? desc->struct_size : sizeof r->desc;
    memcpy(&r->desc, desc, n);
    r->desc.struct_size = (uint32_t)sizeof r->desc;
    if (!name_valid(r->desc.name)) {
        refuse(ctx, r, "plugin name '%s' is not [a-z0-9_]{1,64}", r->desc.name ? r->desc.name : "(null)");
        return;
    }
    r->name = strdup(r->desc.name);
    r->version = strdup(r->desc.version ? r->desc.version : "");
    r->description = strdup(r->desc.description ? r->desc.description : "");
    for (size_t i = 0; i + 1 < ctx->n_plugins; i++)
        if (ctx->plugins[i].status == PLX_PLUGIN_LOADED && strcmp(ctx->plugins[i].name, r->name) == 0) {
            refuse(ctx, r, "duplicate: plugin %s is already loaded from %s", r->name, ctx->plugins[i].path);
            return;
        }
    if (r->desc.backend != NULL && ranked_out(ctx, r->desc.backend->name ? r->desc.backend->name : "")) {
        refuse(ctx, r, "disabled: backend %s is not in the backend list '%s'",
               r->desc.backend->name ? r->desc.backend->name : "(null)", ctx->backends_spec);
        return;
    }
    if (r->desc.probe != NULL) {
        char reason[REASON_CAP] = "";
        plx_status pst = r->desc.probe(&ctx->host_api, reason, sizeof reason);
        reason[sizeof reason - 1] = '\0';
        if (pst != PLX_OK) {
            refuse(ctx, r, "unusable here: %s", reason[0] ? reason : plx_status_text(pst));
            return;
        }
    }
    if (r->desc.init != NULL) {
        thread_state *ts = thread_state_get(ctx);
        if (ts != NULL)
            ts->error[0] = '\0';
        plx_status ist = r->desc.init(&ctx->host_api, &r->state);
        if (ist != PLX_OK) {
            refuse(ctx, r, "init failed: %s%s%s", plx_status_name(ist), plx_last_error(ctx)[0] ? ": " : "",
                   plx_last_error(ctx));
            r->state = NULL;
            return;
        }
    }
    r->initialized = true;
    r->status = PLX_PLUGIN_LOADED;
    char layer_reason[REASON_CAP] = "";
    bool layers_ok = layers_register(ctx, (int32_t)(r - ctx->plugins), layer_reason, sizeof layer_reason);
    if (!layers_ok)
        refuse(ctx, r, "%s", layer_reason);
    if (!layers_ok || (r->desc.backend != NULL && !register_backend(ctx, r))) {
        layers_drop_plugin(ctx, (int32_t)(r - ctx->plugins));
        if (r->desc.shutdown != NULL)
            r->desc.shutdown(r->state);
        r->initialized = false;
        r->state = NULL;
        if (r->handle != NULL) {
            dlclose(r->handle);
            r->handle = NULL;
        }
        return;
    }
    free(r->reason);
    r->reason = NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void examine_dir(plx_context *ctx, const char *dir)
{
    struct stat dst;
    if (stat(dir, &dst) != 0)
        return;
    DIR *d = opendir(dir);
    if (d == NULL) {
        ctx_log(ctx, PLX_LOG_WARN, "cannot read plugin directory %s: %s", dir, strerror(errno));
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= strlen("libplexus-.so") || strncmp(e->d_name, "libplexus-", 10) != 0 ||
            strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof *grown);
            if (grown == NULL)
                break;
            names = grown;
        }
        names[n] = strdup(e->d_name);
        if (names[n] != NULL)
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        examine_file(ctx, path, &dst, dir);
        free(names[i]);
    }
    free(names);
}

/* A file or a directory; `explicit_path` makes a missing one an error. */
static plx_status examine_path(plx_context *ctx, const char *path, bool explicit_path, bool default_dir,
                               const char *source)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (explicit_path)
            return ctx_fail(ctx, PLX_NOT_FOUND, "%s: plugin path %s: %s", source, path, strerror(errno));
        /* A default directory that does not exist is normal; a path the user
         * set in PLEXUS_PLUGIN_PATH that does not exist is worth a warning. */
        ctx_log(ctx, default_dir ? PLX_LOG_DEBUG : PLX_LOG_WARN, "%s: plugin path %s: %s", source, path,
                strerror(errno));
        return PLX_OK;
    }
    if (default_dir && !S_ISDIR(st.st_mode))
        return PLX_OK;
    if (S_ISDIR(st.st_mode))
        examine_dir(ctx, path);
    else {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", path);
        char *dir = dirname(copy);
        struct stat dst;
        examine_file(ctx, path, stat(dir, &dst) == 0 ? &dst : NULL, dir);
    }
    return PLX_OK;
}

plx_status loader_load_all(plx_context *ctx)
{
    cpu_tune_blas(ctx);
    const plx_context_options *o = &ctx->opts;
    for (size_t i = 0; i < o->n_plugin_paths; i++) {
        plx_status st = examine_path(ctx, o->plugin_paths[i], true, false, "options.plugin_paths");
        if (st != PLX_OK)
            return st;
    }
    const char *env = o->ignore_env ? NULL : getenv("PLEXUS_PLUGIN_PATH");
    if (env != NULL && *env != '\0') {
        char *copy = strdup(env);
        if (copy == NULL)
            return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
        char *save = NULL;
        for (char *tok = strtok_r(copy, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save)) {
            if (tok[0] != '/') {
                /* Relative entries would depend on the current directory. */
                ctx_log(ctx, PLX_LOG_WARN, "PLEXUS_PLUGIN_PATH: ignoring relative entry '%s'", tok);
                continue;
            }
            examine_path(ctx, tok, false, false, "PLEXUS_PLUGIN_PATH");
        }
        free(copy);
    }
    if (!o->no_default_dirs) {
        Dl_info info;
        if (dladdr((void *)plx_context_open, &info) != 0 && info.dli_fname != NULL) {
            char copy[PATH_MAX], dir[PATH_MAX];
            snprintf(copy, sizeof copy, "%s", info.dli_fname);
            char *libdir = dirname(copy);
            snprintf(dir, sizeof dir, "%s/plugins", libdir);
            examine_path(ctx, dir, false, true, "library directory");
            snprintf(dir, sizeof dir, "%s/plexus/plugins", libdir);
            examine_path(ctx, dir, false, true, "library directory");
        }
        examine_path(ctx, PLX_INSTALL_PLUGIN_DIR, false, true, "install directory");
    }
    ctx->registry_frozen = true;
    /* Which op each backend implements, by dense op index. */
    size_t n_ops = op_index_count(ctx);
    for (size_t b = 0; b < ctx->n_backends; b++) {
        backend_record *br = &ctx->backends[b];
        br->implements = calloc(n_ops, 1);
        if (br->implements == NULL)
            return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; i < br->n_ops; i++)
            br->implements[op_index(br->op_ids[i])] = 1;
    }
    for (size_t i = 0; i < ctx->n_ranking; i++)
        if (rank_of(ctx, ctx->ranking[i]) >= 0) {
            bool found = false;
            for (size_t b = 0; b < ctx->n_backends; b++)
                found |= strcmp(ctx->backends[b].name, ctx->ranking[i]) == 0;
            if (!found)
                ctx_log(ctx, PLX_LOG_WARN, "backend list names '%s', which is not loaded", ctx->ranking[i]);
        }
    size_t loaded = 0, refused = 0, disabled = 0;
    char names[512] = "";
    for (size_t i = 0; i < ctx->n_plugins; i++) {
        const plugin_record *r = &ctx->plugins[i];
        if (r->status == PLX_PLUGIN_LOADED) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s%s", loaded ? ", " : "", r->name);
            loaded++;
        } else if (r->reason != NULL && strncmp(r->reason, "disabled", 8) == 0)
            disabled++;
        else
            refused++;
    }
    ctx_log(ctx, refused ? PLX_LOG_WARN : PLX_LOG_INFO,
            "%zu plugin%s loaded (%s), %zu refused, %zu disabled; %zu backend%s, %d threads", loaded,
            loaded == 1 ? "" : "s", names, refused, disabled, ctx->n_backends, ctx->n_backends == 1 ? "" : "s",
            (int)ctx->num_threads);
    return PLX_OK;
}

void loader_unload_all(plx_context *ctx)
{
    for (size_t i = ctx->n_plugins; i-- > 0;) {
        plugin_record *r = &ctx->plugins[i];
        if (r->initialized && r->desc.shutdown != NULL)
            r->desc.shutdown(r->state);
        r->initialized = false;
    }
    for (size_t i = ctx->n_plugins; i-- > 0;) {
        plugin_record *r = &ctx->plugins[i];
        if (r->handle != NULL)
            dlclose(r->handle);
        free(r->path);
        free(r->name);
        free(r->version);
        free(r->description);
        free(r->reason);
    }
    free(ctx->plugins);
    ctx->plugins = NULL;
    ctx->n_plugins = 0;
    for (size_t b = 0; b < ctx->n_backends; b++) {
        free(ctx->backends[b].name);
        free(ctx->backends[b].devices);
        free(ctx->backends[b].op_ids);
        free(ctx->backends[b].implements);
    }
    free(ctx->backends);
    ctx->backends = NULL;
    ctx->n_backends = 0;
    layers_free(ctx);
}
