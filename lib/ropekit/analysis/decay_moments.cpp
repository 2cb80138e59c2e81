#include "ropekit/analysis/decay_moments.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/threads.hpp"
#include "ropekit/rope/logit_curve.hpp"

namespace ropekit {

namespace {
constexpr std::size_t kBlockPairs = 2048;  // coefficient rows per DSYRK
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
    use_single_threaded_blas();
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

namespace {

// Offsets [c0, c1) of the curve: their [width x n] cos/sin table (built here, so that no
// [width x offsets] table is ever held), the mean activation F mean, and with a covariance the
// variance diag(F cov F^T) as the column-wise dot of the table with cov * table.
void finish_chunk(const Schedule& s, const std::vector<std::int64_t>& offsets, std::size_t c0,
                  std::size_t c1, const std::vector<double>& mean, const std::vector<double>& cov,
                  double* activation, double* variance) {
    const std::size_t w = mean.size(), n = c1 - c0;
    const auto lw = static_cast<blasint>(w), ln = static_cast<blasint>(n);
    const std::vector<double> table = trig_with_ones(
        s, std::vector<std::int64_t>(offsets.begin() + static_cast<std::ptrdiff_t>(c0),
                                     offsets.begin() + static_cast<std::ptrdiff_t>(c1)));
    cblas_dgemv(CblasRowMajor, CblasTrans, lw, ln, 1.0, table.data(), ln, mean.data(), 1, 0.0,
                activation, 1);
    if (cov.empty()) return;
    std::vector<double> projected(w * n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, lw, ln, lw, 1.0, cov.data(), lw,
                table.data(), ln, 0.0, projected.data(), ln);
    std::fill(variance, variance + n, 0.0);
    for (std::size_t i = 0; i < w; ++i) {
        const double* t = table.data() + i * n;
        const double* p = projected.data() + i * n;
        for (std::size_t o = 0; o < n; ++o) variance[o] += t[o] * p[o];
    }
}

}  // namespace

DecayCurve finish(const DecayMoments& m, const Schedule& s,
                  const std::vector<std::int64_t>& offsets) {
    const std::size_t w = m.width, count = offsets.size();
    DecayCurve out;
    out.offsets = offsets;
    out.samples = m.count;
    out.activation.assign(count, 0.0);
    if (m.count == 0 || count == 0) return out;
    const double n = static_cast<double>(m.count);
    std::vector<double> mean(w), cov;
    for (std::size_t i = 0; i < w; ++i) mean[i] = m.sum[i] / n;
    if (m.count >= 2) {  // covariance of c: the upper triangle of the sums, mirrored
        cov.resize(w * w);
        for (std::size_t i = 0; i < w; ++i) {
            for (std::size_t j = i; j < w; ++j) {
                cov[i * w + j] = cov[j * w + i] = m.sum_outer[i * w + j] / n - mean[i] * mean[j];
            }
        }
    }
    // Fixed chunks of offsets, whole chunks per thread (as in accumulate: our threads, one BLAS
    // call each), so that the numbers do not depend on the thread count.
    std::vector<double> variance(count);
    use_single_threaded_blas();
    parallel_for((count + kOffsetChunk - 1) / kOffsetChunk, [&](std::size_t first,
                                                                std::size_t last) {
        for (std::size_t chunk = first; chunk < last; ++chunk) {
            const std::size_t c0 = chunk * kOffsetChunk, c1 = std::min(count, c0 + kOffsetChunk);
            finish_chunk(s, offsets, c0, c1, mean, cov, &out.activation[c0], &variance[c0]);
        }
    });
    if (m.count < 2) return out;
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

namespace ropekit {
namespace {

const char* const kCoefficientAxis =
    "coefficient c of a pair's logit curve x(o) = f(o) . c: index i < C is frequency i's cos "
    "coefficient, C + i its sin coefficient, 2C the unrotated dims' dot product; all / d "
    "(C = frequencies, index 0 = highest)";

std::vector<double> required_values(const H5Input& in, const std::string& name,
                                    const Shape& shape) {
    if (!in.has(name)) {
        throw data_error(in.name(), name,
                         "no such dataset: expected the sums a rope-decay output (gaussian or "
                         "file mode) stores");
    }
    const Tensor<double> t = in.read_double(name);
    if (t.shape != shape) {
        throw data_error(in.name(), name,
                         fmt::format("expected shape {} for this d and p, found {}",
                                     shape_string(shape), shape_string(t.shape)));
    }
    for (double v : t.data) {
        if (!std::isfinite(v)) throw data_error(in.name(), name, "expected finite sums");
    }
    return t.data;
}

}  // namespace

void write_decay_moments(H5Output& out, const DecayMoments& m) {
    Tensor<double> sum({m.width});
    sum.data = m.sum;
    out.write("moment_sum", sum, {"coefficient"}, "logit / d");
    out.set_attr("moment_sum", "description",
                 std::string("sum over pairs of c (mergeable: rope-merge adds them)"));
    out.set_attr("moment_sum", "coefficient", std::string(kCoefficientAxis));
    Tensor<double> outer({m.width, m.width});
    for (std::size_t i = 0; i < m.width; ++i) {
        for (std::size_t j = i; j < m.width; ++j) {
            outer.data[i * m.width + j] = outer.data[j * m.width + i] =
                m.sum_outer[i * m.width + j];
        }
    }
    out.write("moment_sum_outer", outer, {"coefficient", "coefficient"}, "(logit / d)^2");
    out.set_attr("moment_sum_outer", "description",
                 std::string("sum over pairs of c c^T (symmetric; mergeable: rope-merge adds "
                             "them); with moment_sum and the samples count they give the mean "
                             "and std curves at any offsets"));
    out.set_attr("moment_sum_outer", "coefficient", std::string(kCoefficientAxis));
}

DecayMoments read_decay_moments(const H5Input& in, const Schedule& s) {
    DecayMoments m = empty_decay_moments(s);
    m.sum = required_values(in, "moment_sum", {m.width});
    m.sum_outer = required_values(in, "moment_sum_outer", {m.width, m.width});
    const std::optional<double> count = in.attr_double("/", "samples");
    if (!count || !(*count >= 0) || *count != std::floor(*count) || *count > 0x1p53) {
        throw data_error(in.name(), "/@samples", "expected the whole number of pairs summed");
    }
    m.count = static_cast<std::size_t>(*count);
    return m;
}

std::vector<double> pack_decay_moments(const DecayMoments& m) {
    std::vector<double> packed{static_cast<double>(m.count)};
    packed.insert(packed.end(), m.sum.begin(), m.sum.end());
    for (std::size_t i = 0; i < m.width; ++i) {
        packed.insert(packed.end(),
                      m.sum_outer.begin() + static_cast<std::ptrdiff_t>(i * m.width + i),
                      m.sum_outer.begin() + static_cast<std::ptrdiff_t>((i + 1) * m.width));
    }
    return packed;
}

DecayMoments unpack_decay_moments(const std::vector<double>& packed, const Schedule& s) {
    DecayMoments m = empty_decay_moments(s);
    const std::size_t w = m.width;
    if (packed.size() != 1 + w + w * (w + 1) / 2) {
        throw std::invalid_argument("decay moments: packed sums of another width");
    }
    m.count = static_cast<std::size_t>(packed[0]);
    std::copy(packed.begin() + 1, packed.begin() + 1 + static_cast<std::ptrdiff_t>(w),
              m.sum.begin());
    const double* next = packed.data() + 1 + w;
    for (std::size_t i = 0; i < w; ++i) {
        for (std::size_t j = i; j < w; ++j) m.sum_outer[i * w + j] = *next++;
    }
    return m;
}

}  // namespace ropekit
