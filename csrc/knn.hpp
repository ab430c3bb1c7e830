// The nearest-neighbour (knn) router's index: labelled prompts (one stored embedding row each, as
// row_storage.hpp encodes them) with a score in [0, 1] per model, NaN where a model has no label on
// that prompt. For a query and a set of models it finds the k prompts of highest cosine similarity
// among those labelled for every model of the set, weights them by softmax(sim / temperature), and
// returns each model's weighted mean score there (its "success share").
//
// Ties in similarity are broken by the lower row index, so the neighbours are a deterministic
// function of the similarities. Similarities come from the dot kernels (dot_kernels.hpp): exact
// products summed in double for float32 rows, so a float64 reference reproduces them to ~1e-15.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "row_storage.hpp"
#include "thread_pool.hpp"

namespace rlf {

class KnnIndex {
 public:
  // rows: [n, dim] float32 embeddings (C order), encoded in `storage`; labels: [n, n_models] float32.
  KnnIndex(const float* rows, size_t n, size_t dim, const float* labels, size_t n_models, Storage storage) {
    if (n == 0 || dim == 0) throw std::invalid_argument("the knn index needs at least one labelled prompt embedding");
    std::vector<size_t> ids(n);
    for (size_t r = 0; r < n; ++r) ids[r] = r;
    set_labels(labels, n, n_models);
    rows_ = encode_rows(rows, dim, ids, storage, "labelled prompt embedding");
  }

  // Restores an index from its encoded rows (as copy_rows_out / restore_rows keep them) and labels.
  KnnIndex(EncodedRows rows, const float* labels, size_t n_models) {
    if (rows.view.rows == 0 || rows.view.dim == 0) throw std::invalid_argument("knn state: no labelled prompt embeddings");
    set_labels(labels, rows.view.rows, n_models);
    rows_ = std::move(rows);
  }

  size_t dim() const { return rows_.view.dim; }
  size_t n_rows() const { return rows_.view.rows; }
  size_t n_models() const { return n_models_; }
  Storage storage() const { return rows_.view.storage; }
  size_t storage_bytes() const { return rows_.bytes(); }
  const EncodedRows& rows() const { return rows_; }
  const std::vector<float>& labels() const { return labels_; }

  // The rows labelled for every one of models[0..m), in row order.
  std::vector<uint32_t> eligible_rows(const int* models, size_t m) const {
    check_models(models, m);
    std::vector<uint32_t> out;
    out.reserve(n_rows());
    for (size_t r = 0; r < n_rows(); ++r) {
      const float* y = labels_.data() + r * n_models_;
      bool all = true;
      for (size_t j = 0; j < m && all; ++j) all = !std::isnan(y[models[j]]);
      if (all) out.push_back(static_cast<uint32_t>(r));
    }
    return out;
  }

  // The k nearest rows labelled for every model of models[0..m) for each of n queries (rows ld_q
  // floats apart): their indices into idx[n, k] and cosine similarities into sims[n, k], most
  // similar first, ties by lower row index.
  void topk(const float* queries, size_t n, size_t ld_q, size_t k, const int* models, size_t m, int64_t* idx,
            double* sims) const {
    const std::vector<uint32_t> rows = checked_rows(k, models, m);
    for_each_query(queries, n, ld_q, rows, k, [&](const std::pair<double, uint32_t>* best, size_t q) {
      for (size_t i = 0; i < k; ++i) {
        idx[q * k + i] = best[i].second;
        sims[q * k + i] = best[i].first;
      }
    });
  }

  // Each model's similarity-weighted mean label among the k nearest rows labelled for all of
  // models[0..m): out[n, m]. Weights: softmax(sim / temperature) over the k.
  void shares(const float* queries, size_t n, size_t ld_q, size_t k, double temperature, const int* models, size_t m,
              double* out) const {
    check_temperature(temperature);
    const std::vector<uint32_t> rows = checked_rows(k, models, m);
    for_each_query(queries, n, ld_q, rows, k, [&](const std::pair<double, uint32_t>* best, size_t q) {
      weighted_means(best, k, temperature, models, m, out + q * m);
    });
  }

  // The strong model's win rate over the weak one: sigmoid(2 (p_strong - p_weak)) with p their
  // shares among the k nearest rows labelled for both (see shares()).
  void win_rates(const float* queries, size_t n, size_t ld_q, size_t k, double temperature, int strong, int weak,
                 double* out) const {
    check_temperature(temperature);
    const int pair[2] = {strong, weak};
    const std::vector<uint32_t> rows = checked_rows(k, pair, 2);
    for_each_query(queries, n, ld_q, rows, k, [&](const std::pair<double, uint32_t>* best, size_t q) {
      double p[2];
      weighted_means(best, k, temperature, pair, 2, p);
      out[q] = 1.0 / (1.0 + std::exp(-2.0 * (p[0] - p[1])));
    });
  }

