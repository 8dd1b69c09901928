/* json_fields.c - struct fields <-> JSON members, one table for both ways
 * (json_fields.h). */
#include "core/json_fields.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

/* The shortest decimal that reads back as the same float: 1e-06, not
 * 9.9999999747524271e-07 (what the float's exact double value would print as).
 * cJSON then prints that double with 15 digits, which reproduces the decimal. */
static double short_decimal(float v) {
    char buf[32];
    if (!isfinite(v)) return (double)v;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

void dfn_json_fields_write(cJSON *o, const void *base, const dfn_json_field *fields, int n) {
    for (int i = 0; i < n; i++) {
        const dfn_json_field *f = &fields[i];
        const char *p = (const char *)base + f->offset;
        if (f->optional && (f->type == DFN_JSON_DOUBLE  ? *(const double *)p == 0.0
                            : f->type == DFN_JSON_FLOAT ? *(const float *)p == 0.0f
                                                        : *(const int *)p == 0))
            continue;
        switch (f->type) {
        case DFN_JSON_INT: cJSON_AddNumberToObject(o, f->key, *(const int *)p); break;
        case DFN_JSON_LONG: cJSON_AddNumberToObject(o, f->key, (double)*(const long *)p); break;
        case DFN_JSON_FLOAT: cJSON_AddNumberToObject(o, f->key, short_decimal(*(const float *)p)); break;
        case DFN_JSON_DOUBLE: cJSON_AddNumberToObject(o, f->key, *(const double *)p); break;
        case DFN_JSON_U64: {
            const uint64_t v = *(const uint64_t *)p;
            if (v <= (1ull << 53)) {
                cJSON_AddNumberToObject(o, f->key, (double)v);
            } else {
                char text[24];
                snprintf(text, sizeof text, "%llu", (unsigned long long)v);
                cJSON_AddStringToObject(o, f->key, text);
            }
            break;
        }
        case DFN_JSON_INT_ARRAY: {
            const int count = *(const int *)((const char *)base + f->count_offset);
            DFN_ASSERT(count >= 0 && count <= f->max_count);
            cJSON *arr = cJSON_AddArrayToObject(o, f->key);
            DFN_ASSERT(arr);
            for (int j = 0; j < count; j++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(((const int *)p)[j]));
            break;
        }
        }
    }
}

/* A JSON number that is a whole number in [lo, hi]. */
static int whole(const cJSON *item, double lo, double hi, double *out) {
    if (!cJSON_IsNumber(item)) return 0;
    const double d = item->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d)) return 0;
    *out = d;
    return 1;
}

const char *dfn_json_field_read(void *base, const dfn_json_field *f, const cJSON *item) {
    if (!item && f->optional) return NULL; /* a key added later: the field keeps its default */
    char *p = (char *)base + f->offset;
    double d;
    switch (f->type) {
    case DFN_JSON_INT:
        if (!whole(item, INT_MIN, INT_MAX, &d)) return "an integer";
        *(int *)p = (int)d;
        return NULL;
    case DFN_JSON_LONG: /* whole numbers a double holds exactly, within long */
        if (!whole(item, (double)LONG_MIN < -0x1p53 ? -0x1p53 : (double)LONG_MIN,
                   (double)LONG_MAX > 0x1p53 ? 0x1p53 : (double)LONG_MAX, &d))
            return "an integer";
        *(long *)p = (long)d;
        return NULL;
    case DFN_JSON_FLOAT: /* cJSON reads 1e999 as Inf; 1e39 is Inf as a float */
        if (!cJSON_IsNumber(item) || !isfinite((float)item->valuedouble)) return "a finite number";
        *(float *)p = (float)item->valuedouble;
        return NULL;
    case DFN_JSON_DOUBLE:
        if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) return "a finite number";
        *(double *)p = item->valuedouble;
        return NULL;
    case DFN_JSON_U64:
        if (cJSON_IsString(item)) {
            char *end;
            const char *s = item->valuestring;
            if (*s < '0' || *s > '9') return "a non-negative integer";
            *(uint64_t *)p = strtoull(s, &end, 10);
            return *end == 0 ? NULL : "a non-negative integer";
        }
        if (!whole(item, 0, 0x1p53, &d)) return "a non-negative integer";
        *(uint64_t *)p = (uint64_t)d;
        return NULL;
    case DFN_JSON_INT_ARRAY: {
        if (!cJSON_IsArray(item)) return "an array of integers";
        static _Thread_local char want[64];
        if (cJSON_GetArraySize(item) > f->max_count) {
            snprintf(want, sizeof want, "an array of at most %d integers, not %d", f->max_count,
                     cJSON_GetArraySize(item));
            return want;
        }
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, item) {
            if (!whole(e, INT_MIN, INT_MAX, &d)) return "an array of integers";
            ((int *)p)[n++] = (int)d;
        }
        *(int *)((char *)base + f->count_offset) = n;
        return NULL;
    }
    }
    return "known to this version";
}
