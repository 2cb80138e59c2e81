#include "ropekit/analysis/chunk_norms_internal.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace ropekit {
namespace {

// |(x, y)| in double: exact for every finite float pair (no overflow, no underflow).
double chunk_norm(float x, float y) {
    return std::sqrt(static_cast<double>(x) * x + static_cast<double>(y) * y);
}

// One lane of the vector paths, in scalar: the float sum of squares and its IEEE sqrt, or the
// double norm when that sum is out of range (no FMA contraction in this file). A vector that
// holds an out-of-range chunk computes all its lanes here, so every vector width gives the same
// bits as the others.
double lane_norm(float x, float y) {
    const float squares = x * x + y * y;
    if (squares > std::numeric_limits<float>::max() || squares < 0x1p-100f) {
        return chunk_norm(x, y);
    }
    return static_cast<double>(std::sqrt(squares));
}

#if defined(__SSE2__)
void add_four_norms(__m128 x, __m128 y, double* out) {
    const __m128 squares = _mm_add_ps(_mm_mul_ps(x, x), _mm_mul_ps(y, y));
    // A float sum of squares above FLT_MAX overflowed (|x| from about 1.8e19); one below 2^-100
    // may hold squares that underflowed (subnormal inputs). Those four chunks go in double.
    const __m128 out_of_range =
        _mm_or_ps(_mm_cmpgt_ps(squares, _mm_set1_ps(std::numeric_limits<float>::max())),
                  _mm_cmplt_ps(squares, _mm_set1_ps(0x1p-100f)));
    if (_mm_movemask_ps(out_of_range) != 0) {
        float xs[4], ys[4];
        _mm_storeu_ps(xs, x);
        _mm_storeu_ps(ys, y);
        for (int i = 0; i < 4; ++i) out[i] += lane_norm(xs[i], ys[i]);
        return;
    }
    const __m128 n = _mm_sqrt_ps(squares);
    _mm_storeu_pd(out, _mm_add_pd(_mm_loadu_pd(out), _mm_cvtps_pd(n)));
    _mm_storeu_pd(out + 2, _mm_add_pd(_mm_loadu_pd(out + 2), _mm_cvtps_pd(_mm_movehl_ps(n, n))));
}

// The half layout's chunks eight at a time (AVX): the same float squares and IEEE sqrt as
// add_four_norms, so the same bits. Returns the chunks done.
__attribute__((target("avx"))) std::size_t add_norms_half_avx(const float* x, const float* y,
                                                              std::size_t F, double* out) {
    std::size_t k = 0;
    for (; k + 8 <= F; k += 8) {
        const __m256 a = _mm256_loadu_ps(x + k), b = _mm256_loadu_ps(y + k);
        const __m256 squares = _mm256_add_ps(_mm256_mul_ps(a, a), _mm256_mul_ps(b, b));
        const __m256 out_of_range = _mm256_or_ps(
            _mm256_cmp_ps(squares, _mm256_set1_ps(std::numeric_limits<float>::max()), _CMP_GT_OQ),
            _mm256_cmp_ps(squares, _mm256_set1_ps(0x1p-100f), _CMP_LT_OQ));
        if (_mm256_movemask_ps(out_of_range) != 0) {
            for (std::size_t i = k; i < k + 8; ++i) out[i] += lane_norm(x[i], y[i]);
            continue;
        }
        const __m256 n = _mm256_sqrt_ps(squares);
        _mm256_storeu_pd(out + k, _mm256_add_pd(_mm256_loadu_pd(out + k),
                                                _mm256_cvtps_pd(_mm256_castps256_ps128(n))));
        _mm256_storeu_pd(out + k + 4, _mm256_add_pd(_mm256_loadu_pd(out + k + 4),
                                                    _mm256_cvtps_pd(_mm256_extractf128_ps(n, 1))));
    }
    return k;
}

// Sixteen at a time (AVX-512F), the same float squares and IEEE sqrt again. GCC 12 warns inside
// its own AVX-512 intrinsics (their undefined pass-through operand), hence the pragma.
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"), always_inline)) inline void add_sixteen_norms(__m512 a, __m512 b,
                                                                                double* out) {
    const __m512 squares = _mm512_add_ps(_mm512_mul_ps(a, a), _mm512_mul_ps(b, b));
    const __mmask16 out_of_range =
        _mm512_cmp_ps_mask(squares, _mm512_set1_ps(std::numeric_limits<float>::max()), _CMP_GT_OQ) |
        _mm512_cmp_ps_mask(squares, _mm512_set1_ps(0x1p-100f), _CMP_LT_OQ);
    if (out_of_range != 0) {
        float xs[16], ys[16];
        _mm512_storeu_ps(xs, a);
        _mm512_storeu_ps(ys, b);
        for (int i = 0; i < 16; ++i) out[i] += lane_norm(xs[i], ys[i]);
        return;
    }
    const __m512 n = _mm512_sqrt_ps(squares);
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(n), 1));
    _mm512_storeu_pd(
        out, _mm512_add_pd(_mm512_loadu_pd(out), _mm512_cvtps_pd(_mm512_castps512_ps256(n))));
    _mm512_storeu_pd(out + 8, _mm512_add_pd(_mm512_loadu_pd(out + 8), _mm512_cvtps_pd(high)));
}

