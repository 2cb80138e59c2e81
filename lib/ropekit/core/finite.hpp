#pragma once
// Finiteness of float arrays on the I/O hot path.
#include <cstddef>

namespace ropekit {

// True when no element is NaN or inf. A branch-free OR over the exponent bits vectorises, which an
// early-exit std::isfinite loop does not; callers look for the culprit only when this fails.
bool all_finite(const float* p, std::size_t n);

}  // namespace ropekit
