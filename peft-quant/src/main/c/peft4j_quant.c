/*
 * Native 4-bit kernels of peft-quant (Linux x86-64): the GEMVs of batch-1 products, the
 * dequantizer that fills the float tiles of batched products, and the fused product
 * g · dequant(W)^T for batches of up to 64 rows, called through JNI by
 * org.peft4j.quant.internal.NativeKernels.
 *
 * Why native: on Java 17, C2 compiles the 4-bit table lookups to one scalar load per weight
 * (about one cycle per weight), and the incubating Vector API's in-register table lookups are not
 * intrinsified there. AVX-512 does the 16-entry lookup for 16 weights in one vpermps, so the
 * batch-1 product becomes bound by reading the 4-bit codes, as it is on the GPU, and a tile of a
 * batched product is filled at a fraction of the cost of multiplying with it.
 *
 * Contract (checked by the Java caller before every call; nothing here checks bounds):
 *   W [nIn, nOut] row-major, two codes per byte, the first in the high nibble;
 *   blocks of 2^blockShift consecutive codes, blockShift >= 5, nOut a multiple of the block size,
 *   so every block lies inside one row; column and row ranges are multiples of the block size.
 * The scale of block b is absmax[b] when plain, else map[codes[b]] * nested[b >> nestedShift] + offset,
 * in float32 in that order (BlockScales.get).
 *
 * Built with gcc by peft-quant's pom (profile native-linux-x86_64) without -m flags: each kernel
 * carries its own target attribute, and cpuLevel says which ones this CPU can run.
 */
#include <jni.h>
#include <stdint.h>
#include <string.h>
#include <immintrin.h>

#define LEVEL_NONE 0
#define LEVEL_AVX2 1
#define LEVEL_AVX512 2
#define RESULT_DONE 0
#define RESULT_NOT_PINNED 1
#define RESULT_OUTPUT_COPIED 2

typedef struct {
    const float *absmax;       /* plain scales, or NULL */
    const uint8_t *codes;      /* nested: 8-bit codes per block */
    const float *nested;       /* nested: second-level absmax */
    const float *map;          /* nested: 256-entry code map */
    float offset;
    int nestedShift;
} scales_t;

static inline float scale_of(const scales_t *s, int64_t b) {
    if (s->absmax) {
        return s->absmax[b];
    }
    return s->map[s->codes[b]] * s->nested[b >> s->nestedShift] + s->offset;
}

static int cpu_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        return LEVEL_AVX512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        return LEVEL_AVX2;
    }
    return LEVEL_NONE;
}

/* ---- AVX-512: 16 weights per vpermps ---- */

/* Sixteen codes (8 bytes at p) as 16 int32 indices, element order; only the low 4 bits are meaningful. */
__attribute__((target("avx512f")))
static inline __m512i idx16_512(const uint8_t *p) {
    __m128i v = _mm_loadl_epi64((const __m128i *) p);
    __m128i hi = _mm_srli_epi16(v, 4);           /* low nibble of each byte = its high code */
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(hi, v));
}

__attribute__((target("avx512f")))
static void gemv_512(const uint8_t *packed, const scales_t *sc, int shift, const float *table,
                     int nIn, int nOut, const float *x, float *y, int j0, int j1) {
    const __m512 t = _mm512_loadu_ps(table);
    const int bs = 1 << shift;
    memset(y + j0, 0, sizeof(float) * (size_t) (j1 - j0));
    int i = 0;
    /* Two rows per pass: y is loaded and stored once per two rows. */
    for (; i + 1 < nIn; i += 2) {
        const int64_t r0 = (int64_t) i * nOut;
        const int64_t r1 = r0 + nOut;
        for (int jb = j0; jb < j1; jb += bs) {
            const __m512 s0 = _mm512_set1_ps(x[i] * scale_of(sc, (r0 + jb) >> shift));
            const __m512 s1 = _mm512_set1_ps(x[i + 1] * scale_of(sc, (r1 + jb) >> shift));
            const uint8_t *p0 = packed + ((r0 + jb) >> 1);
            const uint8_t *p1 = packed + ((r1 + jb) >> 1);
            float *yj = y + jb;
            for (int k = 0; k < bs; k += 16) {
                __m512 w0 = _mm512_permutexvar_ps(idx16_512(p0 + (k >> 1)), t);
                __m512 w1 = _mm512_permutexvar_ps(idx16_512(p1 + (k >> 1)), t);
                __m512 acc = _mm512_loadu_ps(yj + k);
                acc = _mm512_fmadd_ps(w0, s0, acc);
                acc = _mm512_fmadd_ps(w1, s1, acc);
                _mm512_storeu_ps(yj + k, acc);
            }
        }
    }
    for (; i < nIn; i++) {
        const int64_t r0 = (int64_t) i * nOut;
        for (int jb = j0; jb < j1; jb += bs) {
            const __m512 s0 = _mm512_set1_ps(x[i] * scale_of(sc, (r0 + jb) >> shift));
            const uint8_t *p0 = packed + ((r0 + jb) >> 1);
            float *yj = y + jb;
            for (int k = 0; k < bs; k += 16) {
                __m512 w0 = _mm512_permutexvar_ps(idx16_512(p0 + (k >> 1)), t);
                _mm512_storeu_ps(yj + k, _mm512_fmadd_ps(w0, s0, _mm512_loadu_ps(yj + k)));
            }
        }
    }
}

