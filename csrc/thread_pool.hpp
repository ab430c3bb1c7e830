// A small persistent thread pool with a blocking parallel_for.
//
// - Worker exceptions are captured and rethrown on the calling thread (the first one wins).
// - Concurrent callers (e.g. several Python threads with the GIL released) never wait for each
//   other: whoever finds the pool busy runs its loop inline on its own thread.
// - A call from inside a worker runs inline too, so nested parallel loops cannot deadlock.
// - After fork() the child gets a fresh pool: the parent's workers do not exist there.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

namespace rlf {

class ThreadPool {
 public:
  // The process-wide pool. Never destroyed: joining workers during interpreter shutdown is unsafe.
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool(default_num_threads());
    return *pool;
  }

  // Threads used by parallel_for, the caller included.
  size_t num_threads() const { return num_threads_.load(); }

  void set_num_threads(size_t n) {
    std::lock_guard<std::mutex> busy(run_mutex_);
    num_threads_.store(std::max<size_t>(1, n));
    state_.reset();  // workers of the old state exit; a new state starts lazily
  }

  // Calls fn(i) for every i in [0, n), spread over the pool; returns when all calls are done.
  void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
    if (n == 0) return;
    if (n == 1 || num_threads() == 1 || tls_in_worker()) return run_inline(n, fn);
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock()) return run_inline(n, fn);
    if (!state_ || state_->owner_pid != getpid()) {
      // A state inherited through fork() refers to threads that do not exist: leak it.
      if (state_ && state_->owner_pid != getpid()) (void)state_.release();
      state_ = std::make_unique<State>(num_threads() - 1);
    }
    state_->run(n, fn);
  }

  static size_t default_num_threads() {
    if (const char* env = std::getenv("ROUTELLM_FAST_NUM_THREADS")) {
      long v = std::strtol(env, nullptr, 10);
      if (v > 0) return static_cast<size_t>(v);
    }
    unsigned hw = std::thread::hardware_concurrency();
    return hw == 0 ? 1 : hw;
  }

 private:
  explicit ThreadPool(size_t n) : num_threads_(std::max<size_t>(1, n)) {}

  static bool& tls_in_worker() {
    thread_local bool in_worker = false;
    return in_worker;
  }

  static void run_inline(size_t n, const std::function<void(size_t)>& fn) {
    for (size_t i = 0; i < n; ++i) fn(i);
  }

  struct State {
    explicit State(size_t workers) : owner_pid(getpid()) {
      for (size_t w = 0; w < workers; ++w) threads.emplace_back([this] { worker_loop(); });
    }
    ~State() {
      {
        std::lock_guard<std::mutex> lock(mutex);
        stopping = true;
      }
      wake.notify_all();
      for (auto& t : threads) t.join();
    }

    void run(size_t n, const std::function<void(size_t)>& fn) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        job = &fn;
        job_size = n;
        next.store(0);
        error = nullptr;
        busy_workers = threads.size();
        ++generation;
      }
      wake.notify_all();
      drain();
      std::unique_lock<std::mutex> lock(mutex);
      done.wait(lock, [this] { return busy_workers == 0; });
      job = nullptr;
      if (error) std::rethrow_exception(error);
    }

    void drain() {
      for (size_t i = next.fetch_add(1); i < job_size; i = next.fetch_add(1)) {
        try {
          (*job)(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex);
          if (!error) error = std::current_exception();
          next.store(job_size);  // skip the remaining work
        }
      }
    }

    void worker_loop() {
      tls_in_worker() = true;
      size_t seen = 0;
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(mutex);
          wake.wait(lock, [&] { return stopping || generation != seen; });
          if (stopping) return;
          seen = generation;
        }
        drain();
        std::lock_guard<std::mutex> lock(mutex);
        if (--busy_workers == 0) done.notify_one();
      }
    }

    pid_t owner_pid;
    std::vector<std::thread> threads;
    std::mutex mutex;
    std::condition_variable wake, done;
    const std::function<void(size_t)>* job = nullptr;
    size_t job_size = 0;
    std::atomic<size_t> next{0};
    std::exception_ptr error;
    size_t busy_workers = 0;
    size_t generation = 0;
    bool stopping = false;
  };

  std::atomic<size_t> num_threads_;
  std::mutex run_mutex_;
  std::unique_ptr<State> state_;
};

}  // namespace rlf
