#pragma once
// One thread count for the whole process: our own loops and OpenBLAS both follow it.
#include <cstddef>
#include <functional>

namespace ropekit {

// n = 0 means every core. Also sets OpenBLAS's thread count.
void set_thread_count(int n);
int thread_count();

// Runs body(begin, end) over [0, n) split into contiguous blocks, one per thread.
void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body);

// Call before the first BLAS call (on the main thread; later calls cost nothing). OpenBLAS
// retries forever when it cannot map its work buffers, so under an address-space limit
// (ulimit -v) too low for them a tool would hang; this throws a one-line error (exit 1) instead.
void ensure_blas_address_space();

// While alive, OpenBLAS runs single-threaded: for parallel_for bodies that call BLAS themselves
// (one BLAS thread per task thread, not threads x threads). Restores thread_count() after.
class SingleThreadedBlas {
  public:
    SingleThreadedBlas();
    ~SingleThreadedBlas();
    SingleThreadedBlas(const SingleThreadedBlas&) = delete;
    SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

}  // namespace ropekit
