// AVX-512 (F + BW + VL) kernels. Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c;
// only called after a CPU check.
#include <immintrin.h>

#include "dot_kernels_impl.hpp"

namespace rlf {
namespace {

struct Avx512Lanes {
  using V = __m512d;
  static constexpr size_t width = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static V fma(V a, V b, V acc) { return _mm512_fmadd_pd(a, b, acc); }
  static double sum(V v) { return _mm512_reduce_add_pd(v); }
  static void f16_to_f32(const uint16_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; i += 16)
      _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  }
  static void i8_to_f32(const int8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; i += 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      _mm512_storeu_ps(dst + i, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)));
    }
  }
};

}  // namespace

const DotKernels& avx512_kernels() { return detail::make_kernels<Avx512Lanes>("avx512"); }

}  // namespace rlf
