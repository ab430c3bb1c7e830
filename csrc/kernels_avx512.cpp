// AVX-512 (F + BW + VL) kernels. Compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c;
// only called after a CPU check.
#include <immintrin.h>

#include "dot_kernels_impl.hpp"

namespace rlf {
namespace {

struct Avx512Lanes {
  using V = __m512d;
  static constexpr size_t width = 8;
  static double scalar(float x) { return x; }
  static double scalar(uint16_t x) { return _cvtsh_ss(x); }
  static double scalar(int8_t x) { return x; }
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static V load(const uint16_t* p) {
    return _mm512_cvtps_pd(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static V load(const int8_t* p) {
    return _mm512_cvtepi32_pd(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static V fma(V a, V b, V acc) { return _mm512_fmadd_pd(a, b, acc); }
  static double sum(V v) { return _mm512_reduce_add_pd(v); }
};

struct Avx512FloatLanes {
  using V = __m512;
  static constexpr size_t width = 16;
  static double scalar(float x) { return x; }
  static double scalar(uint16_t x) { return _cvtsh_ss(x); }
  static double scalar(int8_t x) { return x; }
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static V load(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static V fma(V a, V b, V acc) { return _mm512_fmadd_ps(a, b, acc); }
  static double sum(V v) {
    const __m512d d = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)),
                                    _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    return _mm512_reduce_add_pd(d);
  }
};

}  // namespace

const DotKernels& avx512_kernels() { return detail::make_kernels<Avx512Lanes, Avx512FloatLanes>("avx512"); }

}  // namespace rlf
