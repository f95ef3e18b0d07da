/*
 * plexus — the command line, a thin client of abi/plexus.h.
 *
 *   plexus plugins [--json]     every plugin file examined, loaded or refused
 *                               and why, with each backend's devices and ops
 *   plexus ops [--json]         the op catalog
 *   plexus train/eval/predict/plan   models (train_cmd.c)
 *   plexus plot                 metrics as SVG (plot_cmd.c)
 *   plexus bench                ops and training steps per backend (bench_cmd.c)
 *   plexus version
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../abi/plexus.h"
#include "../../abi/plexus_plugin.h"
#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: plexus <command> [options]\n"
               "commands:\n"
               "  plugins [--json]   list every plugin file examined, with status, reason, devices and ops\n"
               "  ops [--json]       list the known ops\n"
               "  train              train a model file; progress on stderr, checkpoint with --out\n"
               "  eval               accuracy, loss, top-5 and confusion matrix of a checkpoint on its test set\n"
               "  predict            top classes of PGM/PPM images or IDX records\n"
               "  plan               where each node of a model's graph runs, and why (--explain)\n"
               "  plot               an SVG of the metrics `train --metrics` wrote\n"
               "  bench              time ops (--ops) or a model's training step (--model) on every backend\n"
               "  version            print the runtime and ABI versions\n"
               "usage of the model commands:\n"
               "  plexus %s\n  plexus %s\n  plexus %s\n  plexus %s\n  plexus %s\n  plexus %s\n"
               "exit status: 0 ok, 1 error, 2 bad arguments, 130 interrupted (train: checkpoint written)\n"
               "environment: PLEXUS_PLUGIN_PATH, PLEXUS_BACKENDS, PLEXUS_STRICT, PLEXUS_NUM_THREADS,\n"
               "             PLEXUS_ALLOW_INSECURE_PLUGINS, PLEXUS_LOG_LEVEL\n",
            cli_train_usage, cli_eval_usage, cli_predict_usage, cli_plan_usage, cli_plot_usage, cli_bench_usage);
}

static const char *kind_name(int32_t kind)
{
    switch (kind) {
    case PLX_DEVICE_KIND_CPU:
        return "cpu";
    case PLX_DEVICE_KIND_GPU:
        return "gpu";
    case PLX_DEVICE_KIND_ACCELERATOR:
        return "accelerator";
    default:
        return "other";
    }
}

static int open_context(plx_context **ctx, int log_level)
{
    plx_context_options opts;
    plx_context_options_init(&opts);
    opts.log_level = log_level;
    plx_status st = plx_context_open(&opts, ctx);
    if (st != PLX_OK) {
        fprintf(stderr, "plexus: cannot open the runtime: %s\n", plx_last_error(NULL));
        return 1;
    }
    return 0;
}

static cJSON *backend_json(plx_context *ctx, int32_t bi)
{
    plx_backend_info bin = {.struct_size = sizeof bin};
    if (plx_backend_get(ctx, (size_t)bi, &bin) != PLX_OK)
        return NULL;
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", bin.name);
    cJSON *devs = cJSON_AddArrayToObject(b, "devices");
    for (int32_t d = 0; d < bin.n_devices; d++) {
        plx_device_desc dd = {.struct_size = sizeof dd};
        if (plx_device_get(ctx, (size_t)bi, d, &dd) != PLX_OK)
            continue;
        cJSON *dj = cJSON_CreateObject();
        cJSON_AddStringToObject(dj, "name", dd.name);
        cJSON_AddStringToObject(dj, "kind", kind_name(dd.kind));
        cJSON_AddNumberToObject(dj, "dl_device_type", dd.dl_device.device_type);
        cJSON_AddNumberToObject(dj, "memory_bytes", (double)dd.memory_bytes);
        cJSON_AddBoolToObject(dj, "host_memory", (dd.caps & PLX_DEVICE_CAP_HOST_MEMORY) != 0);
        cJSON_AddItemToArray(devs, dj);
    }
    cJSON *ops = cJSON_AddArrayToObject(b, "ops");
    for (size_t i = 0; i < bin.n_ops; i++)
        cJSON_AddItemToArray(ops, cJSON_CreateString(plx_backend_op_name(ctx, (size_t)bi, i)));
    return b;
}

static int cmd_plugins(int argc, char **argv)
{
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "plexus plugins: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    plx_context *ctx;
    /* The listing itself reports refusals; keep the log quiet. */
    if (open_context(&ctx, PLX_LOG_ERROR + 1))
        return 1;
    size_t n = plx_plugin_count(ctx);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        char abi[32];
        snprintf(abi, sizeof abi, "%d.%d", PLX_ABI_MAJOR, PLX_ABI_MINOR);
        cJSON_AddStringToObject(root, "abi", abi);
        cJSON_AddNumberToObject(root, "threads", plx_context_num_threads(ctx));
        cJSON *arr = cJSON_AddArrayToObject(root, "plugins");
        for (size_t i = 0; i < n; i++) {
            plx_plugin_info pi = {.struct_size = sizeof pi};
            plx_plugin_get(ctx, i, &pi);
            cJSON *p = cJSON_CreateObject();
            cJSON_AddStringToObject(p, "path", pi.path);
            cJSON_AddStringToObject(p, "name", pi.name);
            cJSON_AddStringToObject(p, "version", pi.version);
            cJSON_AddStringToObject(p, "status", pi.status == PLX_PLUGIN_LOADED ? "loaded" : "refused");
            cJSON_AddStringToObject(p, "reason", pi.reason);
            if (pi.abi_major || pi.abi_minor) {
                snprintf(abi, sizeof abi, "%u.%u", (unsigned)pi.abi_major, (unsigned)pi.abi_minor);
                cJSON_AddStringToObject(p, "abi", abi);
            }
            cJSON *backs = cJSON_AddArrayToObject(p, "backends");
            if (pi.backend_index >= 0) {
                cJSON *b = backend_json(ctx, pi.backend_index);
                if (b != NULL)
                    cJSON_AddItemToArray(backs, b);
            }
            cJSON *layers = cJSON_AddArrayToObject(p, "layers");
            for (size_t l = 0; l < plx_layer_count(ctx); l++) {
                plx_layer_info li = {.struct_size = sizeof li};
                if (plx_layer_get(ctx, l, &li) == PLX_OK && li.plugin_index == (int32_t)i)
                    cJSON_AddItemToArray(layers, cJSON_CreateString(li.name));
            }
            cJSON_AddItemToArray(arr, p);
        }
        char *text = cJSON_PrintUnformatted(root);
        if (text != NULL)
            puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        printf("Plexus ABI %d.%d, %d threads; %zu plugin file%s examined\n", PLX_ABI_MAJOR, PLX_ABI_MINOR,
               (int)plx_context_num_threads(ctx), n, n == 1 ? "" : "s");
        for (size_t i = 0; i < n; i++) {
            plx_plugin_info pi = {.struct_size = sizeof pi};
            plx_plugin_get(ctx, i, &pi);
            if (pi.status == PLX_PLUGIN_LOADED)
                printf("\n[loaded]  %s %s  (%s)\n          %s\n", pi.name, pi.version, pi.path, pi.description);
            else
                printf("\n[refused] %s\n          %s\n", pi.path, pi.reason);
            size_t shown = 0;
            for (size_t l = 0; l < plx_layer_count(ctx); l++) {
                plx_layer_info li = {.struct_size = sizeof li};
                if (plx_layer_get(ctx, l, &li) != PLX_OK || li.plugin_index != (int32_t)i)
                    continue;
                printf("%s%s", shown % 8 == 0 ? (shown ? "\n            " : "          layers:\n            ") : " ",
                       li.name);
                shown++;
            }
            if (shown)
                printf("\n");
            if (pi.backend_index < 0)
                continue;
            plx_backend_info bin = {.struct_size = sizeof bin};
            plx_backend_get(ctx, (size_t)pi.backend_index, &bin);
            for (int32_t d = 0; d < bin.n_devices; d++) {
                plx_device_desc dd = {.struct_size = sizeof dd};
                if (plx_device_get(ctx, (size_t)pi.backend_index, d, &dd) == PLX_OK)
                    printf("          device %s (%s%s)\n", dd.name, kind_name(dd.kind),
                           (dd.caps & PLX_DEVICE_CAP_HOST_MEMORY) ? ", host memory" : "");
            }
            printf("          backend %s: %zu ops:", bin.name, bin.n_ops);
            for (size_t k = 0; k < bin.n_ops; k++)
                printf("%s%s", k % 6 == 0 ? "\n            " : " ", plx_backend_op_name(ctx, (size_t)pi.backend_index, k));
            printf("\n");
        }
    }
    plx_context_close(ctx);
    return 0;
}

