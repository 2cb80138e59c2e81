// parallel_for over the kept worker threads: coverage, exceptions, nesting, reuse.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <cblas.h>

#include "ropekit/core/threads.hpp"

// OpenBLAS's own flag for its worker pool (1 while the pool threads exist); weak, so that a
// build against another BLAS still links.
extern "C" int blas_server_avail __attribute__((weak));

using namespace ropekit;

TEST_CASE("parallel_for covers 0 .. n-1 once, in one block per thread") {
    for (int threads : {1, 2, 3, 5}) {
        set_thread_count(threads);
        for (std::size_t n : {0, 1, 2, 7, 100}) {
            CAPTURE(threads);
            CAPTURE(n);
            std::vector<int> hits(n, 0);
            std::atomic<int> blocks{0};
            parallel_for(n, [&](std::size_t begin, std::size_t end) {
                ++blocks;
                for (std::size_t i = begin; i < end; ++i) ++hits[i];
            });
            CHECK(std::count(hits.begin(), hits.end(), 1) == static_cast<long>(n));
            // Blocks of ceil(n / threads): 7 over 5 threads is 4 blocks of 2, 2, 2, 1.
            const std::size_t workers = std::min<std::size_t>(threads, n);
            const std::size_t block = workers ? (n + workers - 1) / workers : 1;
            CHECK(blocks.load() == static_cast<int>((n + block - 1) / block));
        }
    }
    set_thread_count(0);
}

TEST_CASE("the blocks run on distinct threads, the same ones from call to call") {
    set_thread_count(3);
    std::set<std::thread::id> first, second;
    std::mutex m;
    const auto record = [&](std::set<std::thread::id>& ids) {
        parallel_for(3, [&](std::size_t, std::size_t) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            const std::lock_guard<std::mutex> lock(m);
            ids.insert(std::this_thread::get_id());
        });
    };
    record(first);
    record(second);
    CHECK(first.size() == 3);
    CHECK(first == second);
    CHECK(first.count(std::this_thread::get_id()) == 1);
    set_thread_count(0);
}

TEST_CASE("an exception in any block reaches the caller after every block finished") {
    set_thread_count(2);
    for (std::size_t failing : {0, 1}) {
        std::atomic<int> finished{0};
        const auto run = [&] {
            parallel_for(2, [&](std::size_t begin, std::size_t) {
                if (begin == failing) throw std::runtime_error("block failed");
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
                ++finished;
            });
        };
        CHECK_THROWS_WITH_AS(run(), "block failed", std::runtime_error);
        CHECK(finished.load() == 1);
    }
    // The pool still works afterwards.
    std::atomic<int> sum{0};
    parallel_for(10, [&](std::size_t b, std::size_t e) { sum += static_cast<int>(e - b); });
    CHECK(sum.load() == 10);
    set_thread_count(0);
}

TEST_CASE("parallel_for inside a block runs that block's part on its own thread") {
    set_thread_count(2);
    std::vector<int> hits(40, 0);
    parallel_for(4, [&](std::size_t begin, std::size_t end) {
        parallel_for((end - begin) * 10, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) ++hits[begin * 10 + i];
        });
    });
    CHECK(std::count(hits.begin(), hits.end(), 1) == 40);
    set_thread_count(0);
}

TEST_CASE("set_thread_count leaves OpenBLAS single-threaded with its worker pool stopped") {
    // The pool's idle workers spin in sched_yield after library load and took the second core
    // from our threads (docs/performance.md); every BLAS call runs inside our own blocks.
    set_thread_count(2);
    CHECK(openblas_get_num_threads() == 1);
    if (&blas_server_avail != nullptr) CHECK(blas_server_avail == 0);
    set_thread_count(0);
}