__attribute__((target("avx512f")))
static void gemv_t_512(const uint8_t *packed, const scales_t *sc, int shift, const float *table,
                       int nOut, const float *g, float *out, int i0, int i1) {
    const __m512 t = _mm512_loadu_ps(table);
    const int bs = 1 << shift;
    for (int i = i0; i < i1; i++) {
        const int64_t r = (int64_t) i * nOut;
        __m512 acc = _mm512_setzero_ps();
        for (int jb = 0; jb < nOut; jb += bs) {
            const uint8_t *p = packed + ((r + jb) >> 1);
            /* Two chains per block: the block is at least 32 codes. */
            __m512 e0 = _mm512_setzero_ps();
            __m512 e1 = _mm512_setzero_ps();
            for (int k = 0; k < bs; k += 32) {
                e0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx16_512(p + (k >> 1)), t),
                                     _mm512_loadu_ps(g + jb + k), e0);
                e1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx16_512(p + (k >> 1) + 8), t),
                                     _mm512_loadu_ps(g + jb + k + 16), e1);
            }
            acc = _mm512_fmadd_ps(_mm512_add_ps(e0, e1), _mm512_set1_ps(scale_of(sc, (r + jb) >> shift)), acc);
        }
        out[i] = _mm512_reduce_add_ps(acc);
    }
}

/*
 * out[i * cols + j] = dequant(W)[r0 + i, c0 + j] for i < rows, j < cols (W has nOut columns); c0
 * and cols are multiples of the block size.
 */
__attribute__((target("avx512f")))
static void dequant_512(const uint8_t *packed, const scales_t *sc, int shift, const float *table, int nOut,
                        int r0, int rows, int c0, int cols, float *out) {
    const __m512 t = _mm512_loadu_ps(table);
    const int bs = 1 << shift;
    for (int i = 0; i < rows; i++) {
        const int64_t row = (int64_t) (r0 + i) * nOut + c0;
        float *o = out + (int64_t) i * cols;
        for (int jb = 0; jb < cols; jb += bs) {
            const __m512 s = _mm512_set1_ps(scale_of(sc, (row + jb) >> shift));
            const uint8_t *p = packed + ((row + jb) >> 1);
            for (int k = 0; k < bs; k += 16) {
                _mm512_storeu_ps(o + jb + k, _mm512_mul_ps(_mm512_permutexvar_ps(idx16_512(p + (k >> 1)), t), s));
            }
        }
    }
}

/*
 * Fused out = g · dequant(W)^T for a batch of at most 64 rows (the input gradient of a 4-bit
 * layer), rows [i0, i1) of W: out[b * sb + i * si] = sum_k g[b][k] · W[i][k].
 *
 * Why not dequantized tiles and BLAS, as the larger batches do: with few rows of g the product
 * is bound by moving the tile, not by flops. A tile filled by one core and packed by BLAS's
 * worker on the other travels between their caches, and filling it evicts what BLAS is working
 * on; measured at batch 64, 4096 x 4096 on two cores, fill plus BLAS took 15.8 ms where BLAS
 * alone took 10.0 and the fill 2.0. Here each core dequantizes six rows of W at a time, 256
 * columns per step, into a 6 KB scratch that stays in L1, and multiplies them with the batch
 * held transposed (gT[k][b], the batch in the vector lanes): per k, NB vectors of gT and six
 * broadcast weights feed 6 · NB independent FMA chains held in registers (24 accumulators at
 * NB = 4). The Java caller transposes the batch once and hands out chunks of rows to threads,
 * so every weight is dequantized on the core that uses it.
 */
