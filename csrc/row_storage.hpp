// How stored rows (the sw arena's prompt embeddings, the mf pair vector) are laid out in memory:
// 64-byte aligned buffers of rows `padded_stride(dim)` elements apart, zero padded, in float32,
// IEEE half or int8 (see Storage and RowsView in dot_kernels.hpp). Encoding, and copying encoded
// rows out and back in (pickling) without re-deriving anything.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "dot_kernels.hpp"

namespace rlf {

// 64-byte aligned, zero-initialised storage for stored rows.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes)
      : ptr_(static_cast<uint8_t*>(::operator new[](std::max<size_t>(bytes, 64), std::align_val_t(64)))),
        bytes_(bytes) {
    std::memset(ptr_.get(), 0, std::max<size_t>(bytes, 64));
  }
  uint8_t* data() { return ptr_.get(); }
  const uint8_t* data() const { return ptr_.get(); }
  size_t size() const { return bytes_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<uint8_t[], Free> ptr_;
  size_t bytes_ = 0;
};

// 1 / |q| of query embedding row ``row`` (``dim`` floats) for a cosine similarity; a NaN/inf entry
// or a zero vector (whose cosine is undefined) is an std::invalid_argument naming the row.
inline double checked_inv_norm(const float* q, size_t dim, size_t row) {
  double norm2 = 0.0;
  for (size_t d = 0; d < dim; ++d) {
    const double v = q[d];
    if (!std::isfinite(v))
      throw std::invalid_argument("query embedding row " + std::to_string(row) + " contains NaN or inf");
    norm2 += v * v;
  }
  if (!(norm2 > 0.0))
    throw std::invalid_argument("query embedding row " + std::to_string(row) +
                                " is a zero vector: its cosine similarity is undefined");
  return 1.0 / std::sqrt(norm2);
}

inline size_t padded_stride(size_t dim) { return (dim + 15) / 16 * 16; }

inline size_t element_size(Storage s) { return s == Storage::f32 ? 4 : s == Storage::f16 ? 2 : 1; }

inline const char* storage_name(Storage s) {
  switch (s) {
    case Storage::f32: return "float32";
    case Storage::f16: return "float16";
    case Storage::i8: return "int8";
  }
  return "?";
}

// Rows encoded for storage, with a per-row factor that turns a raw dot product into a cosine
// numerator: 1/||row|| for float32 rows; 1 for float16 rows, which are stored as unit vectors; and
// 1/||row|| times the row's quantisation scale for int8 rows.
struct EncodedRows {
  AlignedBuffer buffer;
  RowsView view;
  std::vector<double> row_factor;

