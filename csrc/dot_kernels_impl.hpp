// The dot-product kernel, written once over a SIMD "lane" type. Included by exactly one .cpp per
// instruction set; that file defines the Lanes struct and instantiates make_kernels<Lanes>().
//
// Lanes must provide: type V (a vector of `width` doubles); V zero(); V load(const float*) (reads
// `width` floats, widened); V fma(V a, V b, V acc); double sum(V);
// void f16_to_f32(const uint16_t*, float*, size_t n);
// void i8_to_f32(const int8_t*, float*, size_t n)  (n is a multiple of 16).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "dot_kernels.hpp"

namespace rlf::detail {

// QR query rows times AR stored rows, accumulated together so each loaded vector is reused.
// fp32 inputs are widened to double before the multiply: a product of two floats is exact in
// double, so the sum is as accurate as RouteLLM's float64 arithmetic.
template <class L, int QR, int AR>
inline void dot_tile(const float* q, size_t ld_q, const float* r, size_t ld_r, size_t dim,
                     double* out, size_t ld_out) {
  using V = typename L::V;
  V acc[QR][AR];
  for (int i = 0; i < QR; ++i)
    for (int j = 0; j < AR; ++j) acc[i][j] = L::zero();
  const size_t vec_end = dim - dim % L::width;
  for (size_t k = 0; k < vec_end; k += L::width) {
    V qv[QR];
    for (int i = 0; i < QR; ++i) qv[i] = L::load(q + i * ld_q + k);
    for (int j = 0; j < AR; ++j) {
      const V rv = L::load(r + j * ld_r + k);
      for (int i = 0; i < QR; ++i) acc[i][j] = L::fma(qv[i], rv, acc[i][j]);
    }
  }
  for (int i = 0; i < QR; ++i)
    for (int j = 0; j < AR; ++j) {
      double total = L::sum(acc[i][j]);
      for (size_t k = vec_end; k < dim; ++k)  // tail of a query whose dimension is not a lane multiple
        total += static_cast<double>(q[i * ld_q + k]) * static_cast<double>(r[j * ld_r + k]);
      out[i * ld_out + j] = total;
    }
}

// All query rows against AR (1..4) stored rows that are already fp32.
template <class L, int AR>
inline void dot_queries(const float* queries, size_t n_queries, size_t ld_q, const float* r,
                        size_t ld_r, size_t dim, double* out, size_t ld_out) {
  constexpr int QR = 3;
  size_t q = 0;
  for (; q + QR <= n_queries; q += QR)
    dot_tile<L, QR, AR>(queries + q * ld_q, ld_q, r, ld_r, dim, out + q * ld_out, ld_out);
  switch (n_queries - q) {
    case 2: dot_tile<L, 2, AR>(queries + q * ld_q, ld_q, r, ld_r, dim, out + q * ld_out, ld_out); break;
    case 1: dot_tile<L, 1, AR>(queries + q * ld_q, ld_q, r, ld_r, dim, out + q * ld_out, ld_out); break;
    default: break;
  }
}

template <class L>
inline void dot_queries_n(int n_rows, const float* queries, size_t n_queries, size_t ld_q,
                          const float* r, size_t ld_r, size_t dim, double* out, size_t ld_out) {
  switch (n_rows) {
    case 4: dot_queries<L, 4>(queries, n_queries, ld_q, r, ld_r, dim, out, ld_out); break;
    case 3: dot_queries<L, 3>(queries, n_queries, ld_q, r, ld_r, dim, out, ld_out); break;
    case 2: dot_queries<L, 2>(queries, n_queries, ld_q, r, ld_r, dim, out, ld_out); break;
    case 1: dot_queries<L, 1>(queries, n_queries, ld_q, r, ld_r, dim, out, ld_out); break;
    default: break;
  }
}

template <class L>
void dot_rows(const float* queries, size_t n_queries, size_t ld_q, const RowsView& rows,
              size_t row_begin, size_t row_end, double* out, size_t ld_out, float* scratch) {
  static_assert(kDecodeRows == 4, "tiles take four stored rows at a time");
  for (size_t r = row_begin; r < row_end; r += kDecodeRows) {
    const int n = static_cast<int>(std::min(kDecodeRows, row_end - r));
    const float* block = nullptr;
    switch (rows.storage) {
      case Storage::f32:
        block = static_cast<const float*>(rows.data) + r * rows.stride;
        break;
      case Storage::f16:
        L::f16_to_f32(static_cast<const uint16_t*>(rows.data) + r * rows.stride, scratch,
                      n * rows.stride);
        block = scratch;
        break;
      case Storage::i8:
        L::i8_to_f32(static_cast<const int8_t*>(rows.data) + r * rows.stride, scratch,
                     n * rows.stride);
        block = scratch;
        break;
    }
    dot_queries_n<L>(n, queries, n_queries, ld_q, block, rows.stride, rows.dim,
                     out + (r - row_begin), ld_out);
  }
}

template <class L>
const DotKernels& make_kernels(const char* name) {
  static const DotKernels table{name, &dot_rows<L>};
  return table;
}

}  // namespace rlf::detail