static int cmd_ops(int argc, char **argv)
{
    int json = argc > 0 && strcmp(argv[0], "--json") == 0;
    plx_context *ctx;
    if (open_context(&ctx, PLX_LOG_ERROR))
        return 1;
    size_t nb = plx_backend_count(ctx);
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    for (int32_t id = 0; id < PLX_OP_CORE_COUNT_; id++) {
        const char *name = plx_op_name(ctx, id);
        char backends[256] = "";
        size_t used = 0;
        for (size_t b = 0; b < nb; b++) {
            plx_backend_info bin = {.struct_size = sizeof bin};
            plx_backend_get(ctx, b, &bin);
            for (size_t k = 0; k < bin.n_ops; k++)
                if (strcmp(plx_backend_op_name(ctx, b, k), name) == 0 && used < sizeof backends) {
                    int w = snprintf(backends + used, sizeof backends - used, "%s%s", used ? "," : "", bin.name);
                    used += w > 0 ? (size_t)w : 0;
                }
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", name);
            cJSON_AddStringToObject(o, "backends", backends);
            cJSON_AddItemToArray(arr, o);
        } else
            printf("%-32s %s\n", name, backends[0] ? backends : "(no backend)");
    }
    if (json) {
        char *text = cJSON_PrintUnformatted(arr);
        if (text != NULL)
            puts(text);
        free(text);
        cJSON_Delete(arr);
    }
    plx_context_close(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "plugins") == 0)
        return cmd_plugins(argc - 2, argv + 2);
    if (strcmp(cmd, "ops") == 0)
        return cmd_ops(argc - 2, argv + 2);
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc - 2, argv + 2);
    if (strcmp(cmd, "plan") == 0)
        return cmd_plan(argc - 2, argv + 2);
    if (strcmp(cmd, "plot") == 0)
        return cmd_plot(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0)
        return cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0) {
        printf("plexus ABI %d.%d\n", PLX_ABI_MAJOR, PLX_ABI_MINOR);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "plexus: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
