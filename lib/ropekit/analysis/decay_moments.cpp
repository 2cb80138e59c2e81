#include "ropekit/analysis/decay_moments.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "ropekit/core/threads.hpp"
#include "ropekit/rope/logit_curve.hpp"

namespace ropekit {

namespace {
constexpr std::size_t kBlockPairs = 512;   // coefficient rows per DSYRK
constexpr std::size_t kPanels = 4;         // column panels of sum c c^T, a fixed split (below)
constexpr std::size_t kOffsetChunk = 512;  // offsets per DGEMM in finish

// Panel p of the upper triangle of sum c c^T is columns [j_p, j_p+1) with j_p = w sqrt(p / P):
// panels of equal area, so that threads taking contiguous runs of them share the work evenly.
// Fixed boundaries: every sum is computed the same way whatever the thread count.
std::size_t panel_start(std::size_t w, std::size_t p) {
    return static_cast<std::size_t>(
        std::lround(static_cast<double>(w) * std::sqrt(static_cast<double>(p) / kPanels)));
}

// sum_outer[0:j1, j0:j1] (upper triangle) += coeffs^T coeffs for that panel: the rectangle above
// the diagonal block by DGEMM, the diagonal block by DSYRK.
void add_outer_panel(const double* coeffs, std::size_t rows, std::size_t w, std::size_t j0,
                     std::size_t j1, double* sum_outer) {
    const auto lw = static_cast<blasint>(w), k = static_cast<blasint>(rows);
    const auto cols = static_cast<blasint>(j1 - j0);
    if (j0 > 0) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(j0), cols, k, 1.0,
                    coeffs, lw, coeffs + j0, lw, 1.0, sum_outer + j0, lw);
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, k, 1.0, coeffs + j0, lw, 1.0,
                sum_outer + j0 * w + j0, lw);
}

// [width x offsets] row-major: the cos rows, the sin rows, then a row of ones.
std::vector<double> trig_with_ones(const Schedule& s, const std::vector<std::int64_t>& offsets) {
    const OffsetTrig trig(s, offsets);
    std::vector<double> table = trig.table();
    table.resize(table.size() + offsets.size(), 1.0);
    return table;
}
}  // namespace

DecayMoments empty_decay_moments(const Schedule& s) {
    DecayMoments m;
    m.width = 2 * s.frequency_count() + 1;
    m.sum.assign(m.width, 0.0);
    m.sum_outer.assign(m.width * m.width, 0.0);
    return m;
}

void accumulate(DecayMoments& m, const Schedule& s, const float* q, const float* k, std::size_t n) {
    const std::size_t w = m.width, d = s.head_dim;
    const double inv_d = 1.0 / static_cast<double>(d);
    std::vector<double> coeffs(std::min(n, kBlockPairs) * w);
    // Our threads call BLAS, one single-threaded call each: OpenBLAS's own pool never wakes,
    // so it does not spin (sched_yield) beside our threads between the parallel sections.
    const SingleThreadedBlas blas;
    for (std::size_t start = 0; start < n; start += kBlockPairs) {
        const std::size_t rows = std::min(kBlockPairs, n - start);
        parallel_for(rows, [&](std::size_t begin, std::size_t end) {
            for (std::size_t r = begin; r < end; ++r) {
                double* c = coeffs.data() + r * w;
                const std::size_t pair = start + r;
                c[w - 1] = pair_coefficients(q + pair * d, k + pair * d, s, c);
                for (std::size_t i = 0; i < w; ++i) c[i] *= inv_d;
            }
        });
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t i = 0; i < w; ++i) m.sum[i] += coeffs[r * w + i];
        }
        parallel_for(kPanels, [&](std::size_t begin, std::size_t end) {
            for (std::size_t p = begin; p < end; ++p) {
                const std::size_t j0 = panel_start(w, p), j1 = panel_start(w, p + 1);
                if (j1 > j0) add_outer_panel(coeffs.data(), rows, w, j0, j1, m.sum_outer.data());
            }
        });
    }
    m.count += n;
}

void merge(DecayMoments& into, const DecayMoments& other) {
    if (into.width != other.width) {
        throw std::invalid_argument("decay moments: merging sums of different widths");
    }
    for (std::size_t i = 0; i < into.width; ++i) into.sum[i] += other.sum[i];
    for (std::size_t i = 0; i < into.sum_outer.size(); ++i) into.sum_outer[i] += other.sum_outer[i];
    into.count += other.count;
}

DecayCurve finish(const DecayMoments& m, const Schedule& s,
                  const std::vector<std::int64_t>& offsets) {
    const std::size_t w = m.width, count = offsets.size();
    DecayCurve out;
    out.offsets = offsets;
    out.samples = m.count;
    out.activation.assign(count, 0.0);
    if (m.count == 0 || count == 0) return out;
    const double n = static_cast<double>(m.count);
    std::vector<double> mean(w);
    for (std::size_t i = 0; i < w; ++i) mean[i] = m.sum[i] / n;
    const std::vector<double> table = trig_with_ones(s, offsets);
    const SingleThreadedBlas blas;  // as in accumulate: our threads, one BLAS call each
    cblas_dgemv(CblasRowMajor, CblasTrans, static_cast<blasint>(w), static_cast<blasint>(count),
                1.0, table.data(), static_cast<blasint>(count), mean.data(), 1, 0.0,
                out.activation.data(), 1);
    if (m.count < 2) return out;
    // Covariance of c (upper triangle of the sums, mirrored), then diag(F cov F^T) as the
    // column-wise dot of the table with cov * table, each thread on its own offsets.
    std::vector<double> cov(w * w);
    for (std::size_t i = 0; i < w; ++i) {
        for (std::size_t j = i; j < w; ++j) {
            cov[i * w + j] = cov[j * w + i] = m.sum_outer[i * w + j] / n - mean[i] * mean[j];
        }
    }
    // Fixed chunks of offsets (not one per thread), so that the numbers do not depend on the
    // thread count.
    std::vector<double> projected(w * count), variance(count, 0.0);
    const std::size_t chunks = (count + kOffsetChunk - 1) / kOffsetChunk;
    parallel_for(chunks, [&](std::size_t first, std::size_t last) {
        const std::size_t begin = first * kOffsetChunk, end = std::min(count, last * kOffsetChunk);
        for (std::size_t c0 = begin; c0 < end; c0 += kOffsetChunk) {
            const std::size_t c1 = std::min(end, c0 + kOffsetChunk);
            const auto ld = static_cast<blasint>(count);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(w),
                        static_cast<blasint>(c1 - c0), static_cast<blasint>(w), 1.0, cov.data(),
                        static_cast<blasint>(w), table.data() + c0, ld, 0.0, projected.data() + c0,
                        ld);
        }
        for (std::size_t i = 0; i < w; ++i) {
            const double* t = table.data() + i * count;
            const double* p = projected.data() + i * count;
            for (std::size_t o = begin; o < end; ++o) variance[o] += t[o] * p[o];
        }
    });
    out.std.resize(count);
    out.stderr_mean.resize(count);
    for (std::size_t o = 0; o < count; ++o) {
        const double var = std::max(0.0, variance[o]) * n / (n - 1);
        out.std[o] = std::sqrt(var);
        out.stderr_mean[o] = std::sqrt(var / n);
    }
    return out;
}

}  // namespace ropekit
