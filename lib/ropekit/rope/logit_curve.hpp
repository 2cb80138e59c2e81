#pragma once
// Logits as a function of relative position, for many offsets at once.
// Convention (docs/conventions.md): the key sits `offset` o = i - j tokens before the query, so the
// logit at offset o is q^T R^(-o) k = relative_logit(q, k, s, -o). Every offset curve in ropekit
// (rope-decay, construct-key, rope-verify) goes through this file.
//
// q^T R^n k = sum_c cos(n g_c) A_c + sin(n g_c) B_c with, per chunk c = (a, b),
//   A_c = q_a k_a + q_b k_b,  B_c = q_b k_a - q_a k_b,
// so a curve over offsets is one matrix-vector product with a table of cos/sin.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ropekit/rope/rope.hpp"

namespace ropekit {

// The 2C coefficients (A_0..A_{C-1}, B_0..B_{C-1}) of one (q, k) pair; dims past rotary_dim
// (unrotated) are added to a separate constant term returned by the function.
double pair_coefficients(const double* q, const double* k, const Schedule& s, double* coeffs);
double pair_coefficients(const float* q, const float* k, const Schedule& s, double* coeffs);

// cos(-o g_c) and sin(-o g_c) for each offset o (angles in double), laid out [2C x offsets]
// row-major: row c holds the cosines of chunk c, row C + c its sines.
class OffsetTrig {
  public:
    OffsetTrig(const Schedule& s, std::vector<std::int64_t> offsets);
    const std::vector<std::int64_t>& offsets() const { return offsets_; }
    std::size_t chunk_count() const { return chunks_; }
    const std::vector<double>& table() const { return table_; }

    // Logit of the pair with these coefficients at every offset, in double.
    std::vector<double> curve(const double* coeffs, double constant = 0.0) const;

  private:
    std::vector<std::int64_t> offsets_;
    std::size_t chunks_;
    std::vector<double> table_;
};

// q^T R^(-o) k at each of `offsets` (double throughout).
std::vector<double> offset_curve(const double* q, const double* k, const Schedule& s,
                                 const std::vector<std::int64_t>& offsets);

// 0, 1, ..., n - 1.
std::vector<std::int64_t> offset_range(std::int64_t n);

// Where a curve peaks and by how much: margin = 1 - runner_up / peak (the paper's measure of a
// sharp peak; meaningful when peak > 0).
struct CurvePeak {
    std::size_t argmax = 0;
    double peak = 0;
    double runner_up = 0;
    double margin = 0;
};
CurvePeak find_peak(const std::vector<double>& curve);

}  // namespace ropekit