__attribute__((target("avx512f"))) std::size_t add_norms_half_avx512(const float* x, const float* y,
                                                                     std::size_t F, double* out) {
    std::size_t k = 0;
    for (; k + 16 <= F; k += 16) {
        add_sixteen_norms(_mm512_loadu_ps(x + k), _mm512_loadu_ps(y + k), out + k);
    }
    return k;
}

// The same from f16 halves, widened in registers (exact, as halves_to_floats): no buffer.
__attribute__((target("avx512f"))) std::size_t add_norms_half_f16_avx512(const std::uint16_t* x,
                                                                         const std::uint16_t* y,
                                                                         std::size_t F,
                                                                         double* out) {
    std::size_t k = 0;
    for (; k + 16 <= F; k += 16) {
        const __m512 a =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k)));
        const __m512 b =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + k)));
        add_sixteen_norms(a, b, out + k);
    }
    return k;
}
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

const bool kHaveAvx = __builtin_cpu_supports("avx");
const bool kHaveAvx512 = __builtin_cpu_supports("avx512f");
#endif

}  // namespace

// out[k] += |chunk k of v| for k < F. Each norm is computed in float (relative error below 1e-7,
// far inside the documented 1e-5) so that four chunks take one SSE instruction (eight with AVX,
// sixteen with AVX-512F; same bits, half layout): a scalar sqrt
// does not vectorise under -fmath-errno; chunks whose float squares would overflow or underflow
// are computed in double. The sums over positions stay in double.
void add_chunk_norms(const float* v, const Schedule& s, std::size_t F, double* out) {
    add_chunk_norms_lanes(v, s, F, out, 16);
}

void add_chunk_norms_lanes(const float* v, const Schedule& s, std::size_t F, double* out,
                           int lanes) {
    std::size_t k = 0;
#if defined(__SSE2__)
    if (s.layout == Layout::half) {
        const float* y = v + s.rotary_dim / 2;
        if (kHaveAvx512 && lanes >= 16) k = add_norms_half_avx512(v, y, F, out);
        if (kHaveAvx && lanes >= 8) k += add_norms_half_avx(v + k, y + k, F - k, out + k);
        for (; k + 4 <= F; k += 4)
            add_four_norms(_mm_loadu_ps(v + k), _mm_loadu_ps(y + k), out + k);
    } else {
        for (; k + 4 <= F; k += 4) {
            const __m128 lo = _mm_loadu_ps(v + 2 * k), hi = _mm_loadu_ps(v + 2 * k + 4);
            add_four_norms(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)), out + k);
        }
    }
#endif
    for (; k < F; ++k) {
        const auto [a, b] = s.chunk_dims(k);
        out[k] += chunk_norm(v[a], v[b]);
    }
}

bool f16_norms_in_registers(const Schedule& s) {
#if defined(__SSE2__)
    return s.layout == Layout::half && kHaveAvx512 && (s.rotary_dim / 2) % 16 == 0;
#else
    (void)s;
    return false;
#endif
}

void add_chunk_norms_f16(const std::uint16_t* v, const Schedule& s, std::size_t F, double* out) {
#if defined(__SSE2__)
    add_norms_half_f16_avx512(v, v + s.rotary_dim / 2, F, out);
#else
    (void)v, (void)s, (void)F, (void)out;
#endif
}

void add_unrotated_norm(const float* v, const Schedule& s, double* out) {
    if (s.rotary_dim >= s.head_dim) return;
    double squares = 0;
    for (std::size_t d = s.rotary_dim; d < s.head_dim; ++d) squares += double(v[d]) * v[d];
    *out += std::sqrt(squares);
}

}  // namespace ropekit