#define GT_ROWS 6
#define GT_KC 256

__attribute__((target("avx512f"), always_inline))
static inline void gemm_t_strips_512(const uint8_t *packed, const scales_t *sc, int shift, const float *table,
                                     int K, const float *gT, const int NB, int B, float *out, int64_t sb,
                                     int64_t si, int i0, int i1) {
    const __m512 t = _mm512_loadu_ps(table);
    const int W = NB * 16;
    float wd[GT_ROWS][GT_KC] __attribute__((aligned(64)));
    float accs[GT_ROWS][64] __attribute__((aligned(64)));
    for (int i = i0; i < i1; i += GT_ROWS) {
        /* a short last strip repeats its last row; only its rr rows are stored */
        const int rr = i1 - i < GT_ROWS ? i1 - i : GT_ROWS;
        __m512 acc[GT_ROWS][4];
#pragma GCC unroll 6
        for (int r = 0; r < GT_ROWS; r++) {
#pragma GCC unroll 4
            for (int q = 0; q < NB; q++) {
                acc[r][q] = _mm512_setzero_ps();
            }
        }
        for (int k0 = 0; k0 < K; k0 += GT_KC) {
            const int kc = K - k0 < GT_KC ? K - k0 : GT_KC;
            for (int r = 0; r < GT_ROWS; r++) {
                const int64_t base = (int64_t) (i + (r < rr ? r : rr - 1)) * K + k0;
                const uint8_t *p = packed + (base >> 1);
                for (int k = 0; k < kc; k += 16) {
                    const __m512 s = _mm512_set1_ps(scale_of(sc, (base + k) >> shift));
                    _mm512_store_ps(&wd[r][k], _mm512_mul_ps(_mm512_permutexvar_ps(idx16_512(p + (k >> 1)), t), s));
                }
            }
            const float *gp = gT + (int64_t) k0 * W;
            for (int k = 0; k < kc; k++, gp += W) {
                __m512 gv[4];
#pragma GCC unroll 4
                for (int q = 0; q < NB; q++) {
                    gv[q] = _mm512_load_ps(gp + 16 * q);
                }
#pragma GCC unroll 6
                for (int r = 0; r < GT_ROWS; r++) {
                    const __m512 w = _mm512_set1_ps(wd[r][k]);
#pragma GCC unroll 4
                    for (int q = 0; q < NB; q++) {
                        acc[r][q] = _mm512_fmadd_ps(w, gv[q], acc[r][q]);
                    }
                }
            }
        }
#pragma GCC unroll 6
        for (int r = 0; r < GT_ROWS; r++) {
#pragma GCC unroll 4
            for (int q = 0; q < NB; q++) {
                _mm512_store_ps(&accs[r][16 * q], acc[r][q]);
            }
        }
        for (int r = 0; r < rr; r++) {
            float *o = out + (int64_t) (i + r) * si;
            for (int b = 0; b < B; b++) {
                o[b * sb] = accs[r][b];
            }
        }
    }
}

/* One instance per register width of the batch (NB vectors of 16 rows), so the accumulators are registers. */
#define GEMM_T_512_NB(nb) \
    __attribute__((target("avx512f"))) \
    static void gemm_t_512_##nb(const uint8_t *packed, const scales_t *sc, int shift, const float *table, int K, \
                                const float *gT, int B, float *out, int64_t sb, int64_t si, int i0, int i1) { \
        gemm_t_strips_512(packed, sc, shift, table, K, gT, nb, B, out, sb, si, i0, i1); \
    }
GEMM_T_512_NB(1)
GEMM_T_512_NB(2)
GEMM_T_512_NB(3)
GEMM_T_512_NB(4)

/* The width of gT for a batch: the batch rounded up to whole 16-float vectors. */
static int gemm_t_width(int B) {
    return (B + 15) / 16 * 16;
}

