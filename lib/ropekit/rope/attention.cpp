#include "ropekit/rope/attention.hpp"

#include <cblas.h>

#include "ropekit/core/threads.hpp"
#include "ropekit/rope/exp_nonpositive.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace ropekit {

void causal_scores(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                   std::size_t tokens, std::size_t dim, float scale, float* scores) {
    causal_scores(q, q_stride, k, k_stride, tokens, tokens, dim, scale, scores);
}

void causal_softmax(float* scores, std::size_t tokens) {
    causal_softmax(scores, tokens, tokens);
}

void causal_scores(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                   std::size_t queries, std::size_t keys, std::size_t dim, float scale,
                   float* scores) {
    ensure_blas_address_space();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(queries),
                static_cast<blasint>(keys), static_cast<blasint>(dim), scale, q,
                static_cast<blasint>(q_stride), k, static_cast<blasint>(k_stride), 0.0f, scores,
                static_cast<blasint>(keys));
    const float masked = -std::numeric_limits<float>::infinity();
    const std::size_t offset = keys - queries;
    for (std::size_t i = 0; i < queries; ++i) {
        for (std::size_t j = offset + i + 1; j < keys; ++j) scores[i * keys + j] = masked;
    }
}

// Compiled twice, for the x86-64 baseline (SSE2, 4 floats per instruction) and for AVX2 (8),
// picked at load time by the CPU. No FMA in either, so both round identically.
__attribute__((target_clones("avx2", "default"))) void causal_softmax(float* scores,
                                                                      std::size_t queries,
                                                                      std::size_t keys) {
    const std::size_t offset = keys - queries;
    for (std::size_t i = 0; i < queries; ++i) {
        float* row = scores + i * keys;
        const std::size_t count = offset + i + 1;  // keys this query sees
        float peaks[8];
        std::fill(peaks, peaks + 8, row[0]);
        std::size_t j = 0;
        for (; j + 8 <= count; j += 8) {
            for (std::size_t lane = 0; lane < 8; ++lane) {
                peaks[lane] = row[j + lane] > peaks[lane] ? row[j + lane] : peaks[lane];
            }
        }
        for (; j < count; ++j) peaks[0] = row[j] > peaks[0] ? row[j] : peaks[0];
        const float peak = *std::max_element(peaks, peaks + 8);
        for (j = 0; j < count; ++j) row[j] = exp_nonpositive(row[j] - peak);
        // The exponents are floats (the result is one); their sum is a double, in four
        // partial sums so that the additions do not wait on each other.
        double partial[4] = {0.0, 0.0, 0.0, 0.0};
        for (j = 0; j + 4 <= count; j += 4) {
            for (std::size_t lane = 0; lane < 4; ++lane) partial[lane] += row[j + lane];
        }
        for (; j < count; ++j) partial[0] += row[j];
        const auto inverse =
            static_cast<float>(1.0 / ((partial[0] + partial[1]) + (partial[2] + partial[3])));
        for (j = 0; j < count; ++j) row[j] *= inverse;
        for (j = count; j < keys; ++j) row[j] = 0.0f;
    }
}

}  // namespace ropekit
