// Which kernel table runs: the best the CPU supports, or the one ROUTELLM_FAST_SIMD / set_simd()
// names (generic, avx2, avx512). A request the CPU cannot run is refused, never attempted.
#pragma once

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "dot_kernels.hpp"

namespace rlf {

// Instruction sets this build contains and this CPU can execute, best last.
inline std::vector<std::string> supported_simd() {
  std::vector<std::string> out{"generic"};
#if defined(RLF_HAVE_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    out.push_back("avx2");
#endif
#if defined(RLF_HAVE_AVX512)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c"))
    out.push_back("avx512");
#endif
  return out;
}

inline const DotKernels& kernels_named(const std::string& name) {
  for (const auto& s : supported_simd()) {
    if (s != name) continue;
#if defined(RLF_HAVE_AVX512)
    if (name == "avx512") return avx512_kernels();
#endif
#if defined(RLF_HAVE_AVX2)
    if (name == "avx2") return avx2_kernels();
#endif
    return generic_kernels();
  }
  std::string have;
  for (const auto& s : supported_simd()) have += (have.empty() ? "" : ", ") + s;
  throw std::invalid_argument("SIMD path '" + name + "' is not available on this CPU/build; available: " + have);
}

inline std::atomic<const DotKernels*>& active_kernels_slot() {
  static std::atomic<const DotKernels*> slot{[] {
    const char* env = std::getenv("ROUTELLM_FAST_SIMD");
    if (env && *env) return &kernels_named(env);
    return &kernels_named(supported_simd().back());
  }()};
  return slot;
}

inline const DotKernels& active_kernels() { return *active_kernels_slot().load(std::memory_order_acquire); }

inline void set_simd(const std::string& name) {
  active_kernels_slot().store(&kernels_named(name), std::memory_order_release);
}

}  // namespace rlf