 private:
  void set_labels(const float* labels, size_t n, size_t n_models) {
    if (n_models == 0) throw std::invalid_argument("the knn index needs labels for at least one model");
    labels_.assign(labels, labels + n * n_models);
    for (size_t r = 0; r < n; ++r) {
      bool any = false;
      for (size_t j = 0; j < n_models; ++j) {
        const float y = labels_[r * n_models + j];
        if (std::isnan(y)) continue;
        if (!(y >= 0.0f && y <= 1.0f))
          throw std::invalid_argument("label of labelled prompt " + std::to_string(r) + " for model " +
                                      std::to_string(j) + " is " + std::to_string(y) +
                                      "; labels must be in [0, 1] (NaN: no label)");
        any = true;
      }
      if (!any) throw std::invalid_argument("labelled prompt " + std::to_string(r) + " has no label for any model");
    }
    n_models_ = n_models;
  }

  void check_models(const int* models, size_t m) const {
    if (m == 0) throw std::invalid_argument("no models to score");
    for (size_t j = 0; j < m; ++j)
      if (models[j] < 0 || static_cast<size_t>(models[j]) >= n_models_)
        throw std::invalid_argument("model index " + std::to_string(models[j]) + " is outside the index's " +
                                    std::to_string(n_models_) + " models");
  }

  static void check_temperature(double t) {
    if (!(t > 0.0) || !std::isfinite(t))
      throw std::invalid_argument("temperature must be a finite number > 0, got " + std::to_string(t));
  }

  std::vector<uint32_t> checked_rows(size_t k, const int* models, size_t m) const {
    std::vector<uint32_t> rows = eligible_rows(models, m);
    if (rows.empty()) throw std::invalid_argument("no labelled prompt has a label for every model asked about");
    if (k < 1 || k > rows.size())
      throw std::invalid_argument("k must be in [1, " + std::to_string(rows.size()) +
                                  "] (the prompts labelled for every model asked about), got " + std::to_string(k));
    return rows;
  }

  void weighted_means(const std::pair<double, uint32_t>* best, size_t k, double temperature, const int* models,
                      size_t m, double* out) const {
    // softmax(sim / T), shifted by the largest similarity (best[0]) so nothing overflows.
    double total = 0.0;
    for (size_t j = 0; j < m; ++j) out[j] = 0.0;
    for (size_t i = 0; i < k; ++i) {
      const double w = std::exp((best[i].first - best[0].first) / temperature);
      total += w;
      const float* y = labels_.data() + static_cast<size_t>(best[i].second) * n_models_;
      for (size_t j = 0; j < m; ++j) out[j] += w * static_cast<double>(y[models[j]]);
    }
    for (size_t j = 0; j < m; ++j) out[j] /= total;
  }

  double query_inv_norm(const float* q, size_t row) const { return checked_inv_norm(q, dim(), row); }

  // fn(best, q) for each query q, best its k nearest (similarity, row) among `rows`, in order.
  template <class Fn>
  void for_each_query(const float* queries, size_t n, size_t ld_q, const std::vector<uint32_t>& rows, size_t k,
                      Fn&& fn) const {
    std::vector<double> query_factor(n);
    for (size_t q = 0; q < n; ++q) query_factor[q] = query_inv_norm(queries + q * ld_q, q);
    ThreadPool& pool = ThreadPool::instance();
    const size_t P = n_rows();
    // Queries in groups whose similarity matrix stays within ~64 MB (as the sw arena does).
    const size_t group = std::clamp<size_t>((size_t{64} << 20) / (8 * P), 1, 96);
    std::vector<double> dots;
    const DotKernels& kernels = active_kernels();
    const double* factor = rows_.row_factor.data();
    for (size_t g0 = 0; g0 < n; g0 += group) {
      const size_t g = std::min(group, n - g0);
      dots.resize(g * P);
      const size_t chunk = std::max<size_t>(256, (P / (pool.num_threads() * 8) + 3) / 4 * 4);
      pool.parallel_for((P + chunk - 1) / chunk, [&](size_t t) {
        const size_t r0 = t * chunk, r1 = std::min(P, r0 + chunk);
        kernels.dot_rows(queries + g0 * ld_q, g, ld_q, rows_.view, r0, r1, dots.data() + r0, P);
      });
      pool.parallel_for(g, [&](size_t qi) {
        const double* d = dots.data() + qi * P;
        const double qf = query_factor[g0 + qi];
        std::vector<std::pair<double, uint32_t>> cand(rows.size());
        for (size_t i = 0; i < rows.size(); ++i) cand[i] = {d[rows[i]] * factor[rows[i]] * qf, rows[i]};
        // Most similar first; equal similarities by lower row index: one order on every machine.
        const auto before = [](const std::pair<double, uint32_t>& a, const std::pair<double, uint32_t>& b) {
          return a.first > b.first || (a.first == b.first && a.second < b.second);
        };
        std::partial_sort(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(k), cand.end(), before);
        fn(cand.data(), g0 + qi);
      });
    }
  }

  EncodedRows rows_;
  std::vector<float> labels_;  // [n_rows, n_models], NaN: no label
  size_t n_models_ = 0;
};

}  // namespace rlf
