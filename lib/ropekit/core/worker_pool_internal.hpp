#pragma once
// The threads behind parallel_for: started once and kept, so that each task thread keeps its
// warm caches, stack and OpenBLAS work buffer from call to call (a new thread per call paid
// page faults on a fresh OpenBLAS buffer in every GEMM; docs/performance.md).
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ropekit {

class WorkerPool {
  public:
    ~WorkerPool();
    // task(0) on the calling thread and task(1) ... task(count - 1) on pool threads (started as
    // needed); returns when all have finished and rethrows the first exception one threw. A
    // call made while another runs (a task calling parallel_for, or a forked child, which has
    // no pool threads) runs its tasks one after another on the caller.
    void run(std::size_t count, const std::function<void(std::size_t)>& task);

  private:
    void work(std::size_t index);
    void run_inline(std::size_t count, const std::function<void(std::size_t)>& task);

    std::mutex mutex_;
    std::condition_variable start_, done_;
    std::vector<std::thread> threads_;  // pool thread i runs task index i + 1
    const std::function<void(std::size_t)>* task_ = nullptr;
    std::size_t generation_ = 0, count_ = 0, remaining_ = 0;
    std::exception_ptr error_;
    bool busy_ = false, stopping_ = false;
    int owner_pid_ = 0;
};

WorkerPool& worker_pool();

}  // namespace ropekit
