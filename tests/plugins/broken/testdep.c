/*
 * testdep.c — libplexus_testdep.so, a helper library that missing_dep.c
 * links against. The build puts it where the dynamic linker never looks, so
 * loading missing_dep fails in dlopen with the name of this library.
 */
__attribute__((visibility("default"))) int plx_testdep_answer(void);

__attribute__((visibility("default"))) int plx_testdep_answer(void)
{
    return 42;
}
