#include "ropekit/core/worker_pool_internal.hpp"

#include <unistd.h>

namespace ropekit {

WorkerPool& worker_pool() {
    static WorkerPool pool;
    return pool;
}

WorkerPool::~WorkerPool() {
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    start_.notify_all();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
}

void WorkerPool::run_inline(std::size_t count, const std::function<void(std::size_t)>& task) {
    for (std::size_t i = 0; i < count; ++i) task(i);
}

void WorkerPool::run(std::size_t count, const std::function<void(std::size_t)>& task) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (owner_pid_ == 0) owner_pid_ = static_cast<int>(::getpid());
    if (busy_ || count <= 1 || owner_pid_ != static_cast<int>(::getpid())) {
        lock.unlock();
        run_inline(count, task);
        return;
    }
    busy_ = true;
    while (threads_.size() + 1 < count) {
        threads_.emplace_back(&WorkerPool::work, this, threads_.size() + 1);
    }
    task_ = &task;
    count_ = count;
    remaining_ = count - 1;
    error_ = nullptr;
    ++generation_;
    lock.unlock();
    start_.notify_all();
    std::exception_ptr mine;
    try {
        task(0);
    } catch (...) {
        mine = std::current_exception();
    }
    lock.lock();
    done_.wait(lock, [&] { return remaining_ == 0; });
    busy_ = false;
    task_ = nullptr;
    const std::exception_ptr error = mine ? mine : error_;
    lock.unlock();
    if (error) std::rethrow_exception(error);
}

void WorkerPool::work(std::size_t index) {
    std::size_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        if (index >= count_) continue;
        const std::function<void(std::size_t)>* task = task_;
        lock.unlock();
        std::exception_ptr error;
        try {
            (*task)(index);
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        if (error && !error_) error_ = error;
        if (--remaining_ == 0) done_.notify_one();
    }
}

}  // namespace ropekit
