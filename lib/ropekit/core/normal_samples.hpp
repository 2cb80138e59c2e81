#pragma once
// Seeded standard normal samples, reproducible whatever the thread count: every stream (say, one
// per (q, k) pair) has its own generators derived from (seed, stream) only, so streams can be
// filled in any order or in parallel, and the first n samples of a stream do not depend on how
// many are drawn. Sampler v3: 8 xoshiro256+ lanes per stream (seeded by splitmix64), Box-Muller
// with polynomial log, sin and cos in double, vectorised (AVX-512, AVX2 or SSE2, same bits).
#include <cstddef>
#include <cstdint>

namespace ropekit {

// n standard normal floats for stream `stream` of `seed`.
void fill_standard_normal(std::uint64_t seed, std::uint64_t stream, float* out, std::size_t n);

}  // namespace ropekit
