#pragma once
// One thread count for the whole process: our own loops and OpenBLAS both follow it.
#include <cstddef>
#include <functional>

namespace ropekit {

// n = 0 means every core. Also makes OpenBLAS single-threaded (use_single_threaded_blas).
void set_thread_count(int n);
int thread_count();

// Runs body(begin, end) over [0, n) split into contiguous blocks, one per thread: the first on
// the caller, the others on threads started once and kept (core/worker_pool_internal.hpp).
// Rethrows the first exception a block threw, after every block has finished.
void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body);

// Call before the first BLAS call (on the main thread; later calls cost nothing). OpenBLAS
// retries forever when it cannot map its work buffers, so under an address-space limit
// (ulimit -v) too low for them a tool would hang; this throws a one-line error (exit 1) instead.
void ensure_blas_address_space();

// Call before BLAS work (later calls cost nothing): checks the address space as above and makes
// OpenBLAS single-threaded for the rest of the process, its worker pool stopped. Parallelism is
// ours: parallel_for bodies call BLAS, one single-threaded call per task, so results do not
// depend on OpenBLAS's thread count. set_thread_count does the second part too.
void use_single_threaded_blas();

}  // namespace ropekit
