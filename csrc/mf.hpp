// The matrix-factorisation (mf) router. RouteLLM scores a model m on a prompt embedding e as
//   logit(m) = w . (normalize(P[m]) * (W_proj e))
// and the strong model's win rate as sigmoid(logit(strong) - logit(weak)). For a fixed pair this is
// linear in e: logit(strong) - logit(weak) = v . e with v = W_proj^T (w * (n_strong - n_weak)), so
// a decision is one dot product (RouteLLM issues #9 and #26). v is computed once, in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend.hpp"
#include "row_storage.hpp"
#include "thread_pool.hpp"

namespace rlf {

struct MfWeights {
  const float* model_embeddings = nullptr;  // P: [num_models, hidden]
  int num_models = 0;
  int hidden = 0;
  const float* text_projection = nullptr;  // W_proj: [hidden, text_dim], or null when use_proj is false
  int text_dim = 0;
  const float* classifier = nullptr;  // w: [hidden]
};

class MfPairScorer {
 public:
  MfPairScorer(const MfWeights& m, int strong, int weak) {
    if (strong < 0 || strong >= m.num_models || weak < 0 || weak >= m.num_models)
      throw std::invalid_argument("model index outside [0, " + std::to_string(m.num_models) + ")");
    if (!m.text_projection && m.text_dim != m.hidden)
      throw std::invalid_argument("without a text projection text_dim (" + std::to_string(m.text_dim) +
                                  ") must equal the hidden size (" + std::to_string(m.hidden) + ")");
    const int h = m.hidden;
    // u = w * (normalize(P[strong]) - normalize(P[weak])), with torch's normalize eps of 1e-12.
    auto unit = [&](int model) {
      std::vector<double> row(m.model_embeddings + static_cast<size_t>(model) * h,
                              m.model_embeddings + static_cast<size_t>(model + 1) * h);
      double n2 = 0.0;
      for (double x : row) {
        if (!std::isfinite(x)) throw std::invalid_argument("model embedding P[" + std::to_string(model) + "] is not finite");
        n2 += x * x;
      }
      const double scale = 1.0 / std::max(std::sqrt(n2), 1e-12);
      for (double& x : row) x *= scale;
      return row;
    };
    const std::vector<double> s = unit(strong), w = unit(weak);
    std::vector<double> u(h);
    for (int k = 0; k < h; ++k) u[k] = static_cast<double>(m.classifier[k]) * (s[k] - w[k]);
    std::vector<double> v(m.text_dim, 0.0);
    if (m.text_projection) {
      for (int k = 0; k < h; ++k) {
        const float* row = m.text_projection + static_cast<size_t>(k) * m.text_dim;
        for (int j = 0; j < m.text_dim; ++j) v[j] += u[k] * row[j];
      }
    } else {
      v = u;
    }
    for (double x : v)
      if (!std::isfinite(x)) throw std::invalid_argument("mf weights produce a non-finite pair vector");
    // v as two float rows, hi + lo == v to ~48 bits: the kernel's exact float products then give
    // v . e to double precision in one pass over e.
    allocate(static_cast<size_t>(m.text_dim));
    for (int j = 0; j < m.text_dim; ++j) {
      hi()[j] = static_cast<float>(v[j]);
      lo()[j] = static_cast<float>(v[j] - static_cast<double>(hi()[j]));
    }
  }

  // Restores a scorer from its pair vector's two rows as hi() and lo() give them (unpickling).
  MfPairScorer(const float* hi_row, const float* lo_row, size_t text_dim) {
    if (text_dim > static_cast<size_t>(std::numeric_limits<int>::max()))
      throw std::invalid_argument("mf state: text_dim " + std::to_string(text_dim) + " is too large");
    for (size_t j = 0; j < text_dim; ++j)
      if (!std::isfinite(hi_row[j]) || !std::isfinite(lo_row[j]))
        throw std::invalid_argument("mf state: the pair vector is not finite at element " + std::to_string(j));
    allocate(text_dim);
    std::copy(hi_row, hi_row + text_dim, hi());
    std::copy(lo_row, lo_row + text_dim, lo());
  }

  int text_dim() const { return static_cast<int>(view_.dim); }
  // The pair vector v ~ hi + lo (hi = float(v), lo = float(v - hi)), text_dim floats each.
  const float* hi() const { return reinterpret_cast<const float*>(buffer_.data()); }
  const float* lo() const { return hi() + view_.stride; }

  // Win rates for n prompt embeddings (rows ld_q floats apart) into out[n].
  void score(const float* queries, size_t n, size_t ld_q, double* out) const {
    const DotKernels& kernels = active_kernels();
    constexpr size_t kChunk = 1024;
    const size_t tasks = (n + kChunk - 1) / kChunk;
    ThreadPool::instance().parallel_for(tasks, [&](size_t t) {
      const size_t q0 = t * kChunk, q1 = std::min(n, q0 + kChunk);
      double parts[2 * kChunk];  // (hi, lo) dot products per query
      kernels.dot_rows(queries + q0 * ld_q, q1 - q0, ld_q, view_, 0, 2, parts, 2);
      for (size_t q = q0; q < q1; ++q) {
        out[q] = parts[2 * (q - q0)] + parts[2 * (q - q0) + 1];
        // NaN or inf anywhere in a row makes its dot product non-finite (inf * 0 is NaN too), so
        // checking the result validates the input without a second pass over it.
        if (!std::isfinite(out[q]))
          throw std::invalid_argument("prompt embedding row " + std::to_string(q) +
                                      " contains NaN or inf (or values so large the score overflows)");
        out[q] = 1.0 / (1.0 + std::exp(-out[q]));
      }
    });
  }

