// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only called after a CPU check.
#include <immintrin.h>

#include "dot_kernels_impl.hpp"

namespace rlf {
namespace {

struct Avx2Lanes {
  using V = __m256d;
  static constexpr size_t width = 4;
  static double scalar(float x) { return x; }
  static double scalar(uint16_t x) { return _cvtsh_ss(x); }
  static double scalar(int8_t x) { return x; }
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static V load(const uint16_t* p) {
    return _mm256_cvtps_pd(_mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static V load(const int8_t* p) {
    int32_t four;
    __builtin_memcpy(&four, p, 4);
    return _mm256_cvtepi32_pd(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(four)));
  }
  static V fma(V a, V b, V acc) { return _mm256_fmadd_pd(a, b, acc); }
  static double sum(V v) {
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
};

struct Avx2FloatLanes {
  using V = __m256;
  static constexpr size_t width = 8;
  static double scalar(float x) { return x; }
  static double scalar(uint16_t x) { return _cvtsh_ss(x); }
  static double scalar(int8_t x) { return x; }
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static V load(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static V fma(V a, V b, V acc) { return _mm256_fmadd_ps(a, b, acc); }
  static double sum(V v) {
    const __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
};

}  // namespace

const DotKernels& avx2_kernels() { return detail::make_kernels<Avx2Lanes, Avx2FloatLanes>("avx2"); }

}  // namespace rlf
