#include "ropekit/threads.hpp"

#include <cblas.h>

#include <algorithm>
#include <thread>
#include <vector>

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

SingleThreadedBlas::SingleThreadedBlas() {
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
