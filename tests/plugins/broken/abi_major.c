/*
 * abi_major.c — a plugin from a future ABI major (PLX_ABI_MAJOR + 1).
 *
 * Only the descriptor's first three fields are fixed forever; after them a
 * future major may lay things out differently. This one does: where a 1.x
 * descriptor has `name`, it has a bit mask that is not a valid pointer, and
 * its functions abort. The loader must read the three fixed fields, refuse
 * it ("ABI mismatch: plugin 2.3, runtime 1.0") and touch nothing else: any
 * further read or call crashes the test.
 */
#include "plugin_common.h"

static void must_not_be_called(void)
{
    abort();
}

typedef struct future_desc {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    /* ABI 2.0 layout (hypothetical): */
    uint64_t feature_bits;
    void (*probe)(void);
    void (*init)(void);
    void (*shutdown)(void);
    void (*backend)(void);
} future_desc;

static const future_desc desc = {
    .struct_size = sizeof(future_desc),
    .abi_major = PLX_ABI_MAJOR + 1,
    .abi_minor = 3,
    .feature_bits = 0x0bad0bad0bad0badull,
    .probe = must_not_be_called,
    .init = must_not_be_called,
    .shutdown = must_not_be_called,
    .backend = must_not_be_called,
};

PLX_EXPORT const future_desc *plx_plugin_entry(void);

PLX_EXPORT const future_desc *plx_plugin_entry(void)
{
    return &desc;
}
