/* Tests that onednn declines bf16 on a CPU without native bf16, naming the
 * CPU's ISA. The process caps oneDNN at AVX-512 without BF16
 * (ONEDNN_MAX_CPU_ISA, which oneDNN reads once, at its first ISA query:
 * the plugin's init) before opening its context, so the decline is tested
 * on any x86 machine; f32 keeps running on onednn. */
#include "onednn_harness.h"

static void test_bf16_declined_without_native_support(void **state)
{
    contexts *c = *state;
    char buf[4096];
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    in_spec in[2] = {IN(4, 1, 2, 5, 5), IN(4, 3, 2, 3, 3)};
    explain(c->one, "core.conv2d", &a, 2, in, PLX_BF16, PLX_UNSUPPORTED, buf, sizeof buf);
    const char *why = strstr(buf, "bf16 needs a CPU with AVX512-BF16 (this one: ");
    if (why == NULL)
        fail_msg("onednn should decline bf16 naming the CPU:\n%s", buf);
    if (strstr(why, "(this one: avx512_core_bf16)") != NULL || strstr(why, "(this one: avx512_core_amx)") != NULL)
        fail_msg("the ISA cap did not take effect:\n%s", buf);
    in_spec x = IN(1, 9);
    explain(c->one, "core.relu", NULL, 1, &x, PLX_BF16, PLX_UNSUPPORTED, buf, sizeof buf);
    if (strstr(buf, "bf16 needs a CPU with AVX512-BF16") == NULL)
        fail_msg("onednn should decline bf16 relu too:\n%s", buf);
    /* f32 is unaffected. */
    expect on_onednn = EXPECT_ONEDNN;
    compare_op(c, "core.conv2d", &a, 2, in, 1, on_onednn, "f32 conv under the ISA cap");
}

int main(void)
{
    if (access(ONEDNN_SO, F_OK) != 0) {
        const struct CMUnitTest none[] = {cmocka_unit_test(test_onednn_not_built)};
        return cmocka_run_group_tests_name("plugins/onednn/nobf16", none, NULL, NULL);
    }
    /* Both spellings: oneDNN 2.x reads DNNL_ and ONEDNN_, 3.x ONEDNN_. */
    setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE", 1);
    setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_declined_without_native_support),
    };
    return cmocka_run_group_tests_name("plugins/onednn/nobf16", tests, harness_setup, harness_teardown);
}