/* gT[k][b] = g[b * gb + k * gk] for b < B <= 64, zero for B <= b < gemm_t_width(B). */
static void gemm_t_transpose(const float *g, int64_t gb, int64_t gk, int B, int K, float *gT) {
    const int W = gemm_t_width(B);
    for (int b = 0; b < W; b++) {
        const float *gr = g + b * gb;
        for (int k = 0; k < K; k++) {
            gT[(int64_t) k * W + b] = b < B ? gr[k * gk] : 0.0f;
        }
    }
}

/* Runs the kernel for the batch's width; gT as gemm_t_transpose writes it, 64-byte aligned. */
static void gemm_t_512(const uint8_t *packed, const scales_t *sc, int shift, const float *table, int K,
                       const float *gT, int B, float *out, int64_t sb, int64_t si, int i0, int i1) {
    switch (gemm_t_width(B) / 16) {
        case 1: gemm_t_512_1(packed, sc, shift, table, K, gT, B, out, sb, si, i0, i1); break;
        case 2: gemm_t_512_2(packed, sc, shift, table, K, gT, B, out, sb, si, i0, i1); break;
        case 3: gemm_t_512_3(packed, sc, shift, table, K, gT, B, out, sb, si, i0, i1); break;
        default: gemm_t_512_4(packed, sc, shift, table, K, gT, B, out, sb, si, i0, i1); break;
    }
}

/*
 * Fused y = x · dequant(W) for a batch of at most 64 rows, columns [j0, j1) (multiples of 64):
 * y[b * ldy + j] = sum_i x[b * xb + i * xi] · W[i][j]. The same reasons as gemm_t_512: each core
 * dequantizes 64 rows by 64 columns of W at a time into a 16 KB scratch that stays in L1 and
 * multiplies them with six rows of x at a time (the columns in the vector lanes, a broadcast x
 * value per row, 24 FMA chains in registers), accumulating in y from one 64-row chunk to the next.
 * Measured standalone on one core: [32, 1024] · [1024, 1024] in 0.46 ms (146 GFLOPS), where
 * BLAS on dequantized tiles took 0.70 ms plus the fill.
 */
#define MM_ROWS 6
#define MM_KC 64

__attribute__((target("avx512f")))
static void mm_512(const uint8_t *packed, const scales_t *sc, int shift, const float *table, int nIn, int nOut,
                   const float *x, int64_t xb, int64_t xi, int B, float *y, int64_t ldy, int j0, int j1) {
    const __m512 t = _mm512_loadu_ps(table);
    float wd[MM_KC][64] __attribute__((aligned(64)));
    for (int j = j0; j < j1; j += 64) {
        for (int i0 = 0; i0 < nIn; i0 += MM_KC) {
            const int kc = nIn - i0 < MM_KC ? nIn - i0 : MM_KC;
            for (int i = 0; i < kc; i++) {
                const int64_t base = (int64_t) (i0 + i) * nOut + j;
                const uint8_t *p = packed + (base >> 1);
#pragma GCC unroll 4
                for (int k = 0; k < 64; k += 16) {
                    const __m512 s = _mm512_set1_ps(scale_of(sc, (base + k) >> shift));
                    _mm512_store_ps(&wd[i][k], _mm512_mul_ps(_mm512_permutexvar_ps(idx16_512(p + (k >> 1)), t), s));
                }
            }
            for (int b0 = 0; b0 < B; b0 += MM_ROWS) {
                /* a short last group repeats its last row; only its rr rows are stored */
                const int rr = B - b0 < MM_ROWS ? B - b0 : MM_ROWS;
                __m512 acc[MM_ROWS][4];
                const float *xr[MM_ROWS];
#pragma GCC unroll 6
                for (int r = 0; r < MM_ROWS; r++) {
                    const int64_t row = b0 + (r < rr ? r : rr - 1);
                    xr[r] = x + row * xb + (int64_t) i0 * xi;
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++) {
                        acc[r][q] = i0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(y + row * ldy + j + 16 * q);
                    }
                }
                for (int i = 0; i < kc; i++) {
                    const __m512 w0 = _mm512_load_ps(&wd[i][0]);
                    const __m512 w1 = _mm512_load_ps(&wd[i][16]);
                    const __m512 w2 = _mm512_load_ps(&wd[i][32]);
                    const __m512 w3 = _mm512_load_ps(&wd[i][48]);
#pragma GCC unroll 6
                    for (int r = 0; r < MM_ROWS; r++) {
                        const __m512 xv = _mm512_set1_ps(xr[r][i * xi]);
                        acc[r][0] = _mm512_fmadd_ps(xv, w0, acc[r][0]);
                        acc[r][1] = _mm512_fmadd_ps(xv, w1, acc[r][1]);
                        acc[r][2] = _mm512_fmadd_ps(xv, w2, acc[r][2]);
                        acc[r][3] = _mm512_fmadd_ps(xv, w3, acc[r][3]);
                    }
                }
                for (int r = 0; r < rr; r++) {
#pragma GCC unroll 4
                    for (int q = 0; q < 4; q++) {
                        _mm512_storeu_ps(y + (int64_t) (b0 + r) * ldy + j + 16 * q, acc[r][q]);
                    }
                }
            }
        }
    }
}

