// The loop the C++ kernels split over the CPU's cores.
#pragma once
#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace vit_ms {

// body(begin, end) over [0, n) in one chunk per thread, at most one thread per core and per min_per_thread items:
// for small work, starting a thread would cost more than it saves.
template <typename Body>
void ParallelFor(int64_t n, Body body, int64_t min_per_thread = 1 << 16) {
  const int64_t cores = std::max(1u, std::thread::hardware_concurrency());
  const int64_t threads = std::max<int64_t>(1, std::min(cores, n / min_per_thread));
  const int64_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> workers;
  for (int64_t t = 1; t < threads; ++t) {
    workers.emplace_back(body, t * chunk, std::min(n, (t + 1) * chunk));
  }
  body(0, std::min(n, chunk));
  for (auto &w : workers) w.join();
}

}  // namespace vit_ms
