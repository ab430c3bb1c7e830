// Dot products of a block of query rows with a block of stored rows, the one hot loop of both
// routers. Each instruction set (generic, AVX2, AVX-512) compiles the same templates in its own
// translation unit with its own flags; the table of the best one the CPU supports is picked at run
// time, so the package is built for a portable baseline and never executes an unsupported op.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rlf {

// How stored rows (the sw arena, the mf pair vectors) are kept in memory.
enum class Storage : int { f32 = 0, f16 = 1, i8 = 2 };

// A row-major matrix of stored rows. Rows are `stride` elements apart (a multiple of 16, zero
// padded) and hold `dim` meaningful elements. int8 rows carry their own scale outside this view.
struct RowsView {
  Storage storage = Storage::f32;
  const void* data = nullptr;
  size_t rows = 0;
  size_t dim = 0;
  size_t stride = 0;
};

struct DotKernels {
  const char* name;
  // out[q * ld_out + (r - row_begin)] = sum_k queries[q * ld_q + k] * row_r[k] for k < dim,
  // for q in [0, n_queries), r in [row_begin, row_end). Exact products summed in double: the
  // result equals a float64 dot product of the same float32 values to rounding.
  void (*dot_rows)(const float* queries, size_t n_queries, size_t ld_q, const RowsView& rows,
                   size_t row_begin, size_t row_end, double* out, size_t ld_out);
};

const DotKernels& generic_kernels();
#if defined(RLF_HAVE_AVX2)
const DotKernels& avx2_kernels();
#endif
#if defined(RLF_HAVE_AVX512)
const DotKernels& avx512_kernels();
#endif

// IEEE half <-> float conversion (round to nearest even), used when an arena is stored as fp16.
inline uint16_t float_to_half(float value) {
  uint32_t x;
  __builtin_memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds past 65504: inf
  if (abs < 0x38800000u) {                                             // subnormal half or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;  // 14..24
    uint32_t half = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(112 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 112) << 23 | mant << 13;
  }
  float out;
  __builtin_memcpy(&out, &bits, 4);
  return out;
}

}  // namespace rlf