/* ---- AVX2 + FMA: 8 weights per pair of vpermps, blended on bit 3 of the code ---- */

__attribute__((target("avx2,fma")))
static inline __m256 lookup8_256(const uint8_t *p, __m256 tlo, __m256 thi) {
    int32_t four;
    memcpy(&four, p, sizeof four);                          /* 4 bytes = 8 codes, any alignment */
    __m128i v = _mm_cvtsi32_si128(four);
    __m128i hi = _mm_srli_epi16(v, 4);
    __m256i idx = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(hi, v));
    __m256 lo = _mm256_permutevar8x32_ps(tlo, idx);
    __m256 up = _mm256_permutevar8x32_ps(thi, idx);
    return _mm256_blendv_ps(lo, up, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

__attribute__((target("avx2,fma")))
static void gemv_256(const uint8_t *packed, const scales_t *sc, int shift, const float *table,
                     int nIn, int nOut, const float *x, float *y, int j0, int j1) {
    const __m256 tlo = _mm256_loadu_ps(table);
    const __m256 thi = _mm256_loadu_ps(table + 8);
    const int bs = 1 << shift;
    memset(y + j0, 0, sizeof(float) * (size_t) (j1 - j0));
    for (int i = 0; i < nIn; i++) {
        const int64_t r0 = (int64_t) i * nOut;
        for (int jb = j0; jb < j1; jb += bs) {
            const __m256 s0 = _mm256_set1_ps(x[i] * scale_of(sc, (r0 + jb) >> shift));
            const uint8_t *p0 = packed + ((r0 + jb) >> 1);
            float *yj = y + jb;
            for (int k = 0; k < bs; k += 8) {
                __m256 w0 = lookup8_256(p0 + (k >> 1), tlo, thi);
                _mm256_storeu_ps(yj + k, _mm256_fmadd_ps(w0, s0, _mm256_loadu_ps(yj + k)));
            }
        }
    }
}

__attribute__((target("avx2,fma")))
static void gemv_t_256(const uint8_t *packed, const scales_t *sc, int shift, const float *table,
                       int nOut, const float *g, float *out, int i0, int i1) {
    const __m256 tlo = _mm256_loadu_ps(table);
    const __m256 thi = _mm256_loadu_ps(table + 8);
    const int bs = 1 << shift;
    for (int i = i0; i < i1; i++) {
        const int64_t r = (int64_t) i * nOut;
        __m256 acc = _mm256_setzero_ps();
        for (int jb = 0; jb < nOut; jb += bs) {
            const uint8_t *p = packed + ((r + jb) >> 1);
            __m256 e0 = _mm256_setzero_ps();
            __m256 e1 = _mm256_setzero_ps();
            for (int k = 0; k < bs; k += 16) {
                e0 = _mm256_fmadd_ps(lookup8_256(p + (k >> 1), tlo, thi), _mm256_loadu_ps(g + jb + k), e0);
                e1 = _mm256_fmadd_ps(lookup8_256(p + (k >> 1) + 4, tlo, thi), _mm256_loadu_ps(g + jb + k + 8), e1);
            }
            acc = _mm256_fmadd_ps(_mm256_add_ps(e0, e1), _mm256_set1_ps(scale_of(sc, (r + jb) >> shift)), acc);
        }
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        out[i] = _mm_cvtss_f32(h);
    }
}

__attribute__((target("avx2,fma")))
static void dequant_256(const uint8_t *packed, const scales_t *sc, int shift, const float *table, int nOut,
                        int r0, int rows, int c0, int cols, float *out) {
    const __m256 tlo = _mm256_loadu_ps(table);
    const __m256 thi = _mm256_loadu_ps(table + 8);
    const int bs = 1 << shift;
    for (int i = 0; i < rows; i++) {
        const int64_t row = (int64_t) (r0 + i) * nOut + c0;
        float *o = out + (int64_t) i * cols;
        for (int jb = 0; jb < cols; jb += bs) {
            const __m256 s = _mm256_set1_ps(scale_of(sc, (row + jb) >> shift));
            const uint8_t *p = packed + ((row + jb) >> 1);
            for (int k = 0; k < bs; k += 8) {
                _mm256_storeu_ps(o + jb + k, _mm256_mul_ps(lookup8_256(p + (k >> 1), tlo, thi), s));
            }
        }
    }
}

/* ---- JNI ---- */

JNIEXPORT jint JNICALL Java_org_peft4j_quant_internal_NativeKernels_cpuLevel(JNIEnv *env, jclass cls) {
    (void) env;
    (void) cls;
    return cpu_level();
}

/*
 * Pins the arrays (GetPrimitiveArrayCritical: no copy, GC held off for the call), runs, releases.
 * The input and output arrays are optional (NULL when a call writes native memory instead).
 */
typedef struct {
    jbyteArray packedA, codesA;
    jfloatArray absmaxA, nestedA, mapA, tableA, inA, outA;
    void *packed, *codes, *absmax, *nested, *map, *table, *in, *out;
    jboolean outCopied;
} pinned_t;

static int pin(JNIEnv *env, pinned_t *p) {
    p->packed = (*env)->GetPrimitiveArrayCritical(env, p->packedA, NULL);
    p->absmax = p->absmaxA ? (*env)->GetPrimitiveArrayCritical(env, p->absmaxA, NULL) : NULL;
    p->codes = p->codesA ? (*env)->GetPrimitiveArrayCritical(env, p->codesA, NULL) : NULL;
    p->nested = p->nestedA ? (*env)->GetPrimitiveArrayCritical(env, p->nestedA, NULL) : NULL;
    p->map = p->mapA ? (*env)->GetPrimitiveArrayCritical(env, p->mapA, NULL) : NULL;
    p->table = (*env)->GetPrimitiveArrayCritical(env, p->tableA, NULL);
    p->in = p->inA ? (*env)->GetPrimitiveArrayCritical(env, p->inA, NULL) : NULL;
    p->out = p->outA ? (*env)->GetPrimitiveArrayCritical(env, p->outA, &p->outCopied) : NULL;
    return p->packed && p->table && (!p->inA || p->in) && (!p->outA || p->out) && (p->absmaxA ? p->absmax != NULL
            : (p->codes && p->nested && p->map));
}

static void unpin(JNIEnv *env, pinned_t *p, jint outMode) {
    /* Reverse order; the inputs are released unchanged (JNI_ABORT). */
    if (p->out) (*env)->ReleasePrimitiveArrayCritical(env, p->outA, p->out, outMode);
    if (p->in) (*env)->ReleasePrimitiveArrayCritical(env, p->inA, p->in, JNI_ABORT);
    if (p->table) (*env)->ReleasePrimitiveArrayCritical(env, p->tableA, p->table, JNI_ABORT);
    if (p->map) (*env)->ReleasePrimitiveArrayCritical(env, p->mapA, p->map, JNI_ABORT);
    if (p->nested) (*env)->ReleasePrimitiveArrayCritical(env, p->nestedA, p->nested, JNI_ABORT);
    if (p->codes) (*env)->ReleasePrimitiveArrayCritical(env, p->codesA, p->codes, JNI_ABORT);
    if (p->absmax) (*env)->ReleasePrimitiveArrayCritical(env, p->absmaxA, p->absmax, JNI_ABORT);
    if (p->packed) (*env)->ReleasePrimitiveArrayCritical(env, p->packedA, p->packed, JNI_ABORT);
}

static scales_t scales_from(pinned_t *p, jfloat offset, jint nestedShift) {
    scales_t s;
    s.absmax = (const float *) p->absmax;
    s.codes = (const uint8_t *) p->codes;
    s.nested = (const float *) p->nested;
    s.map = (const float *) p->map;
    s.offset = offset;
    s.nestedShift = nestedShift;
    return s;
}

/*
 * lvl is the kernel to run (LEVEL_AVX2 or LEVEL_AVX512, at most what cpuLevel reported: the Java
 * caller checks). Returns RESULT_DONE, RESULT_NOT_PINNED (out of memory), or RESULT_OUTPUT_COPIED
 * without computing anything: a JVM that hands out a copy of the output would have each parallel
 * task write back the whole array over the other tasks' columns (HotSpot never copies here).
 */
JNIEXPORT jint JNICALL Java_org_peft4j_quant_internal_NativeKernels_gemv0(JNIEnv *env, jclass cls,
        jint lvl, jbyteArray packed, jfloatArray absmax, jbyteArray codes, jfloatArray nested, jfloatArray map,
        jfloat offset, jint nestedShift, jint blockShift, jfloatArray table, jint nIn, jint nOut,
        jfloatArray x, jint xOff, jfloatArray y, jint yOff, jint j0, jint j1) {
    pinned_t p = {packed, codes, absmax, nested, map, table, x, y, 0, 0, 0, 0, 0, 0, 0, 0, JNI_FALSE};
    jint status = pin(env, &p) ? (p.outCopied ? RESULT_OUTPUT_COPIED : RESULT_DONE) : RESULT_NOT_PINNED;
    (void) cls;
    if (status == RESULT_DONE) {
        scales_t s = scales_from(&p, offset, nestedShift);
        float *yy = (float *) p.out + yOff;
        const float *xx = (const float *) p.in + xOff;
        if (lvl == LEVEL_AVX512) {
            gemv_512((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nIn, nOut, xx, yy, j0, j1);
        } else {
            gemv_256((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nIn, nOut, xx, yy, j0, j1);
        }
    }
    unpin(env, &p, status == RESULT_DONE ? 0 : JNI_ABORT);
    return status;
}

JNIEXPORT jint JNICALL Java_org_peft4j_quant_internal_NativeKernels_gemvTransposed0(JNIEnv *env, jclass cls,
        jint lvl, jbyteArray packed, jfloatArray absmax, jbyteArray codes, jfloatArray nested, jfloatArray map,
        jfloat offset, jint nestedShift, jint blockShift, jfloatArray table, jint nOut,
        jfloatArray g, jint gOff, jfloatArray out, jint outOff, jint i0, jint i1) {
    pinned_t p = {packed, codes, absmax, nested, map, table, g, out, 0, 0, 0, 0, 0, 0, 0, 0, JNI_FALSE};
    jint status = pin(env, &p) ? (p.outCopied ? RESULT_OUTPUT_COPIED : RESULT_DONE) : RESULT_NOT_PINNED;
    (void) cls;
    if (status == RESULT_DONE) {
        scales_t s = scales_from(&p, offset, nestedShift);
        float *oo = (float *) p.out + outOff;
        const float *gg = (const float *) p.in + gOff;
        if (lvl == LEVEL_AVX512) {
            gemv_t_512((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nOut, gg, oo, i0, i1);
        } else {
            gemv_t_256((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nOut, gg, oo, i0, i1);
        }
    }
    unpin(env, &p, status == RESULT_DONE ? 0 : JNI_ABORT);
    return status;
}

/*
 * Dequantizes the rectangle rows [r0, r0 + rows) x columns [c0, c0 + cols) of W into the native
 * float buffer at address out (an ND4J array's host memory), row-major with leading dimension cols.
 * lvl as for gemv0. Returns RESULT_DONE or RESULT_NOT_PINNED; the output is not a Java array, so it
 * is never copied.
 */
JNIEXPORT jint JNICALL Java_org_peft4j_quant_internal_NativeKernels_dequantize0(JNIEnv *env, jclass cls,
        jint lvl, jbyteArray packed, jfloatArray absmax, jbyteArray codes, jfloatArray nested, jfloatArray map,
        jfloat offset, jint nestedShift, jint blockShift, jfloatArray table, jint nOut,
        jint r0, jint rows, jint c0, jint cols, jlong out) {
    pinned_t p = {packed, codes, absmax, nested, map, table, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, JNI_FALSE};
    jint status = pin(env, &p) ? RESULT_DONE : RESULT_NOT_PINNED;
    (void) cls;
    if (status == RESULT_DONE) {
        scales_t s = scales_from(&p, offset, nestedShift);
        float *o = (float *) (intptr_t) out;
        if (lvl == LEVEL_AVX512) {
            dequant_512((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nOut, r0, rows, c0, cols, o);
        } else {
            dequant_256((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nOut, r0, rows, c0, cols, o);
        }
    }
    unpin(env, &p, JNI_ABORT);
    return status;
}

/*
 * Writes the transposed, zero-padded batch gT (native address, gemm_t_width(batch) * K floats,
 * 64-byte aligned) from g[b * gb + k * gk] (native address); the Java caller checks the sizes.
 */
JNIEXPORT void JNICALL Java_org_peft4j_quant_internal_NativeKernels_transposeBatch0(JNIEnv *env, jclass cls,
        jlong g, jlong gb, jlong gk, jint batch, jint K, jlong gT) {
    (void) env;
    (void) cls;
    gemm_t_transpose((const float *) (intptr_t) g, gb, gk, batch, K, (float *) (intptr_t) gT);
}

/*
 * The fused g · dequant(W)^T of rows [i0, i1) for a batch of at most 64 (AVX-512 only; the Java
 * caller checks the level, the shapes and the buffers' sizes), from gT as transposeBatch0 wrote
 * it, into out[b * sb + i * si] (native address). Returns RESULT_DONE or RESULT_NOT_PINNED.
 */
JNIEXPORT jint JNICALL Java_org_peft4j_quant_internal_NativeKernels_gemmTransposed0(JNIEnv *env, jclass cls,
        jbyteArray packed, jfloatArray absmax, jbyteArray codes, jfloatArray nested, jfloatArray map,
        jfloat offset, jint nestedShift, jint blockShift, jfloatArray table, jint nOut,
        jlong gT, jint batch, jlong out, jlong sb, jlong si, jint i0, jint i1) {
    pinned_t p = {packed, codes, absmax, nested, map, table, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, JNI_FALSE};
    jint status = pin(env, &p) ? RESULT_DONE : RESULT_NOT_PINNED;
    (void) cls;
    if (status == RESULT_DONE) {
        scales_t s = scales_from(&p, offset, nestedShift);
        gemm_t_512((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nOut,
                   (const float *) (intptr_t) gT, batch, (float *) (intptr_t) out, sb, si, i0, i1);
    }
    unpin(env, &p, JNI_ABORT);
    return status;
}

/*
 * The fused x · dequant(W) of columns [j0, j1) (multiples of 64) for a batch of at most 64
 * (AVX-512 only; the Java caller checks the level, the shapes and the buffers' sizes). x and y
 * are native addresses (ND4J arrays). Returns RESULT_DONE or RESULT_NOT_PINNED.
 */
JNIEXPORT jint JNICALL Java_org_peft4j_quant_internal_NativeKernels_mmulFused0(JNIEnv *env, jclass cls,
        jbyteArray packed, jfloatArray absmax, jbyteArray codes, jfloatArray nested, jfloatArray map,
        jfloat offset, jint nestedShift, jint blockShift, jfloatArray table, jint nIn, jint nOut,
        jlong x, jlong xb, jlong xi, jint batch, jlong y, jlong ldy, jint j0, jint j1) {
    pinned_t p = {packed, codes, absmax, nested, map, table, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, JNI_FALSE};
    jint status = pin(env, &p) ? RESULT_DONE : RESULT_NOT_PINNED;
    (void) cls;
    if (status == RESULT_DONE) {
        scales_t s = scales_from(&p, offset, nestedShift);
        mm_512((const uint8_t *) p.packed, &s, blockShift, (const float *) p.table, nIn, nOut,
               (const float *) (intptr_t) x, xb, xi, batch, (float *) (intptr_t) y, ldy, j0, j1);
    }
    unpin(env, &p, JNI_ABORT);
    return status;
}
