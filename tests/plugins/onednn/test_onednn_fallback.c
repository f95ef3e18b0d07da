/* Tests of what happens when oneDNN cannot create a primitive for a call.
 * No shape makes oneDNN 2.6 fail naturally for the ops onednn takes, so
 * the failure is injected with PLEXUS_ONEDNN_FAIL (read by the plugin's
 * init; see plugins/onednn/onednn.c), set by this program before it opens
 * its contexts:
 *  (a) ranked "onednn,cpu_blas", the op runs on cpu_blas with cpu_blas's
 *      result, and onednn logs the reason once at WARN level, naming the op
 *      and the shapes; other ops still run on onednn;
 *  (b) in strict mode the call is an error naming onednn and the reason;
 *  (c) a PLEXUS_ONEDNN_FAIL naming no op onednn implements makes the
 *      plugin refuse to load, saying why. */
#include "onednn_harness.h"

static const char *const conv_needles[] = {"onednn", "core.conv2d(f32[2,3,7,9], f32[5,3,3,3])", "PLEXUS_ONEDNN_FAIL",
                                           "unimplemented"};

static int count_of(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_failed_primitive_falls_back_with_a_warning(void **state)
{
    (void)state;
    log_capture log = {.used = 0};
    plx_context *one = open_with("onednn,cpu_blas", 0, &log);
    contexts c = {one, open_with("cpu_blas", 0, NULL)};
    in_spec conv_in[2] = {IN(4, 2, 3, 7, 9), IN(4, 5, 3, 3, 3)};
    const plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    expect on_cpu = {"cpu_blas", 0.0f, 0.0f, 0};
    for (int rep = 0; rep < 3; rep++)
        compare_op(&c, "core.conv2d", &a, 2, conv_in, 1, on_cpu, "injected conv failure");
    for (size_t i = 0; i < sizeof conv_needles / sizeof conv_needles[0]; i++)
        if (strstr(log.text, conv_needles[i]) == NULL)
            fail_msg("the onednn warning should contain \"%s\"; log:\n%s", conv_needles[i], log.text);
    if (count_of(log.text, "core.conv2d(") != 1)
        fail_msg("the decline should be logged once per shape, not on every call; log:\n%s", log.text);
    in_spec x = IN(2, 4, 9);
    compare_op(&c, "core.relu", NULL, 1, &x, 1, on_cpu, "injected relu failure");
    if (strstr(log.text, "core.relu(f32[4,9])") == NULL)
        fail_msg("the relu decline should be logged; log:\n%s", log.text);
    /* Ops not named still run on onednn. */
    in_spec mm[2] = {IN(2, 5, 7), IN(2, 7, 3)};
    expect on_onednn = EXPECT_ONEDNN;
    compare_op(&c, "core.matmul", NULL, 2, mm, 1, on_onednn, "matmul unaffected");
    plx_context_close(c.one);
    plx_context_close(c.ref);
}

static void test_strict_mode_makes_it_an_error(void **state)
{
    (void)state;
    log_capture log = {.used = 0};
    plx_context *strict = open_with("onednn,cpu_blas", 1, &log);
    int64_t xs[4] = {2, 3, 7, 9}, ws[4] = {5, 3, 3, 3};
    plx_tensor *in[2] = {tu_tensor(strict, PLX_F32, 4, xs), tu_tensor(strict, PLX_F32, 4, ws)};
    const plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    const char *const needles[] = {"strict", "onednn", "PLEXUS_ONEDNN_FAIL", "unimplemented"};
    tu_expect_failure1(strict, "core.conv2d", &a, in, 2, PLX_UNSUPPORTED, needles, sizeof needles / sizeof needles[0]);
    plx_tensor_free(in[0]);
    plx_tensor_free(in[1]);
    plx_context_close(strict);
}

static void test_bad_fail_list_refuses_the_plugin(void **state)
{
    (void)state;
    char saved[256];
    snprintf(saved, sizeof saved, "%s", getenv("PLEXUS_ONEDNN_FAIL"));
    setenv("PLEXUS_ONEDNN_FAIL", "core.conv2d,core.bogus", 1);
    log_capture log = {.used = 0};
    plx_context *ctx = open_with(NULL, 0, &log);
    setenv("PLEXUS_ONEDNN_FAIL", saved, 1);
    assert_false(tu_has_backend(ctx, "onednn"));
    bool listed = false;
    for (size_t i = 0; i < plx_plugin_count(ctx); i++) {
        plx_plugin_info pi = {.struct_size = sizeof pi};
        assert_int_equal(plx_plugin_get(ctx, i, &pi), PLX_OK);
        if (strstr(pi.path, "libplexus-onednn.so") == NULL)
            continue;
        listed = true;
        assert_int_equal(pi.status, PLX_PLUGIN_REFUSED);
        if (strstr(pi.reason, "PLEXUS_ONEDNN_FAIL") == NULL || strstr(pi.reason, "core.bogus") == NULL)
            fail_msg("the refusal should name the variable and the bad entry: %s", pi.reason);
    }
    assert_true(listed);
    plx_context_close(ctx);
}

int main(void)
{
    if (access(ONEDNN_SO, F_OK) != 0) {
        const struct CMUnitTest none[] = {cmocka_unit_test(test_onednn_not_built)};
        return cmocka_run_group_tests_name("plugins/onednn/fallback", none, NULL, NULL);
    }
    setenv("PLEXUS_ONEDNN_FAIL", "core.conv2d,core.relu", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_primitive_falls_back_with_a_warning),
        cmocka_unit_test(test_strict_mode_makes_it_an_error),
        cmocka_unit_test(test_bad_fail_list_refuses_the_plugin),
    };
    return cmocka_run_group_tests_name("plugins/onednn/fallback", tests, NULL, NULL);
}
