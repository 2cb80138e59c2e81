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

#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/rope/rope.hpp"

namespace ropekit {

struct DecayCurve {
    std::vector<std::int64_t> offsets;
    std::vector<double> activation;  // mean over pairs of q^T R^(-o) k / d
    // Sampled modes with >= 2 pairs only (empty otherwise):
    std::vector<double> std;          // sample standard deviation over pairs (ddof = 1)
    std::vector<double> stderr_mean;  // std / sqrt(samples)
    std::vector<double> variance_se;  // standard error of the variance estimate (delta method)
    std::size_t samples = 0;          // pairs averaged (0 for the closed form)
};

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

// The sums in an output (rope-merge merges them): datasets moment_sum [coefficient] and
// moment_sum_outer [coefficient, coefficient] (mirrored to the full symmetric matrix), with axes,
// units and a description of the coefficient axis. The count is the `samples` root attribute
// (write_decay).
void write_decay_moments(H5Output& out, const DecayMoments& moments);
// Reads them back for this schedule; data_error naming the file and dataset or attribute when
// absent, misshapen, not finite, or the count is not a whole number.
DecayMoments read_decay_moments(const H5Input& in, const Schedule& s);

// One flat array (count, sum, upper sum_outer) for a reduction between processes, and back.
std::vector<double> pack_decay_moments(const DecayMoments& moments);
DecayMoments unpack_decay_moments(const std::vector<double>& packed, const Schedule& s);

}  // namespace ropekit
