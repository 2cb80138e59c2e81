#include "ropekit/rope/attention.hpp"

#include <cblas.h>

#include "ropekit/core/threads.hpp"
#include "ropekit/rope/exp_nonpositive.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

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
    // Row panels, each an SGEMM over only the keys its last row sees: the masked upper triangle
    // is not computed (about half the flops of the full square for queries == keys).
    constexpr std::size_t kPanelRows = 64;
    const float masked = -std::numeric_limits<float>::infinity();
    const std::size_t offset = keys - queries;
    for (std::size_t i0 = 0; i0 < queries; i0 += kPanelRows) {
        const std::size_t rows = std::min(kPanelRows, queries - i0);
        const std::size_t seen = offset + i0 + rows;  // keys the panel's last row sees
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
                    static_cast<blasint>(seen), static_cast<blasint>(dim), scale, q + i0 * q_stride,
                    static_cast<blasint>(q_stride), k, static_cast<blasint>(k_stride), 0.0f,
                    scores + i0 * keys, static_cast<blasint>(keys));
        for (std::size_t i = i0; i < i0 + rows; ++i) {
            std::fill(scores + i * keys + offset + i + 1, scores + (i + 1) * keys, masked);
        }
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

// In 8 lanes, as causal_softmax's peaks, so that the loop compiles to packed max instructions
// (std::max's NaN rules keep a single running maximum scalar). The inputs are finite.
float max_abs(const float* rows, std::size_t stride, std::size_t count, std::size_t dim) {
    float peaks[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (std::size_t i = 0; i < count; ++i) {
        const float* row = rows + i * stride;
        std::size_t d = 0;
        for (; d + 8 <= dim; d += 8) {
            for (std::size_t lane = 0; lane < 8; ++lane) {
                const float a = std::abs(row[d + lane]);
                peaks[lane] = a > peaks[lane] ? a : peaks[lane];
            }
        }
        for (; d < dim; ++d) peaks[0] = std::max(peaks[0], std::abs(row[d]));
    }
    return *std::max_element(peaks, peaks + 8);
}

namespace {

bool scores_fit(double max_abs_q, double max_abs_k, std::size_t dim, double scale) {
    return std::abs(scale) * max_abs_q * max_abs_k * static_cast<double>(dim) <= 0x1p100;
}

}  // namespace

bool float_scores_fit(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                      std::size_t tokens, std::size_t dim, double scale) {
    return scores_fit(max_abs(q, q_stride, tokens, dim), max_abs(k, k_stride, tokens, dim), dim,
                      scale);
}

void causal_scores_f64(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                       std::size_t tokens, std::size_t dim, double scale, double* scores) {
    std::vector<double> qd(tokens * dim), kd(tokens * dim);
    for (std::size_t i = 0; i < tokens; ++i) {
        std::copy_n(q + i * q_stride, dim, &qd[i * dim]);
        std::copy_n(k + i * k_stride, dim, &kd[i * dim]);
    }
    ensure_blas_address_space();
    const auto n = static_cast<blasint>(tokens), d = static_cast<blasint>(dim);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, d, scale, qd.data(), d, kd.data(), d,
                0.0, scores, n);
    for (std::size_t i = 0; i < tokens; ++i) {
        for (std::size_t j = i + 1; j < tokens; ++j) {
            scores[i * tokens + j] = -std::numeric_limits<double>::infinity();
        }
    }
}

void causal_softmax_f64(const double* scores, std::size_t tokens, float* pattern) {
    for (std::size_t i = 0; i < tokens; ++i) {
        const double* row = scores + i * tokens;
        const double peak = *std::max_element(row, row + i + 1);
        double sum = 0.0;
        for (std::size_t j = 0; j <= i; ++j) sum += std::exp(row[j] - peak);
        for (std::size_t j = 0; j < tokens; ++j) {
            pattern[i * tokens + j] =
                j <= i ? static_cast<float>(std::exp(row[j] - peak) / sum) : 0.0f;
        }
    }
}

void causal_attention(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                      std::size_t tokens, std::size_t dim, double scale, float* pattern) {
    causal_attention(q, q_stride, k, k_stride, tokens, dim, scale, pattern,
                     max_abs(q, q_stride, tokens, dim), max_abs(k, k_stride, tokens, dim));
}

void causal_attention(const float* q, std::size_t q_stride, const float* k, std::size_t k_stride,
                      std::size_t tokens, std::size_t dim, double scale, float* pattern,
                      float max_abs_q, float max_abs_k) {
    if (scores_fit(max_abs_q, max_abs_k, dim, scale)) {
        causal_scores(q, q_stride, k, k_stride, tokens, dim, static_cast<float>(scale), pattern);
        causal_softmax(pattern, tokens);
        return;
    }
    std::vector<double> scores(tokens * tokens);
    causal_scores_f64(q, q_stride, k, k_stride, tokens, dim, scale, scores.data());
    causal_softmax_f64(scores.data(), tokens, pattern);
}

}  // namespace ropekit
