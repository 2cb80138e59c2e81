#include "ropekit/analysis/chunk_norms_internal.hpp"

#include <cmath>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace ropekit {
namespace {

#if defined(__SSE2__)
void add_four_norms(__m128 x, __m128 y, double* out) {
    const __m128 n = _mm_sqrt_ps(_mm_add_ps(_mm_mul_ps(x, x), _mm_mul_ps(y, y)));
    _mm_storeu_pd(out, _mm_add_pd(_mm_loadu_pd(out), _mm_cvtps_pd(n)));
    _mm_storeu_pd(out + 2, _mm_add_pd(_mm_loadu_pd(out + 2), _mm_cvtps_pd(_mm_movehl_ps(n, n))));
}
#endif

}  // namespace

void add_chunk_norms(const float* v, const Schedule& s, std::size_t F, double* out) {
    std::size_t k = 0;
#if defined(__SSE2__)
    if (s.layout == Layout::half) {
        const float* y = v + s.rotary_dim / 2;
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
        const float x = v[a], y = v[b];
        out[k] += static_cast<double>(std::sqrt(x * x + y * y));
    }
}

}  // namespace ropekit
