// The dot-product kernel, written once over a SIMD "lane" type. Included by exactly one .cpp per
// instruction set; that file defines the Lanes struct and instantiates make_kernels<Lanes>().
//
// Lanes must provide: type V (a vector of `width` doubles or floats); V zero(); V load(const T*)
// for T in float, uint16_t (IEEE half bits) and int8_t, reading `width` elements;
// V fma(V a, V b, V acc); double sum(V); double scalar(T) for one element.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "dot_kernels.hpp"

namespace rlf::detail {

// QR query rows times AR stored rows (element type T: float, IEEE half bits, or int8), accumulated
// together so each loaded vector is reused. Values are widened to double before the multiply: a
// product of two floats (or of a float and a half or an int8) is exact in double, so the sum is as
// accurate as RouteLLM's float64 arithmetic. Stored rows are decoded in registers, never in memory.
template <class L, int QR, int AR, class T>
inline void dot_tile(const float* q, size_t ld_q, const T* r, size_t ld_r, size_t dim, double* out,
                     size_t ld_out) {
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
        total += static_cast<double>(q[i * ld_q + k]) * L::scalar(r[j * ld_r + k]);
      out[i * ld_out + j] = total;
    }
}

// All query rows against AR (1..4) stored rows.
template <class L, int AR, class T>
inline void dot_queries(const float* queries, size_t n_queries, size_t ld_q, const T* r, size_t ld_r,
                        size_t dim, double* out, size_t ld_out) {
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

// Stored rows four at a time (each block of four stays in L1 while every query passes over it).
template <class L, class T>
void dot_rows_typed(const float* queries, size_t n_queries, size_t ld_q, const T* rows, size_t stride,
                    size_t dim, size_t row_begin, size_t row_end, double* out, size_t ld_out) {
  size_t r = row_begin;
  for (; r + 4 <= row_end; r += 4)
    dot_queries<L, 4>(queries, n_queries, ld_q, rows + r * stride, stride, dim, out + (r - row_begin), ld_out);
  const T* rest = rows + r * stride;
  double* o = out + (r - row_begin);
  switch (row_end - r) {
    case 3: dot_queries<L, 3>(queries, n_queries, ld_q, rest, stride, dim, o, ld_out); break;
    case 2: dot_queries<L, 2>(queries, n_queries, ld_q, rest, stride, dim, o, ld_out); break;
    case 1: dot_queries<L, 1>(queries, n_queries, ld_q, rest, stride, dim, o, ld_out); break;
    default: break;
  }
}

// float32 rows use double lanes (exact, like RouteLLM's float64). float16 and int8 rows are
// approximations already (relative rounding ~5e-4 and ~4e-3 per element), so they use float
// lanes: twice the arithmetic rate, with accumulation error (~1e-7) far below their own.
template <class Exact, class Fast>
void dot_rows(const float* queries, size_t n_queries, size_t ld_q, const RowsView& rows, size_t row_begin,
              size_t row_end, double* out, size_t ld_out) {
  switch (rows.storage) {
    case Storage::f32:
      return dot_rows_typed<Exact>(queries, n_queries, ld_q, static_cast<const float*>(rows.data), rows.stride,
                                   rows.dim, row_begin, row_end, out, ld_out);
    case Storage::f16:
      return dot_rows_typed<Fast>(queries, n_queries, ld_q, static_cast<const uint16_t*>(rows.data), rows.stride,
                                  rows.dim, row_begin, row_end, out, ld_out);
    case Storage::i8:
      return dot_rows_typed<Fast>(queries, n_queries, ld_q, static_cast<const int8_t*>(rows.data), rows.stride,
                                  rows.dim, row_begin, row_end, out, ld_out);
  }
}

template <class Exact, class Fast>
const DotKernels& make_kernels(const char* name) {
  static const DotKernels table{name, &dot_rows<Exact, Fast>};
  return table;
}

}  // namespace rlf::detail
