/*
 * no_entry.c — a shared object that is not a Plexus plugin: it exports a
 * function, but under the wrong name (as a typo or a stale build would), so
 * the loader finds no plx_plugin_entry and must refuse it with
 * "not a plexus plugin: no symbol plx_plugin_entry".
 */
#include "plugin_common.h"

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry_point(void);

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry_point(void)
{
    abort(); /* nobody may call it: the loader only looks up plx_plugin_entry */
}
