// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only called after a CPU check.
#include <immintrin.h>

#include "dot_kernels_impl.hpp"

namespace rlf {
namespace {

struct Avx2Lanes {
  using V = __m256d;
  static constexpr size_t width = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static V fma(V a, V b, V acc) { return _mm256_fmadd_pd(a, b, acc); }
  static double sum(V v) {
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
  static void f16_to_f32(const uint16_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  static void i8_to_f32(const int8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n; i += 8) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i));
      _mm256_storeu_ps(dst + i, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)));
    }
  }
};

}  // namespace

const DotKernels& avx2_kernels() { return detail::make_kernels<Avx2Lanes>("avx2"); }

}  // namespace rlf
