// Spreads independent work items over the threads of torch's intra-op pool (OpenMP in torch's CPU builds),
// handing them out through an atomic counter so that uneven items (long and short sequences) balance.
#pragma once

#include <ATen/Parallel.h>

#include <atomic>
#include <cstdint>

namespace tokasaurus::cpu {

// fn(thread_state, item) for item in [0, num_items); make_state() builds each thread's scratch once.
template <typename MakeState, typename Fn>
void parallel_items(int64_t num_items, MakeState&& make_state, Fn&& fn) {
  if (num_items <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), num_items);
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      auto state = make_state();
      for (int64_t item = next.fetch_add(1); item < num_items; item = next.fetch_add(1)) fn(state, item);
    }
  });
}

}  // namespace tokasaurus::cpu
