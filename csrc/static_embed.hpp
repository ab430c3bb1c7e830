// A static (Model2Vec-style) sentence embedder: a prompt's vector is the mean of its tokens' rows
// in a table, L2-normalised. Rows are stored as int8 with one float scale each (row = scale * q):
// a quarter of float32's memory, and each row keeps its own precision (a global scale would
// flatten the small rows of frequent tokens).
//
// A prompt with no tokens (empty or whitespace only) gets the row of the unknown token, as a
// prompt of one unknown word would: finite, and the same for every such prompt.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "thread_pool.hpp"
#include "wordpiece.hpp"

namespace rlf {

class StaticEmbedder {
 public:
  // table: [vocab, dim] int8, scales: [vocab]; both copied.
  StaticEmbedder(WordPieceAscii tokenizer, const int8_t* table, const float* scales, size_t vocab, size_t dim,
                 size_t max_tokens, bool normalize)
      : tokenizer_(std::move(tokenizer)), table_(table, table + vocab * dim), scales_(scales, scales + vocab),
        vocab_(vocab), dim_(dim), max_tokens_(max_tokens), normalize_(normalize) {
    if (dim == 0) throw std::invalid_argument("the embedding table has no columns");
    if (vocab != tokenizer_.vocab_size())
      throw std::invalid_argument("the embedding table has " + std::to_string(vocab) + " rows but the vocabulary " +
                                  std::to_string(tokenizer_.vocab_size()) + " tokens");
    if (max_tokens == 0) throw std::invalid_argument("max_tokens must be >= 1");
    for (size_t t = 0; t < vocab; ++t)
      if (!std::isfinite(scales[t]))
        throw std::invalid_argument("the scale of table row " + std::to_string(t) + " is not finite");
  }

  size_t dim() const { return dim_; }
  size_t vocab_size() const { return vocab_; }
  size_t max_tokens() const { return max_tokens_; }
  bool normalize() const { return normalize_; }
  const WordPieceAscii& tokenizer() const { return tokenizer_; }

  // Vectors of n ASCII texts into out[n, dim], tokenised here; batches run on the thread pool.
  void embed_texts(const std::vector<std::string>& texts, float* out) const {
    for_chunks(texts.size(), [&](size_t i, std::vector<int32_t>& ids) {
      ids.clear();
      tokenizer_.tokenize(texts[i].data(), texts[i].size(), max_tokens_, ids);
      pool(ids.data(), ids.size(), out + i * dim_);
    });
  }

  // Vectors of n token-id lists (prompt i: ids[offsets[i], offsets[i + 1])) into out[n, dim]; ids
  // past max_tokens are ignored, as the tokenizer would not have made them.
  void embed_ids(const int32_t* ids, const int64_t* offsets, size_t n, float* out) const {
    for (size_t i = 0; i < n; ++i)
      if (offsets[i] < 0 || offsets[i + 1] < offsets[i])
        throw std::invalid_argument("token offsets must start at >= 0 and never decrease (prompt " + std::to_string(i) + ")");
    for (int64_t k = 0, total = n ? offsets[n] : 0; k < total; ++k)
      if (ids[k] < 0 || static_cast<size_t>(ids[k]) >= vocab_)
        throw std::invalid_argument("token id " + std::to_string(ids[k]) + " at position " + std::to_string(k) +
                                    " is outside the vocabulary [0, " + std::to_string(vocab_) + ")");
    for_chunks(n, [&](size_t i, std::vector<int32_t>&) {
      const size_t count = std::min(static_cast<size_t>(offsets[i + 1] - offsets[i]), max_tokens_);
      pool(ids + offsets[i], count, out + i * dim_);
    });
  }

 private:
  // fn(i, scratch) for i in [0, n): inline for small batches, else in chunks on the pool.
  template <class Fn>
  static void for_chunks(size_t n, Fn&& fn) {
    constexpr size_t kChunk = 256;
    const size_t tasks = (n + kChunk - 1) / kChunk;
    ThreadPool::instance().parallel_for(tasks, [&](size_t t) {
      std::vector<int32_t> scratch;
      scratch.reserve(512);
      for (size_t i = t * kChunk, end = std::min(n, i + kChunk); i < end; ++i) fn(i, scratch);
    });
  }

  void pool(const int32_t* ids, size_t count, float* out) const {
    const int32_t unk = tokenizer_.unk_id();
    if (count == 0) {
      ids = &unk;
      count = 1;
    }
    std::fill(out, out + dim_, 0.0f);
    for (size_t t = 0; t < count; ++t) {
      const int8_t* row = table_.data() + static_cast<size_t>(ids[t]) * dim_;
      const float s = scales_[static_cast<size_t>(ids[t])];
      for (size_t k = 0; k < dim_; ++k) out[k] += s * static_cast<float>(row[k]);
    }
    double norm2 = 0.0;
    for (size_t k = 0; k < dim_; ++k) norm2 += static_cast<double>(out[k]) * out[k];
    if (!std::isfinite(norm2))
      throw std::invalid_argument("the embedding table's values overflow float32 when summed (a scale is too large)");
    // Normalised: the mean's 1/count cancels. Otherwise the mean itself.
    const double scale = normalize_ ? 1.0 / std::max(std::sqrt(norm2), 1e-12) : 1.0 / static_cast<double>(count);
    for (size_t k = 0; k < dim_; ++k) out[k] = static_cast<float>(out[k] * scale);
  }

  WordPieceAscii tokenizer_;
  std::vector<int8_t> table_;
  std::vector<float> scales_;
  size_t vocab_, dim_, max_tokens_;
  bool normalize_;
};

}  // namespace rlf
