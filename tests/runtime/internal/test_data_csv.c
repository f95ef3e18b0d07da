/* CSV reading: headers (auto, forced, absent), label column by name or
 * index, quoting, blanks, CRLF, BOM, gzip; malformed files refused with
 * "path:line:column" messages that say what is wrong. */
#include "../../test_util.h"
#include "../../../runtime/data/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

typedef struct fixture {
    char dir[64];
    char path[192];
    int counter;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/plx_csv_XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->counter; i++) {
        char p[192];
        snprintf(p, sizeof p, "%s/f%d.csv", f->dir, i);
        unlink(p);
        snprintf(p, sizeof p, "%s/f%d.csv.gz", f->dir, i);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Writes text to a fresh file (gzip'd when gz); returns its path, valid
 * until the next call. */
static const char *write_text(fixture *f, const char *text, bool gz)
{
    char tmp[192];
    snprintf(tmp, sizeof tmp, gz ? "%s/f%d.csv.gz" : "%s/f%d.csv", f->dir, f->counter++);
    memcpy(f->path, tmp, sizeof tmp);
    size_t len = strlen(text);
    if (gz) {
        gzFile g = gzopen(f->path, "wb");
        assert_non_null(g);
        if (len > 0)
            assert_int_equal(gzwrite(g, text, (unsigned)len), (int)len);
        gzclose(g);
    } else {
        FILE *fp = fopen(f->path, "wb");
        assert_non_null(fp);
        fwrite(text, 1, len, fp);
        fclose(fp);
    }
    return f->path;
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", text, part);
}

static void test_header_auto_and_values(void **state)
{
    fixture *f = *state;
    const char *path = write_text(f,
                                  "\xEF\xBB\xBF"
                                  "a, b ,\"c \"\"x\"\"\"\r\n"
                                  "1,2.5,-3\r\n"
                                  "\r\n"
                                  "  4 ,\t5e-1, \"6\"\n"
                                  "\n",
                                  false);
    csv_table t;
    data_error err;
    assert_int_equal(csv_read(path, NULL, &t, &err), PLX_OK);
    assert_int_equal(t.rows, 2);
    assert_int_equal(t.cols, 3);
    assert_non_null(t.names);
    assert_string_equal(t.names[0], "a");
    assert_string_equal(t.names[1], "b");
    assert_string_equal(t.names[2], "c \"x\"");
    const double want[6] = {1, 2.5, -3, 4, 0.5, 6};
    for (int i = 0; i < 6; i++)
        assert_true(t.values[i] == want[i]);
    assert_int_equal(t.lines[0], 2);
    assert_int_equal(t.lines[1], 4);
    csv_table_free(&t);
    assert_null(t.values);
    csv_table_free(NULL);

    /* No header, detected; also forced off/on; gzip; other delimiter. */
    path = write_text(f, "1;2\n3;4", true);
    csv_options o = {.delimiter = ';'};
    assert_int_equal(csv_read(path, &o, &t, &err), PLX_OK);
    assert_null(t.names);
    assert_int_equal(t.rows, 2);
    assert_true(t.values[3] == 4.0);
    csv_table_free(&t);
    o.header = CSV_HEADER_YES;
    assert_int_equal(csv_read(path, &o, &t, &err), PLX_OK);
    assert_int_equal(t.rows, 1);
    assert_string_equal(t.names[1], "2");
    csv_table_free(&t);
}

static void test_dataset_label_column(void **state)
{
    fixture *f = *state;
    const char *path = write_text(f, "x1,label,x2\n0.5,2,1\n1.5,0,-1\n2.5,1,7\n", false);
    csv_options o = {.label_name = "label"};
    dataset *ds = NULL;
    data_error err;
    assert_int_equal(dataset_load_csv(path, &o, NULL, &ds, &err), PLX_OK);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->sample_ndim, 1);
    assert_int_equal(ds->sample_shape[0], 2);
    assert_int_equal(ds->n_classes, 3);
    const float want[6] = {0.5f, 1, 1.5f, -1, 2.5f, 7};
    for (int i = 0; i < 6; i++)
        assert_true(ds->features[i] == want[i]);
    assert_int_equal(ds->labels[0], 2);
    assert_int_equal(ds->labels[1], 0);
    assert_int_equal(ds->labels[2], 1);
    dataset_free(ds);

    /* By index, from the end, with a scale. */
    path = write_text(f, "1,2,0\n3,4,1\n", false);
    o = (csv_options){.label_index = -1};
    dataset_load_options lo = {.scale = 0.5f};
    assert_int_equal(dataset_load_csv(path, &o, &lo, &ds, &err), PLX_OK);
    assert_true(ds->features[0] == 0.5f && ds->features[3] == 2.0f);
    assert_int_equal(ds->labels[1], 1);
    dataset_free(ds);
    /* Zero-initialized options: first column. */
    path = write_text(f, "label,p0,p1\n7,0,255\n", false);
    assert_int_equal(dataset_load_csv(path, NULL, NULL, &ds, &err), PLX_OK);
    assert_int_equal(ds->labels[0], 7);
    assert_int_equal(ds->n_classes, 8);
    assert_true(ds->features[1] == 255.0f);
    dataset_free(ds);

    /* Label problems, located. */
    ds = NULL;
    path = write_text(f, "a,y\n1,0\n2,1.5\n", false);
    o = (csv_options){.label_name = "y"};
    assert_int_equal(dataset_load_csv(path, &o, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_null(ds);
    assert_contains(err.message, path);
    assert_contains(err.message, ":3:2 (column \"y\"): label 1.5 is not an integer");
    path = write_text(f, "1,-1\n", false);
    o = (csv_options){.label_index = 1};
    assert_int_equal(dataset_load_csv(path, &o, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, ":1:2: label -1 is not an integer");
    o = (csv_options){.label_name = "zz"};
    path = write_text(f, "a,b\n1,2\n", false);
    assert_int_equal(dataset_load_csv(path, &o, NULL, &ds, &err), PLX_NOT_FOUND);
    assert_contains(err.message, "no column named \"zz\"");
    path = write_text(f, "1,2\n", false);
    assert_int_equal(dataset_load_csv(path, &o, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "no header row");
    o = (csv_options){.label_index = 2};
    assert_int_equal(dataset_load_csv(path, &o, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "out of range");
    path = write_text(f, "1\n2\n", false);
    assert_int_equal(dataset_load_csv(path, NULL, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "at least one feature");
}

static void expect_csv_error(fixture *f, const char *text, const csv_options *o, plx_status st, const char *where,
                             const char *what)
{
    const char *path = write_text(f, text, false);
    csv_table t = {0};
    data_error err = {{0}};
    plx_status got = csv_read(path, o, &t, &err);
    if (got != st)
        fail_msg("%s: status %s, want %s (%s)", text, plx_status_name(got), plx_status_name(st), err.message);
    assert_null(t.values);
    char loc[256];
    snprintf(loc, sizeof loc, "%s%s", path, where);
    assert_contains(err.message, loc);
    assert_contains(err.message, what);
}

static void test_malformed_files(void **state)
{
    fixture *f = *state;
    expect_csv_error(f, "", NULL, PLX_INVALID_ARGUMENT, ": ", "empty file");
    expect_csv_error(f, "\n  \n\r\n", NULL, PLX_INVALID_ARGUMENT, ": ", "only blank lines");
    expect_csv_error(f, "a,b,c\n", NULL, PLX_INVALID_ARGUMENT, ": ", "header row (line 1) and no data rows");
    expect_csv_error(f, "a,b,c\n1,2,3\n4,5\n", NULL, PLX_INVALID_ARGUMENT,
                     ":3: ", "row has 2 fields, expected 3 (as on line 1)");
    expect_csv_error(f, "1,2,3\n4,5,6,7\n", NULL, PLX_INVALID_ARGUMENT, ":2: ", "row has 4 fields, expected 3");
    expect_csv_error(f, "a,b\n1,2\n3,abc\n", NULL, PLX_INVALID_ARGUMENT,
                     ":3:2 (column \"b\"): ", "\"abc\" is not a finite number");
    expect_csv_error(f, "1,2\n3,4x\n", NULL, PLX_INVALID_ARGUMENT, ":2:2: ", "\"4x\" is not a finite number");
    expect_csv_error(f, "1,2\n3,nan\n", NULL, PLX_INVALID_ARGUMENT, ":2:2: ", "\"nan\" is not a finite number");
    expect_csv_error(f, "1,2\n3,1e999\n", NULL, PLX_INVALID_ARGUMENT, ":2:2: ", "not a finite number");
    expect_csv_error(f, "1,2\n,4\n", NULL, PLX_INVALID_ARGUMENT, ":2:1: ", "empty field");
    expect_csv_error(f, "1,2\n3,\n", NULL, PLX_INVALID_ARGUMENT, ":2:2: ", "empty field");
    expect_csv_error(f, "a,\"b\n1,2\n", NULL, PLX_INVALID_ARGUMENT, ":1:2: ", "unterminated quote");
    expect_csv_error(f, "a,\"b\"c\n1,2\n", NULL, PLX_INVALID_ARGUMENT, ":1:2: ", "text after the closing quote");
    /* Header forced off: a text first row is an error, located. */
    csv_options o = {.header = CSV_HEADER_NO};
    expect_csv_error(f, "x,y\n1,2\n", &o, PLX_INVALID_ARGUMENT, ":1:1: ", "\"x\" is not a finite number");
    o = (csv_options){.header = 7};
    expect_csv_error(f, "1\n", &o, PLX_INVALID_ARGUMENT, ": ", "bad header option");
    o = (csv_options){.max_bytes = 4};
    expect_csv_error(f, "1,2,3\n", &o, PLX_OVERFLOW, ": ", "limit");
    expect_csv_error(f, "1,2\n3,\x01\n", NULL, PLX_INVALID_ARGUMENT, ":2:2: ", "is not a finite number");

    /* NUL bytes: a binary file. */
    const char *path = write_text(f, "xxxx", false);
    FILE *fp = fopen(path, "wb");
    fwrite("1,2\n3\0,4\n", 1, 9, fp);
    fclose(fp);
    csv_table t;
    data_error err;
    assert_int_equal(csv_read(path, NULL, &t, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "NUL bytes");
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.csv", f->dir);
    assert_int_equal(csv_read(missing, NULL, &t, &err), PLX_IO_ERROR);
    assert_contains(err.message, missing);
}

/* Random corruptions of a valid file: PLX_OK or a located error, never a
 * crash or an out-of-bounds read (SANITIZE=1). */
static void test_fuzzed_text(void **state)
{
    fixture *f = *state;
    const char *base = "x,\"y z\",label\r\n1.5,-2,0\n3e2, 4 ,1\n\n5,6,2\n";
    const char alphabet[] = ",\"\r\n \t.-+eE0123456789abc;\xEF";
    size_t len = strlen(base);
    uint64_t rng = 99;
    char text[128];
    for (int iter = 0; iter < 400; iter++) {
        memcpy(text, base, len + 1);
        size_t n = len;
        int edits = 1 + (int)tu_rand_int(&rng, 0, 3);
        for (int e = 0; e < edits; e++) {
            if (tu_rand_int(&rng, 0, 4) == 0)
                n = (size_t)tu_rand_int(&rng, 0, (int64_t)n);
            else if (n > 0)
                text[tu_rand_int(&rng, 0, (int64_t)n - 1)] =
                    alphabet[tu_rand_int(&rng, 0, (int64_t)sizeof alphabet - 2)];
            text[n] = '\0';
        }
        const char *path = write_text(f, text, iter % 4 == 0);
        csv_table t = {0};
        data_error err = {{0}};
        plx_status st = csv_read(path, NULL, &t, &err);
        if (st == PLX_OK) {
            assert_true(t.rows > 0 && t.cols > 0);
            for (int64_t i = 0; i < t.rows * t.cols; i++)
                assert_true(isfinite(t.values[i]));
            csv_table_free(&t);
        } else {
            assert_non_null(strstr(err.message, path));
        }
        dataset *ds = NULL;
        st = dataset_load_csv(path, NULL, NULL, &ds, &err);
        if (st == PLX_OK)
            dataset_free(ds);
        else
            assert_non_null(strstr(err.message, path));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_header_auto_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_label_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzzed_text, setup, teardown),
    };
    return cmocka_run_group_tests_name("runtime/data/csv", tests, NULL, NULL);
}
