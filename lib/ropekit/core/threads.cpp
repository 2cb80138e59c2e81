#include "ropekit/core/threads.hpp"

#include <cblas.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/worker_pool_internal.hpp"

extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

namespace ropekit {

namespace {
int g_threads = 0;
int hardware_threads() {
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// Every GEMM runs single-threaded inside our own threads (parallel_for), so OpenBLAS's pool
// has no work: stop it. Its idle workers otherwise spin in sched_yield for about 0.1 s after
// library load (2^28 cycles, OpenBLAS's THREAD_TIMEOUT), the whole run of a short tool, and
// take the second core from our threads (measured: 22-38% of rope-decay's samples,
// docs/performance.md). Weak: serial or reference BLAS builds have no pool to stop. Under an
// address-space limit the pool threads may be retrying forever to map their buffers, and
// stopping them would wait for that: they are left alone (Tool exits with _Exit then).
void stop_blas_pool() {
    static const bool stopped = [] {
        openblas_set_num_threads(1);
        rlimit limit{};
        const bool limited = ::getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur != RLIM_INFINITY;
        if (blas_thread_shutdown_ != nullptr && !limited) blas_thread_shutdown_();
        return true;
    }();
    (void)stopped;
}

}  // namespace

void set_thread_count(int n) {
    g_threads = n > 0 ? n : hardware_threads();
    stop_blas_pool();
}

int thread_count() {
    return g_threads > 0 ? g_threads : hardware_threads();
}

void ensure_blas_address_space() {
    static const bool checked = [] {
        rlimit limit{};
        if (::getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return true;
        std::uint64_t pages = 0;
        std::ifstream("/proc/self/statm") >> pages;
        const auto mapped = pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
        // Per thread that may call BLAS: OpenBLAS's 128 MiB work buffer, a 64 MiB glibc malloc
        // arena and an 8 MiB stack; then a margin. Measured: find-positional-heads on 2
        // threads hung under 450-500 MB and ran from 550 MB up.
        constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
        const std::uint64_t need =
            mapped + static_cast<std::uint64_t>(thread_count()) * 200 * kMiB + 64 * kMiB;
        if (limit.rlim_cur < need) {
            throw data_error(
                "", "",
                fmt::format("the address-space limit (ulimit -v) of {} MiB is below the {} MiB "
                            "OpenBLAS needs with {} thread(s); raise it or use fewer --threads",
                            limit.rlim_cur / kMiB, need / kMiB, thread_count()));
        }
        return true;
    }();
    (void)checked;
}

void use_single_threaded_blas() {
    ensure_blas_address_space();
    stop_blas_pool();
}

void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body) {
    const std::size_t workers = std::min<std::size_t>(static_cast<std::size_t>(thread_count()), n);
    if (workers <= 1) {
        if (n > 0) body(0, n);
        return;
    }
    const std::size_t block = (n + workers - 1) / workers;
    worker_pool().run(workers, [&](std::size_t w) {
        const std::size_t begin = w * block, end = std::min(n, begin + block);
        if (begin < end) body(begin, end);
    });
}

}  // namespace ropekit
