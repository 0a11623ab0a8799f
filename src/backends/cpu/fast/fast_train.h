/* The fast path of the training ops that dominate a training step
 * (fast_train.c): MUL_MAT_BACK_X, MUL_MAT_BACK_W (packed float GEMMs),
 * ATTENTION_BACK and CROSS_ENTROPY(_BACK); GELU, GELU_BACK and SWIGLU_BACK
 * (fast_train_ew.c). The other training ops run the reference kernels
 * inside the fast run. */
#ifndef DZ_CPU_FAST_TRAIN_H
#define DZ_CPU_FAST_TRAIN_H

#include "backends/cpu/fast/fast.h"

/* Plans t->node (a training op the CPU supports): fills t->fn and the
 * scratch sizes. false: the reference kernel runs it (ops without a fast
 * kernel, layouts or ISA levels the fast kernels do not take). */
bool dz_fast_plan_train(dz_fast_task *t);
/* ATTENTION_BACK as per-head GEMMs (fast_train_attn.c): false when its
 * scratch would be too large (then fast_train.c's row-wise form runs). */
bool dz_fast_attn_back_gemm_plan(dz_fast_task *t);
/* GELU, GELU_BACK, SWIGLU_BACK (fast_train_ew.c), same contract. */
bool dz_fast_plan_train_ew(dz_fast_task *t);

#endif
