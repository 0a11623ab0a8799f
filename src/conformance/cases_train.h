/* The conformance cases of the GPT-2 (tier I: LAYER_NORM, GELU) and
 * training (tier T) ops (cases_train.c). cases.c lists CONF_TRAIN_SUITE at
 * the end of conf_suite; the tables' sizes are constants here so that the
 * entries are constant expressions there (cases_train.c checks them). */
#ifndef DZ_CONFORMANCE_CASES_TRAIN_H
#define DZ_CONFORMANCE_CASES_TRAIN_H

#include "conformance/conformance_impl.h"

/* One op's extern table, builder and describer, with its counts. */
#define CONF_TRAIN_DECLARE(name)                                                       \
    extern const conf_dtype conf_##name##_types[];                                     \
    extern const conf_shape conf_##name##_shapes[];                                    \
    bool conf_build_##name(conf_graph *g, const conf_shape *s, const conf_dtype *t);   \
    void conf_describe_##name(const conf_shape *s, char *buf, size_t size);

CONF_TRAIN_DECLARE(layer_norm)
CONF_TRAIN_DECLARE(gelu)
CONF_TRAIN_DECLARE(mul_mat_back_x)
CONF_TRAIN_DECLARE(mul_mat_back_w)
CONF_TRAIN_DECLARE(sum_cols)
CONF_TRAIN_DECLARE(rms_norm_back)
CONF_TRAIN_DECLARE(layer_norm_back)
CONF_TRAIN_DECLARE(rope_back)
CONF_TRAIN_DECLARE(attention_back)
CONF_TRAIN_DECLARE(swiglu_back)
CONF_TRAIN_DECLARE(gelu_back)
CONF_TRAIN_DECLARE(get_rows_back)
CONF_TRAIN_DECLARE(cross_entropy)
CONF_TRAIN_DECLARE(cross_entropy_back)

/* Table sizes (types, shapes) per op. */
enum {
    CONF_LAYER_NORM_NT = 1, CONF_LAYER_NORM_NS = 7,
    CONF_GELU_NT = 1, CONF_GELU_NS = 5,
    CONF_MUL_MAT_BACK_X_NT = 6, CONF_MUL_MAT_BACK_X_NS = 7,
    CONF_MUL_MAT_BACK_W_NT = 1, CONF_MUL_MAT_BACK_W_NS = 7,
    CONF_SUM_COLS_NT = 1, CONF_SUM_COLS_NS = 6,
    CONF_RMS_NORM_BACK_NT = 1, CONF_RMS_NORM_BACK_NS = 5,
    CONF_LAYER_NORM_BACK_NT = 1, CONF_LAYER_NORM_BACK_NS = 5,
    CONF_ROPE_BACK_NT = 1, CONF_ROPE_BACK_NS = 5,
    CONF_ATTENTION_BACK_NT = 1, CONF_ATTENTION_BACK_NS = 7,
    CONF_SWIGLU_BACK_NT = 1, CONF_SWIGLU_BACK_NS = 4,
    CONF_GELU_BACK_NT = 1, CONF_GELU_BACK_NS = 4,
    CONF_GET_ROWS_BACK_NT = 1, CONF_GET_ROWS_BACK_NS = 4,
    CONF_CROSS_ENTROPY_NT = 1, CONF_CROSS_ENTROPY_NS = 5,
    CONF_CROSS_ENTROPY_BACK_NT = 1, CONF_CROSS_ENTROPY_BACK_NS = 5,
};

#define CONF_TRAIN_OP(OP, name, NAME)                                                          \
    {DZ_OP_##OP, conf_##name##_types, CONF_##NAME##_NT, conf_##name##_shapes, CONF_##NAME##_NS, \
     conf_build_##name, conf_describe_##name}

/* The entries of conf_suite for these ops. */
#define CONF_TRAIN_SUITE                                                                   \
    CONF_TRAIN_OP(LAYER_NORM, layer_norm, LAYER_NORM),                                     \
    CONF_TRAIN_OP(GELU, gelu, GELU),                                                       \
    CONF_TRAIN_OP(MUL_MAT_BACK_X, mul_mat_back_x, MUL_MAT_BACK_X),                         \
    CONF_TRAIN_OP(MUL_MAT_BACK_W, mul_mat_back_w, MUL_MAT_BACK_W),                         \
    CONF_TRAIN_OP(SUM_COLS, sum_cols, SUM_COLS),                                           \
    CONF_TRAIN_OP(RMS_NORM_BACK, rms_norm_back, RMS_NORM_BACK),                            \
    CONF_TRAIN_OP(LAYER_NORM_BACK, layer_norm_back, LAYER_NORM_BACK),                      \
    CONF_TRAIN_OP(ROPE_BACK, rope_back, ROPE_BACK),                                        \
    CONF_TRAIN_OP(ATTENTION_BACK, attention_back, ATTENTION_BACK),                         \
    CONF_TRAIN_OP(SWIGLU_BACK, swiglu_back, SWIGLU_BACK),                                  \
    CONF_TRAIN_OP(GELU_BACK, gelu_back, GELU_BACK),                                        \
    CONF_TRAIN_OP(GET_ROWS_BACK, get_rows_back, GET_ROWS_BACK),                            \
    CONF_TRAIN_OP(CROSS_ENTROPY, cross_entropy, CROSS_ENTROPY),                            \
    CONF_TRAIN_OP(CROSS_ENTROPY_BACK, cross_entropy_back, CROSS_ENTROPY_BACK)

#endif
