// A small persistent thread pool with a blocking parallel_for.
//
// - Worker exceptions are captured and rethrown on the calling thread (the first one wins).
// - Concurrent callers (e.g. several Python threads with the GIL released) never wait for each
//   other: whoever finds the pool busy runs its loop inline on its own thread.
// - A call from inside a worker runs inline too, so nested parallel loops cannot deadlock.
// - After fork() the child gets a fresh pool: the parent's workers, and any lock a parent thread
//   held at the fork, do not exist there. What the child inherited is leaked, never joined.
// - Workers that cannot be started (thread limits, address-space limits) make parallel_for throw
//   std::runtime_error naming the thread count; nothing waits for threads that never started.
// - The default thread count is the number of CPUs this process may run on (its affinity mask),
//   or ROUTELLM_FAST_NUM_THREADS; counts are limited to [1, kMaxThreads].
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>
#include <unistd.h>

namespace rlf {

inline constexpr size_t kMaxThreads = 1024;

// CPUs this process may run on: sched_getaffinity where the platform has it, else the machine's
// hardware threads. 0 when neither is known.
inline size_t affinity_cpu_count() {
#if defined(__linux__) && defined(CPU_COUNT_S)
  for (size_t cpus = CPU_SETSIZE; cpus <= (size_t{1} << 20); cpus *= 2) {  // masks wider than cpu_set_t
    cpu_set_t* set = CPU_ALLOC(cpus);
    if (!set) break;
    const size_t bytes = CPU_ALLOC_SIZE(cpus);
    CPU_ZERO_S(bytes, set);
    const int rc = sched_getaffinity(0, bytes, set);
    const int count = rc == 0 ? CPU_COUNT_S(bytes, set) : 0;
    const bool too_small = rc != 0 && errno == EINVAL;
    CPU_FREE(set);
    if (rc == 0) return static_cast<size_t>(count);
    if (!too_small) break;
  }
#endif
  return 0;
}

class ThreadPool {
 public:
  // Where the current thread count came from.
  enum class Source { affinity, hardware, env, set_num_threads };

  // The process-wide pool. Never destroyed: joining workers during interpreter shutdown is unsafe.
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();
    return *pool;
  }

  // Threads used by parallel_for, the caller included.
  size_t num_threads() const { return num_threads_.load(); }

  const char* source() const {
    switch (source_.load()) {
      case Source::affinity: return "affinity";
      case Source::hardware: return "hardware_concurrency";
      case Source::env: return "env";
      case Source::set_num_threads: return "set_num_threads";
    }
    return "?";
  }

  // Why the default ignored ROUTELLM_FAST_NUM_THREADS, or empty.
  const std::string& note() const { return note_; }

  void set_num_threads(size_t n) {
    if (n < 1 || n > kMaxThreads)
      throw std::invalid_argument("number of threads must be in [1, " + std::to_string(kMaxThreads) + "], got " +
                                  std::to_string(n));
    Process& p = process();
    std::lock_guard<std::mutex> busy(p.run_mutex);
    num_threads_.store(n);
    source_.store(Source::set_num_threads);
    p.state.reset();  // this process's workers exit and are joined; a new state starts lazily
  }

  // Calls fn(i) for every i in [0, n), spread over the pool; returns when all calls are done.
  void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
    if (n == 0) return;
    if (n == 1 || num_threads() == 1 || tls_in_worker()) return run_inline(n, fn);
    Process& p = process();
    std::unique_lock<std::mutex> busy(p.run_mutex, std::try_to_lock);
    if (!busy.owns_lock()) return run_inline(n, fn);
    if (!p.state) p.state = std::make_unique<State>(num_threads() - 1);
    p.state->run(n, fn);
  }

 private:
  ThreadPool() {
    size_t n = 0;
    Source source = Source::env;
    if (const char* env = std::getenv("ROUTELLM_FAST_NUM_THREADS"); env && *env) {
      n = parse_count(env);
      if (n == 0)
        note_ = "ROUTELLM_FAST_NUM_THREADS='" + std::string(env) + "' ignored: expected an integer in [1, " +
                std::to_string(kMaxThreads) + "]";
    }
    if (n == 0) {
      n = affinity_cpu_count();
      source = Source::affinity;
    }
    if (n == 0) {
      n = std::thread::hardware_concurrency();
      source = Source::hardware;
    }
    num_threads_.store(std::clamp<size_t>(n, 1, kMaxThreads));
    source_.store(source);
    process_.store(new Process());
  }

  // A decimal integer in [1, kMaxThreads] (surrounding spaces allowed), else 0.
  static size_t parse_count(const char* text) {
    const std::string s(text);
    const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    if (b == std::string::npos || e - b + 1 > 5) return 0;
    size_t v = 0;
    for (size_t i = b; i <= e; ++i) {
      if (s[i] < '0' || s[i] > '9') return 0;
      v = v * 10 + static_cast<size_t>(s[i] - '0');
    }
    return v >= 1 && v <= kMaxThreads ? v : 0;
  }

  static bool& tls_in_worker() {
    thread_local bool in_worker = false;
    return in_worker;
  }

  static void run_inline(size_t n, const std::function<void(size_t)>& fn) {
    for (size_t i = 0; i < n; ++i) fn(i);
  }

  struct State {
    explicit State(size_t workers) {
      try {
        threads.reserve(workers);
        for (size_t w = 0; w < workers; ++w) threads.emplace_back([this] { worker_loop(); });
      } catch (const std::exception& e) {
        const size_t started = threads.size();
        stop();  // the destructor does not run for a constructor that throws
        throw std::runtime_error("could not start the thread pool's " + std::to_string(workers + 1) +
                                 " threads (" + std::to_string(workers) + " workers, " + std::to_string(started) +
                                 " started): " + e.what() +
                                 "; use fewer threads: set_num_threads() or ROUTELLM_FAST_NUM_THREADS");
      }
    }
    ~State() { stop(); }

    void stop() {
      {
        std::lock_guard<std::mutex> lock(mutex);
        stopping = true;
      }
      wake.notify_all();
      for (auto& t : threads) t.join();
      threads.clear();
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

  // The part of the pool that belongs to one process. A fork child replaces the one it inherited
  // (whose workers do not exist in the child and whose mutex a parent thread may have held) with a
  // fresh one, and leaks the old: joining or destroying it would wait forever.
  struct Process {
    pid_t pid = getpid();
    std::mutex run_mutex;
    std::unique_ptr<State> state;
  };

  Process& process() {
    const pid_t me = getpid();
    Process* p = process_.load();
    while (p->pid != me) {
      auto fresh = std::make_unique<Process>();
      if (process_.compare_exchange_strong(p, fresh.get())) return *fresh.release();
      // another thread of this child got there first; p now holds its value
    }
    return *p;
  }

  std::atomic<size_t> num_threads_{1};
  std::atomic<Source> source_{Source::affinity};
  std::string note_;
  std::atomic<Process*> process_{nullptr};
};

}  // namespace rlf
