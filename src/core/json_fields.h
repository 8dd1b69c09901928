/* json_fields.h - a C struct's fields as the members of a JSON object (cJSON),
 * driven by one table per struct so that what is written is exactly what is
 * read: the model config (models/config_json.c) and a run's training settings
 * (train/run_dir.c).
 *
 *   static const dfn_json_field fields[] = {
 *       DFN_JSON_FIELD("steps", DFN_JSON_LONG, dfn_train_params, steps),
 *       DFN_JSON_FIELD("lr", DFN_JSON_DOUBLE, dfn_train_params, adamw.lr),
 *   };
 *   dfn_json_fields_write(obj, &params, fields, 2);          // in table order
 *   const char *want = dfn_json_field_read(&params, &fields[1], item);
 *   if (want) ... "key 'lr' must be <want>" ...
 */
#ifndef DFN_CORE_JSON_FIELDS_H
#define DFN_CORE_JSON_FIELDS_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef enum {
    DFN_JSON_INT,       /* int: a whole number in int range */
    DFN_JSON_LONG,      /* long: a whole number */
    DFN_JSON_FLOAT,     /* float, written as the shortest decimal that reads back */
    DFN_JSON_DOUBLE,    /* double */
    DFN_JSON_U64,       /* uint64_t: a number up to 2^53, else a decimal string */
    DFN_JSON_INT_ARRAY, /* int[max_count], its length in the int at count_offset */
} dfn_json_type;

typedef struct {
    const char *key;
    dfn_json_type type;
    size_t offset;       /* of the member in the struct */
    size_t count_offset; /* DFN_JSON_INT_ARRAY: of the int counting its entries */
    int max_count;       /* DFN_JSON_INT_ARRAY: the array's capacity */
    int optional;        /* DFN_JSON_INT, DFN_JSON_FLOAT and DFN_JSON_DOUBLE only: written only when
                            not 0, and a reader may find it missing (0 then): a key
                            added later */
} dfn_json_field;

#define DFN_JSON_FIELD(key, type, T, member) {key, type, offsetof(T, member), 0, 0, 0}
#define DFN_JSON_OPTIONAL_INT_FIELD(key, T, member) \
    {key, DFN_JSON_INT, offsetof(T, member), 0, 0, 1}
#define DFN_JSON_OPTIONAL_DOUBLE_FIELD(key, T, member) \
    {key, DFN_JSON_DOUBLE, offsetof(T, member), 0, 0, 1}
#define DFN_JSON_OPTIONAL_FLOAT_FIELD(key, T, member) \
    {key, DFN_JSON_FLOAT, offsetof(T, member), 0, 0, 1}
#define DFN_JSON_INT_ARRAY_FIELD(key, T, member, count, max) \
    {key, DFN_JSON_INT_ARRAY, offsetof(T, member), offsetof(T, count), max, 0}

/* Adds fields[0..n) of the struct at base to the object o, in table order. */
void dfn_json_fields_write(cJSON *o, const void *base, const dfn_json_field *fields, int n);

/* Reads item into the field of the struct at base. NULL on success (also for a
 * missing item, NULL, of an optional field, which keeps its value), else what
 * the value must be ("an integer", "an array of at most 4 integers"), for the
 * caller's message; the field may then be partly written. */
const char *dfn_json_field_read(void *base, const dfn_json_field *f, const cJSON *item);

#endif
