#pragma once
// rope-decay's mean and variance curves from two moments of the pair coefficients, without a
// per-sample curve. A pair (q, k) has the logit curve x(o) = f(o) . c, with c its 2C chunk
// coefficients plus the unrotated dims' dot product, scaled by 1/d (logit_curve.hpp), and f(o)
// the row of cos/sin (and a 1) at offset o. Over pairs,
//   mean(o) = f(o) . E[c],   variance(o) = f(o)^T (E[c c^T] - E[c] E[c]^T) f(o),
// so the work is O(pairs d^2 + offsets d^2) instead of O(pairs offsets d).
// The sums are exactly mergeable: shards can accumulate separately and merge.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

struct DecayMoments {
    std::size_t width = 0;          // 2C + 1
    std::size_t count = 0;          // pairs accumulated
    std::vector<double> sum;        // [width]: sum of c
    std::vector<double> sum_outer;  // [width x width] row-major, symmetric: sum of c c^T
};

// Zero sums for pairs under this schedule.
DecayMoments empty_decay_moments(const Schedule& s);
// Adds n pairs: q and k are [n x head_dim] row-major.
void accumulate(DecayMoments& moments, const Schedule& s, const float* q, const float* k,
                std::size_t n);
// Adds another shard's sums (same schedule).
void merge(DecayMoments& into, const DecayMoments& other);
// The curve at these offsets: activation, and with >= 2 pairs std (ddof = 1) and stderr.
// variance_se stays empty (it needs fourth moments per offset).
DecayCurve finish(const DecayMoments& moments, const Schedule& s,
                  const std::vector<std::int64_t>& offsets);

}  // namespace ropekit
