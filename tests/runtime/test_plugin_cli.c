/*
 * test_plugin_cli.c — `plexus plugins [--json]` as a user sees it: every
 * plugin file examined, in search order (PLEXUS_PLUGIN_PATH, then the
 * directory next to libplexus.so), loaded or refused with the exact reason.
 * Runs the freshly built CLI through popen with the test plugins on
 * PLEXUS_PLUGIN_PATH.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../test_util.h"

#define CLI PLX_TEST_BUILD_DIR "/plexus"
#define TP_DIR(name) PLX_TEST_BAD_PLUGIN_DIR "/" name
#define TP_FILE(name) PLX_TEST_BAD_PLUGIN_DIR "/" name "/libplexus-" name ".so"
#define ENV_PATH TP_DIR("unusable") ":" TP_DIR("notelf") ":" TP_DIR("missing_dep") ":" TP_DIR("planted")

static char output[1 << 16];

/* Runs `command` (stderr merged), returns its exit status; output in `output`. */
static int run(const char *command)
{
    FILE *p = popen(command, "r");
    assert_non_null(p);
    size_t used = 0, n;
    while (used < sizeof output - 1 && (n = fread(output + used, 1, sizeof output - 1 - used, p)) > 0)
        used += n;
    output[used] = '\0';
    int status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static const char *find(const char *needle)
{
    const char *at = strstr(output, needle);
    if (at == NULL)
        fail_msg("output does not contain\n  %s\noutput was:\n%s", needle, output);
    return at;
}

static const char *real(const char *path)
{
    static char buf[4][PATH_MAX];
    static int next;
    char *out = buf[next++ % 4];
    if (realpath(path, out) == NULL)
        fail_msg("realpath %s failed", path);
    return out;
}

static int setup(void **state)
{
    (void)state;
    unsetenv("PLEXUS_BACKENDS");
    unsetenv("PLEXUS_STRICT");
    unsetenv("PLEXUS_NUM_THREADS");
    unsetenv("PLEXUS_ALLOW_INSECURE_PLUGINS");
    unsetenv("PLEXUS_LOG_LEVEL");
    setenv("PLEXUS_PLUGIN_PATH", ENV_PATH, 1);
    return 0;
}

static void test_plugins_json(void **state)
{
    assert_int_equal(run("'" CLI "' plugins --json 2>&1"), 0);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want,
             "{\"path\":\"%s\",\"name\":\"unusable\",\"version\":\"1.0.0\",\"status\":\"refused\","
             "\"reason\":\"unusable here: no frobnicator device\"",
             real(TP_FILE("unusable")));
    const char *unusable = find(want);
    snprintf(want, sizeof want,
             "{\"path\":\"%s\",\"name\":\"\",\"version\":\"\",\"status\":\"refused\",\"reason\":\"not an ELF "
             "shared object\"",
             real(TP_FILE("notelf")));
    const char *notelf = find(want);
    snprintf(want, sizeof want,
             "{\"path\":\"%s\",\"name\":\"\",\"version\":\"\",\"status\":\"refused\",\"reason\":\"dlopen failed: ",
             real(TP_FILE("missing_dep")));
    const char *missing = find(want);
    find("libplexus_testdep.so: cannot open shared object file");
    snprintf(want, sizeof want,
             "{\"path\":\"%s\",\"name\":\"planted\",\"version\":\"1.0.0\",\"status\":\"loaded\",\"reason\":\"\","
             "\"abi\":\"%d.%d\",\"backends\":[{\"name\":\"planted\",\"devices\":[{\"name\":\"plantcpu\",\"kind\":"
             "\"cpu\",\"dl_device_type\":1,\"memory_bytes\":0,\"host_memory\":true}],\"ops\":[\"core.add\"]}]",
             real(TP_FILE("planted")), PLX_ABI_MAJOR, PLX_ABI_MINOR);
    const char *planted = find(want);
    /* cpu_blas comes from the directory next to libplexus.so, after the
     * PLEXUS_PLUGIN_PATH entries. */
    snprintf(want, sizeof want, "{\"path\":\"%s\",\"name\":\"cpu_blas\"",
             real(PLX_TEST_PLUGIN_DIR "/libplexus-cpu_blas.so"));
    const char *cpu = find(want);
    assert_true(unusable < notelf && notelf < missing && missing < planted && planted < cpu);
    char abi[64];
    snprintf(abi, sizeof abi, "{\"abi\":\"%d.%d\",", PLX_ABI_MAJOR, PLX_ABI_MINOR);
    assert_ptr_equal(find(abi), output);
}

static void test_plugins_text(void **state)
{
    assert_int_equal(run("'" CLI "' plugins 2>&1"), 0);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "[refused] %s\n          unusable here: no frobnicator device\n",
             real(TP_FILE("unusable")));
    find(want);
    snprintf(want, sizeof want, "[refused] %s\n          not an ELF shared object\n", real(TP_FILE("notelf")));
    find(want);
    snprintf(want, sizeof want, "[loaded]  planted 1.0.0  (%s)\n", real(TP_FILE("planted")));
    find(want);
    find("          device plantcpu (cpu, host memory)\n          backend planted: 1 ops:\n            core.add\n");
    find("[loaded]  cpu_blas ");
    /* Refusals are in the listing, not repeated as log noise. */
    if (strstr(output, "plexus: warning") != NULL)
        fail_msg("the listing logged warnings:\n%s", output);
}

static void test_plugins_disabled_and_bad_env(void **state)
{
    setenv("PLEXUS_BACKENDS", "cpu_blas", 1);
    assert_int_equal(run("'" CLI "' plugins 2>&1"), 0);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want, "[refused] %s\n          disabled: backend planted is not in the backend list 'cpu_blas'\n",
             real(TP_FILE("planted")));
    find(want);
    setenv("PLEXUS_BACKENDS", "cpu blas!", 1);
    assert_int_equal(run("'" CLI "' plugins --json 2>&1"), 1);
    find("plexus: cannot open the runtime: PLEXUS_BACKENDS: bad backend list 'cpu blas!': names are [a-z0-9_]+, "
         "separated by commas\n");
    unsetenv("PLEXUS_BACKENDS");
    assert_int_equal(run("'" CLI "' plugins --xml 2>&1"), 2);
    find("plexus plugins: unknown option '--xml'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_plugins_json, setup),
        cmocka_unit_test_setup(test_plugins_text, setup),
        cmocka_unit_test_setup(test_plugins_disabled_and_bad_env, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
