/*
 * csv.c — numeric CSV tables (iris, Kaggle's MNIST CSVs, tabular data).
 *
 * The file is read whole (gzip or raw, bounded) and split in place: each
 * field is NUL-terminated where its delimiter was, so numbers parse with
 * strtod without copying. Numbers are parsed in the C locale whatever the
 * host application set, so "1.5" means the same in every process.
 */
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

typedef struct csv_parser {
    const char *path;
    char delimiter;
    locale_t c_locale;
    char **fields; /* fields of the current row */
    int64_t n_fields, cap_fields;
    char **names; /* header, when there is one */
    data_error *err;
} csv_parser;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Appends a field pointer to the current row. */
static plx_status push_field(csv_parser *p, char *field)
{
    if (p->n_fields == p->cap_fields) {
        int64_t cap = p->cap_fields ? p->cap_fields * 2 : 16;
        char **grown = realloc(p->fields, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return data_fail(p->err, PLX_OUT_OF_MEMORY, "%s: out of memory", p->path);
        p->fields = grown;
        p->cap_fields = cap;
    }
    p->fields[p->n_fields++] = field;
    return PLX_OK;
}

/* Splits line [s, e) into fields, in place (unquoting, trimming,
 * NUL-terminating). The byte at e may be overwritten (it is the line end). */
static plx_status split_line(csv_parser *p, char *s, char *e, int64_t line)
{
    p->n_fields = 0;
    char *r = s;
    for (;;) {
        while (r < e && is_blank(*r))
            r++;
        char *start = r, *w;
        int64_t column = p->n_fields + 1;
        if (r < e && *r == '"') {
            /* Quoted: copy down over the quotes; "" is one quote. */
            w = start;
            r++;
            for (;;) {
                if (r >= e)
                    return data_fail(p->err, PLX_INVALID_ARGUMENT, "%s:%" PRId64 ":%" PRId64 ": unterminated quote",
                                     p->path, line, column);
                if (*r == '"') {
                    if (r + 1 < e && r[1] == '"') {
                        *w++ = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                *w++ = *r++;
            }
            while (r < e && is_blank(*r))
                r++;
            if (r < e && *r != p->delimiter)
                return data_fail(p->err, PLX_INVALID_ARGUMENT,
                                 "%s:%" PRId64 ":%" PRId64 ": text after the closing quote", p->path, line, column);
        } else {
            while (r < e && *r != p->delimiter)
                r++;
            w = r;
            while (w > start && is_blank(w[-1]))
                w--;
        }
        bool last = r >= e;
        *w = '\0'; /* w <= r: at the delimiter, the line end, or inside the consumed field */
        plx_status st = push_field(p, start);
        if (st != PLX_OK)
            return st;
        if (last)
            return PLX_OK;
        r++; /* past the delimiter */
    }
}

/* Parses a whole field as a finite double. */
static bool parse_number(const csv_parser *p, const char *field, double *out)
{
    if (*field == '\0')
        return false;
    char *end;
    double v = strtod_l(field, &end, p->c_locale);
    if (end == field || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* "path:line:col: what", with the column's name when the file has a header. */
static plx_status field_error(const csv_parser *p, int64_t line, int64_t col, const char *what)
{
    if (p->names != NULL)
        return data_fail(p->err, PLX_INVALID_ARGUMENT, "%s:%" PRId64 ":%" PRId64 " (column \"%.60s\"): %s", p->path,
                         line, col + 1, p->names[col], what);
    return data_fail(p->err, PLX_INVALID_ARGUMENT, "%s:%" PRId64 ":%" PRId64 ": %s", p->path, line, col + 1, what);
}

void csv_table_free(csv_table *t)
{
    if (t == NULL)
        return;
    if (t->names != NULL)
        for (int64_t c = 0; c < t->cols; c++)
            free(t->names[c]);
    free(t->names);
    free(t->values);
    free(t->lines);
    memset(t, 0, sizeof *t);
}

plx_status csv_read(const char *path, const csv_options *opts, csv_table *out, data_error *err)
{
    if (path == NULL || out == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "csv_read: NULL argument");
    csv_options o = {0};
    if (opts != NULL)
        o = *opts;
    if (o.delimiter == 0)
        o.delimiter = ',';
    if (o.delimiter == '"' || o.delimiter == '\n' || o.delimiter == '\r')
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: the delimiter cannot be a quote or a line break", path);
    if (o.header != CSV_HEADER_AUTO && o.header != CSV_HEADER_YES && o.header != CSV_HEADER_NO)
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: bad header option %d", path, o.header);

    unsigned char *buf;
    size_t len;
    plx_status st = data_read_file(path, o.max_bytes, &buf, &len, err);
    if (st != PLX_OK)
        return st;
    if (len == 0) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: empty file (no header, no rows)", path);
    }
    if (memchr(buf, 0, len) != NULL) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: contains NUL bytes (a binary file, not CSV?)", path);
    }

    csv_parser p = {.path = path, .delimiter = o.delimiter, .err = err};
    p.c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    csv_table t = {0};
    int64_t cap_rows = 0;
    if (p.c_locale == (locale_t)0) {
        st = data_fail(err, PLX_OUT_OF_MEMORY, "%s: cannot create the C locale", path);
        goto done;
    }

    char *s = (char *)buf, *end = (char *)buf + len;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    int64_t line = 0, first_line = 0;
    bool have_first = false;
    for (char *next; s < end; s = next) {
        line++;
        char *nl = memchr(s, '\n', (size_t)(end - s));
        char *e = nl != NULL ? nl : end;
        next = nl != NULL ? nl + 1 : end;
        if (e > s && e[-1] == '\r')
            e--;
        char *q = s;
        while (q < e && is_blank(*q))
            q++;
        if (q == e)
            continue; /* blank line */
        st = split_line(&p, s, e, line);
        if (st != PLX_OK)
            goto done;
        if (!have_first) {
            have_first = true;
            first_line = line;
            t.cols = p.n_fields;
            bool header = o.header == CSV_HEADER_YES;
            if (o.header == CSV_HEADER_AUTO) {
                double v;
                for (int64_t c = 0; c < p.n_fields && !header; c++)
                    header = !parse_number(&p, p.fields[c], &v);
            }
            if (header) {
                t.names = calloc((size_t)t.cols, sizeof *t.names);
                if (t.names == NULL) {
                    st = data_fail(err, PLX_OUT_OF_MEMORY, "%s: out of memory", path);
                    goto done;
                }
                for (int64_t c = 0; c < t.cols; c++) {
                    t.names[c] = strdup(p.fields[c]);
                    if (t.names[c] == NULL) {
                        st = data_fail(err, PLX_OUT_OF_MEMORY, "%s: out of memory", path);
                        goto done;
                    }
                }
                p.names = t.names;
                continue;
            }
        }
        if (p.n_fields != t.cols) {
            st = data_fail(err, PLX_INVALID_ARGUMENT,
                           "%s:%" PRId64 ": row has %" PRId64 " fields, expected %" PRId64 " (as on line %" PRId64 ")",
                           path, line, p.n_fields, t.cols, first_line);
            goto done;
        }
        if (t.rows == cap_rows) {
            int64_t cap = cap_rows ? cap_rows * 2 : 64;
            if ((uint64_t)cap > SIZE_MAX / sizeof(double) / (uint64_t)t.cols) {
                st = data_fail(err, PLX_OVERFLOW, "%s: too many values", path);
                goto done;
            }
            double *values = realloc(t.values, (size_t)cap * (size_t)t.cols * sizeof *values);
            if (values != NULL)
                t.values = values;
            int64_t *lines = realloc(t.lines, (size_t)cap * sizeof *lines);
            if (lines != NULL)
                t.lines = lines;
            if (values == NULL || lines == NULL) {
                st = data_fail(err, PLX_OUT_OF_MEMORY, "%s: out of memory at line %" PRId64, path, line);
                goto done;
            }
            cap_rows = cap;
        }
        double *row = t.values + t.rows * t.cols;
        for (int64_t c = 0; c < t.cols; c++) {
            const char *f = p.fields[c];
            if (*f == '\0') {
                st = field_error(&p, line, c, "empty field");
                goto done;
            }
            if (!parse_number(&p, f, &row[c])) {
                char what[80];
                snprintf(what, sizeof what, "\"%.40s\" is not a finite number", f);
                st = field_error(&p, line, c, what);
                goto done;
            }
        }
        t.lines[t.rows++] = line;
    }
    if (!have_first)
        st = data_fail(err, PLX_INVALID_ARGUMENT, "%s: no rows (only blank lines)", path);
    else if (t.rows == 0)
        st = data_fail(err, PLX_INVALID_ARGUMENT, "%s: a header row (line %" PRId64 ") and no data rows", path,
                       first_line);
done:
    free(p.fields);
    if (p.c_locale != (locale_t)0)
        freelocale(p.c_locale);
    free(buf);
    if (st != PLX_OK) {
        csv_table_free(&t);
        return st;
    }
    *out = t;
    return PLX_OK;
}
