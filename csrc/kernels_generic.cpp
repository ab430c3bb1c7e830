// Portable kernels: GCC/Clang vector extensions, which become SSE2 on x86-64 and NEON on ARM.
#include "dot_kernels_impl.hpp"

namespace rlf {
namespace {

struct GenericLanes {
  typedef double V __attribute__((vector_size(16)));
  static constexpr size_t width = 2;
  static double scalar(float x) { return x; }
  static double scalar(uint16_t x) { return half_to_float(x); }
  static double scalar(int8_t x) { return x; }
  static V zero() { return V{0.0, 0.0}; }
  template <class T>
  static V load(const T* p) { return V{scalar(p[0]), scalar(p[1])}; }
  static V fma(V a, V b, V acc) { return acc + a * b; }
  static double sum(V v) { return v[0] + v[1]; }
};

struct GenericFloatLanes {
  typedef float V __attribute__((vector_size(16)));
  static constexpr size_t width = 4;
  static double scalar(float x) { return x; }
  static double scalar(uint16_t x) { return half_to_float(x); }
  static double scalar(int8_t x) { return x; }
  static V zero() { return V{0.f, 0.f, 0.f, 0.f}; }
  template <class T>
  static V load(const T* p) {
    return V{static_cast<float>(scalar(p[0])), static_cast<float>(scalar(p[1])), static_cast<float>(scalar(p[2])),
             static_cast<float>(scalar(p[3]))};
  }
  static V fma(V a, V b, V acc) { return acc + a * b; }
  static double sum(V v) {
    return (static_cast<double>(v[0]) + static_cast<double>(v[1])) + (static_cast<double>(v[2]) + static_cast<double>(v[3]));
  }
};

}  // namespace

const DotKernels& generic_kernels() { return detail::make_kernels<GenericLanes, GenericFloatLanes>("generic"); }

}  // namespace rlf
