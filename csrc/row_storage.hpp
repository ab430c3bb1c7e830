// How stored rows (the sw arena's prompt embeddings, the mf pair vector) are laid out in memory:
// 64-byte aligned buffers of rows `padded_stride(dim)` elements apart, zero padded, in float32,
// IEEE half or int8 (see Storage and RowsView in dot_kernels.hpp). Encoding rows for storage.
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
// numerator: 1/||row|| (from the fp32 row), times the int8 scale for int8 rows.
struct EncodedRows {
  AlignedBuffer buffer;
  RowsView view;
  std::vector<double> row_factor;

  size_t bytes() const { return view.rows * view.stride * element_size(view.storage); }
};

inline EncodedRows encode_rows(const float* rows, size_t n, size_t dim, Storage storage, const char* what) {
  EncodedRows enc;
  const size_t stride = padded_stride(dim);
  const size_t elem = element_size(storage);
  enc.buffer = AlignedBuffer(n * stride * elem);
  enc.view = RowsView{storage, enc.buffer.data(), n, dim, stride};
  enc.row_factor.resize(n);
  for (size_t r = 0; r < n; ++r) {
    const float* src = rows + r * dim;
    double norm2 = 0.0, max_abs = 0.0;
    for (size_t k = 0; k < dim; ++k) {
      const double v = src[k];
      if (!std::isfinite(v))
        throw std::invalid_argument(std::string(what) + " row " + std::to_string(r) + " contains NaN or inf");
      norm2 += v * v;
      max_abs = std::max(max_abs, std::fabs(v));
    }
    if (!(norm2 > 0.0))
      throw std::invalid_argument(std::string(what) + " row " + std::to_string(r) +
                                  " is a zero vector: its cosine similarity is undefined");
    const double inv_norm = 1.0 / std::sqrt(norm2);
    switch (storage) {
      case Storage::f32:
        std::memcpy(reinterpret_cast<float*>(enc.buffer.data()) + r * stride, src, dim * 4);
        enc.row_factor[r] = inv_norm;
        break;
      case Storage::f16: {
        uint16_t* dst = reinterpret_cast<uint16_t*>(enc.buffer.data()) + r * stride;
        for (size_t k = 0; k < dim; ++k) dst[k] = float_to_half(src[k]);
        if (max_abs >= 65520.0)
          throw std::invalid_argument(std::string(what) + " row " + std::to_string(r) +
                                      " has values beyond float16 range; use float32 storage");
        enc.row_factor[r] = inv_norm;
        break;
      }
      case Storage::i8: {  // symmetric per-row quantisation: row ~= scale * q, q in [-127, 127]
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

}  // namespace rlf