  size_t bytes() const { return view.rows * view.stride * element_size(view.storage); }
};

inline EncodedRows allocate_rows(size_t n, size_t dim, Storage storage) {
  EncodedRows enc;
  const size_t stride = padded_stride(dim);
  enc.buffer = AlignedBuffer(n * stride * element_size(storage));
  enc.view = RowsView{storage, enc.buffer.data(), n, dim, stride};
  enc.row_factor.resize(n);
  return enc;
}

// Encodes rows[row_ids[i]] (rows of `dim` floats, C order) as stored row i. `what` names the rows
// in error messages, which give the row's index in `rows`.
inline EncodedRows encode_rows(const float* rows, size_t dim, const std::vector<size_t>& row_ids, Storage storage,
                               const char* what) {
  EncodedRows enc = allocate_rows(row_ids.size(), dim, storage);
  const size_t stride = enc.view.stride;
  for (size_t r = 0; r < row_ids.size(); ++r) {
    const size_t id = row_ids[r];
    const float* src = rows + id * dim;
    double norm2 = 0.0, max_abs = 0.0;
    for (size_t k = 0; k < dim; ++k) {
      const double v = src[k];
      if (!std::isfinite(v))
        throw std::invalid_argument(std::string(what) + " row " + std::to_string(id) + " contains NaN or inf");
      norm2 += v * v;
      max_abs = std::max(max_abs, std::fabs(v));
    }
    if (!(norm2 > 0.0))
      throw std::invalid_argument(std::string(what) + " row " + std::to_string(id) +
                                  " is a zero vector: its cosine similarity is undefined");
    const double inv_norm = 1.0 / std::sqrt(norm2);
    switch (storage) {
      case Storage::f32:
        std::memcpy(reinterpret_cast<float*>(enc.buffer.data()) + r * stride, src, dim * 4);
        enc.row_factor[r] = inv_norm;
        break;
      case Storage::f16: {
        // Cosine similarity does not depend on a row's length, so the row is stored as its unit
        // vector (divided in double): float16 then keeps its full relative precision whatever the
        // embeddings' scale, instead of flushing tiny values to subnormals or zero and overflowing
        // past 65504. The unit row's norm is 1, so the factor is 1.
        uint16_t* dst = reinterpret_cast<uint16_t*>(enc.buffer.data()) + r * stride;
        for (size_t k = 0; k < dim; ++k) dst[k] = float_to_half(static_cast<float>(src[k] * inv_norm));
        enc.row_factor[r] = 1.0;
        break;
      }
      case Storage::i8: {  // symmetric per-row quantisation: row ~= scale * q, q in [-127, 127]; scale-free
        int8_t* dst = reinterpret_cast<int8_t*>(enc.buffer.data()) + r * stride;
        const double scale = max_abs / 127.0;
        for (size_t k = 0; k < dim; ++k)
          dst[k] = static_cast<int8_t>(std::lround(std::clamp(src[k] / scale, -127.0, 127.0)));
        enc.row_factor[r] = inv_norm * scale;
        break;
      }
    }
  }
  return enc;
}

// Copies the stored rows, without their padding, to dst[rows * dim] (elements of the storage type).
inline void copy_rows_out(const EncodedRows& enc, void* dst) {
  const size_t row_bytes = enc.view.dim * element_size(enc.view.storage);
  const size_t stride_bytes = enc.view.stride * element_size(enc.view.storage);
  for (size_t r = 0; r < enc.view.rows; ++r)
    std::memcpy(static_cast<uint8_t*>(dst) + r * row_bytes, enc.buffer.data() + r * stride_bytes, row_bytes);
}

// The inverse of copy_rows_out plus the row factors: the same bits, nothing re-encoded. Refuses
// what encode_rows never produces and scoring cannot handle (non-finite values or factors).
inline EncodedRows restore_rows(const void* src, size_t n, size_t dim, Storage storage, std::vector<double> row_factor,
                                const char* what) {
  if (row_factor.size() != n)
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(n) + " rows but " +
                                std::to_string(row_factor.size()) + " row factors");
  EncodedRows enc = allocate_rows(n, dim, storage);
  const size_t row_bytes = dim * element_size(storage);
  const size_t stride_bytes = enc.view.stride * element_size(storage);
  for (size_t r = 0; r < n; ++r) {
    if (!std::isfinite(row_factor[r]) || !(row_factor[r] > 0.0))
      throw std::invalid_argument(std::string(what) + " row " + std::to_string(r) + " has factor " +
                                  std::to_string(row_factor[r]) + "; expected a finite positive number");
    uint8_t* dst = enc.buffer.data() + r * stride_bytes;
    std::memcpy(dst, static_cast<const uint8_t*>(src) + r * row_bytes, row_bytes);
    for (size_t k = 0; k < dim; ++k) {
      const bool finite = storage == Storage::f32   ? std::isfinite(reinterpret_cast<const float*>(dst)[k])
                          : storage == Storage::f16 ? (reinterpret_cast<const uint16_t*>(dst)[k] & 0x7c00u) != 0x7c00u
                                                    : true;
      if (!finite)
        throw std::invalid_argument(std::string(what) + " row " + std::to_string(r) + " contains NaN or inf");
    }
  }
  enc.row_factor = std::move(row_factor);
  return enc;
}

}  // namespace rlf
