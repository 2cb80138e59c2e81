#include "ropekit/core/threads.hpp"

#include <cblas.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"

namespace ropekit {

namespace {
int g_threads = 0;
int hardware_threads() {
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}
}  // namespace

void set_thread_count(int n) {
    g_threads = n > 0 ? n : hardware_threads();
    openblas_set_num_threads(g_threads);
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

SingleThreadedBlas::SingleThreadedBlas() {
    ensure_blas_address_space();
    openblas_set_num_threads(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
    openblas_set_num_threads(thread_count());
}

void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& body) {
    const std::size_t workers = std::min<std::size_t>(static_cast<std::size_t>(thread_count()), n);
    if (workers <= 1) {
        if (n > 0) body(0, n);
        return;
    }
    std::vector<std::thread> pool;
    const std::size_t block = (n + workers - 1) / workers;
    for (std::size_t w = 1; w < workers; ++w) {
        const std::size_t begin = w * block, end = std::min(n, begin + block);
        if (begin < end) pool.emplace_back(body, begin, end);
    }
    body(0, std::min(n, block));
    for (auto& t : pool) t.join();
}

}  // namespace ropekit
