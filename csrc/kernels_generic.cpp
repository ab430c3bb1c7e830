// Portable kernels: GCC/Clang vector extensions, which become SSE2 on x86-64 and NEON on ARM.
#include "dot_kernels_impl.hpp"

namespace rlf {
namespace {

struct GenericLanes {
  typedef double V __attribute__((vector_size(16)));
  static constexpr size_t width = 2;
  static V zero() { return V{0.0, 0.0}; }
  static V load(const float* p) { return V{static_cast<double>(p[0]), static_cast<double>(p[1])}; }
  static V fma(V a, V b, V acc) { return acc + a * b; }
  static double sum(V v) { return v[0] + v[1]; }
  static void f16_to_f32(const uint16_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
  }
  static void i8_to_f32(const int8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  }
};

}  // namespace

const DotKernels& generic_kernels() { return detail::make_kernels<GenericLanes>("generic"); }

}  // namespace rlf