 private:
  float* hi() { return reinterpret_cast<float*>(buffer_.data()); }
  float* lo() { return hi() + view_.stride; }

  void allocate(size_t text_dim) {
    const size_t stride = padded_stride(text_dim);
    buffer_ = AlignedBuffer(2 * stride * sizeof(float));
    view_ = RowsView{Storage::f32, buffer_.data(), 2, text_dim, stride};
  }

  AlignedBuffer buffer_;
  RowsView view_;
};

// Every model's mf score at once, for routing among many models: logit(m) = v_m . e with
// v_m = W_proj^T (w * normalize(P[m])), each v_m stored as hi/lo float rows like the pair vector, so
// logit(a) - logit(b) is the pair scorer's v . e to double rounding.
class MfModelScorer {
 public:
  explicit MfModelScorer(const MfWeights& m) : models_(m.num_models), text_dim_(m.text_dim) {
    if (m.num_models < 1) throw std::invalid_argument("the mf checkpoint has no models");
    if (!m.text_projection && m.text_dim != m.hidden)
      throw std::invalid_argument("without a text projection text_dim (" + std::to_string(m.text_dim) +
                                  ") must equal the hidden size (" + std::to_string(m.hidden) + ")");
    const size_t stride = padded_stride(static_cast<size_t>(m.text_dim));
    buffer_ = AlignedBuffer(2 * static_cast<size_t>(models_) * stride * sizeof(float));
    view_ = RowsView{Storage::f32, buffer_.data(), 2 * static_cast<size_t>(models_), static_cast<size_t>(m.text_dim), stride};
    float* rows = reinterpret_cast<float*>(buffer_.data());
    const int h = m.hidden;
    std::vector<double> u(h), v(m.text_dim);
    for (int model = 0; model < models_; ++model) {
      const float* p = m.model_embeddings + static_cast<size_t>(model) * h;
      double n2 = 0.0;
      for (int k = 0; k < h; ++k) {
        if (!std::isfinite(p[k])) throw std::invalid_argument("model embedding P[" + std::to_string(model) + "] is not finite");
        n2 += static_cast<double>(p[k]) * p[k];
      }
      const double scale = 1.0 / std::max(std::sqrt(n2), 1e-12);  // torch's normalize eps
      for (int k = 0; k < h; ++k) u[k] = static_cast<double>(m.classifier[k]) * (p[k] * scale);
      if (m.text_projection) {
        std::fill(v.begin(), v.end(), 0.0);
        for (int k = 0; k < h; ++k) {
          const float* row = m.text_projection + static_cast<size_t>(k) * m.text_dim;
          for (int j = 0; j < m.text_dim; ++j) v[j] += u[k] * row[j];
        }
      } else {
        v = u;
      }
      float* hi = rows + (2 * static_cast<size_t>(model)) * stride;
      float* lo = hi + stride;
      for (int j = 0; j < m.text_dim; ++j) {
        if (!std::isfinite(v[j])) throw std::invalid_argument("mf weights give model " + std::to_string(model) + " a non-finite vector");
        hi[j] = static_cast<float>(v[j]);
        lo[j] = static_cast<float>(v[j] - static_cast<double>(hi[j]));
      }
    }
  }

  int num_models() const { return models_; }
  int text_dim() const { return text_dim_; }

  // Logits of every model for n prompt embeddings (rows ld_q floats apart) into out[n, num_models].
  void logits(const float* queries, size_t n, size_t ld_q, double* out) const {
    const DotKernels& kernels = active_kernels();
    const size_t M = static_cast<size_t>(models_);
    constexpr size_t kChunk = 64;
    const size_t tasks = (n + kChunk - 1) / kChunk;
    ThreadPool::instance().parallel_for(tasks, [&](size_t t) {
      const size_t q0 = t * kChunk, q1 = std::min(n, q0 + kChunk);
      std::vector<double> parts((q1 - q0) * 2 * M);  // (hi, lo) dot products per query and model
      kernels.dot_rows(queries + q0 * ld_q, q1 - q0, ld_q, view_, 0, 2 * M, parts.data(), 2 * M);
      for (size_t q = q0; q < q1; ++q) {
        const double* row = parts.data() + (q - q0) * 2 * M;
        for (size_t m = 0; m < M; ++m) {
          const double logit = row[2 * m] + row[2 * m + 1];
          if (!std::isfinite(logit))
            throw std::invalid_argument("prompt embedding row " + std::to_string(q) +
                                        " contains NaN or inf (or values so large the score overflows)");
          out[q * M + m] = logit;
        }
      }
    });
  }

 private:
  int models_, text_dim_;
  AlignedBuffer buffer_;
  RowsView view_;
};

}  // namespace rlf
