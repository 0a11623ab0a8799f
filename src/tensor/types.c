/* Element-type traits: block sizes and byte sizes of every GGUF/ggml type,
 * including those dizuo cannot compute yet, so that any file's size
 * arithmetic can be checked. The values are facts of the GGUF format. */
#include "dizuo/tensor.h"

#include <ctype.h>
#include <string.h>

enum { QK = 32, QK_K = 256 };

static const dz_type_traits type_traits[DZ_TYPE_COUNT] = {
    [DZ_TYPE_F32] = {"F32", 1, 4, false},
    [DZ_TYPE_F16] = {"F16", 1, 2, false},
    [DZ_TYPE_Q4_0] = {"Q4_0", QK, 2 + QK / 2, true},
    [DZ_TYPE_Q4_1] = {"Q4_1", QK, 4 + QK / 2, true},
    [DZ_TYPE_Q5_0] = {"Q5_0", QK, 2 + 4 + QK / 2, true},
    [DZ_TYPE_Q5_1] = {"Q5_1", QK, 4 + 4 + QK / 2, true},
    [DZ_TYPE_Q8_0] = {"Q8_0", QK, 2 + QK, true},
    [DZ_TYPE_Q8_1] = {"Q8_1", QK, 4 + QK, true},
    [DZ_TYPE_Q2_K] = {"Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 4, true},
    [DZ_TYPE_Q3_K] = {"Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2, true},
    [DZ_TYPE_Q4_K] = {"Q4_K", QK_K, 4 + 12 + QK_K / 2, true},
    [DZ_TYPE_Q5_K] = {"Q5_K", QK_K, 4 + 12 + QK_K / 8 + QK_K / 2, true},
    [DZ_TYPE_Q6_K] = {"Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, true},
    [DZ_TYPE_Q8_K] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2, true},
    [DZ_TYPE_IQ2_XXS] = {"IQ2_XXS", QK_K, 2 + QK_K / 8 * 2, true},
    [DZ_TYPE_IQ2_XS] = {"IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32, true},
    [DZ_TYPE_IQ3_XXS] = {"IQ3_XXS", QK_K, 2 + 3 * QK_K / 8, true},
    [DZ_TYPE_IQ1_S] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, true},
    [DZ_TYPE_IQ4_NL] = {"IQ4_NL", QK, 2 + QK / 2, true},
    [DZ_TYPE_IQ3_S] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64, true},
    [DZ_TYPE_IQ2_S] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32, true},
    [DZ_TYPE_IQ4_XS] = {"IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2, true},
    [DZ_TYPE_I8] = {"I8", 1, 1, false},
    [DZ_TYPE_I16] = {"I16", 1, 2, false},
    [DZ_TYPE_I32] = {"I32", 1, 4, false},
    [DZ_TYPE_I64] = {"I64", 1, 8, false},
    [DZ_TYPE_F64] = {"F64", 1, 8, false},
    [DZ_TYPE_IQ1_M] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, true},
    [DZ_TYPE_BF16] = {"BF16", 1, 2, false},
    [DZ_TYPE_TQ1_0] = {"TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2, true},
    [DZ_TYPE_TQ2_0] = {"TQ2_0", QK_K, QK_K / 4 + 2, true},
    [DZ_TYPE_MXFP4] = {"MXFP4", QK, 1 + QK / 2, true},
};

const dz_type_traits *dz_type_info(int type_id) {
    if (type_id < 0 || type_id >= DZ_TYPE_COUNT) return NULL;
    const dz_type_traits *tt = &type_traits[type_id];
    return tt->name ? tt : NULL;
}

const char *dz_type_name(dz_type t) {
    const dz_type_traits *tt = dz_type_info((int)t);
    return tt ? tt->name : "?";
}

int dz_type_from_name(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < DZ_TYPE_COUNT; i++) {
        const char *n = type_traits[i].name;
        if (!n || strlen(n) != strlen(name)) continue;
        size_t k = 0;
        while (n[k] && toupper((unsigned char)name[k]) == n[k]) k++;
        if (!n[k]) return i;
    }
    return -1;
}

dz_status dz_row_size(dz_type t, int64_t ne0, size_t *out) {
    const dz_type_traits *tt = dz_type_info((int)t);
    if (!tt) return dz_fail(DZ_ERR_FORMAT, "unknown tensor type id %d", (int)t);
    if (ne0 < 0) return dz_fail(DZ_ERR_FORMAT, "negative row length %lld", (long long)ne0);
    if (ne0 % tt->block_size != 0)
        return dz_fail(DZ_ERR_FORMAT, "row of %lld elements is not a multiple of %s's block size %d",
                       (long long)ne0, tt->name, tt->block_size);
    size_t bytes;
    if (dz_mul_overflows((size_t)(ne0 / tt->block_size), tt->type_size, &bytes))
        return dz_fail(DZ_ERR_FORMAT, "row of %lld %s elements overflows", (long long)ne0, tt->name);
    *out = bytes;
    return DZ_OK;
}
