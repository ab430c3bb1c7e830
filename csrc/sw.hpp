// The similarity-weighted (sw_ranking) router: an arena of battles with one embedding per distinct
// prompt, and the per-prompt win rate RouteLLM computes:
//   sim_i = cos(query, prompt_i);  w_i = 10 * 10 ** (sim_i / max_i sim_i)
//   ratings = Elo MLE over the arena's battles, models replaced by their tiers, battle weight w_i
//   win rate = 1 - 1 / (1 + 10 ** ((R_strong - R_weak) / 400))
// RouteLLM refits a logistic regression over every battle per prompt. The weighted likelihood only
// depends on the weighted counts per (tier row, outcome), so a prompt costs one pass of dot products
// over the distinct prompts, one multiply-add per battle and a ~10-player Newton solve.
//
// RouteLLM weighs battles, so only embedding rows that some battle points at are part of the arena:
// a row no battle uses is dropped when the arena is built (it would otherwise still set max_i sim_i
// and so move every weight). n_prompts() counts the rows kept.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "elo.hpp"
#include "row_storage.hpp"
#include "thread_pool.hpp"

namespace rlf {

enum class Outcome : int8_t { model_a = 0, model_b = 1, tie = 2 };

// Groups identical rows: returns (index of each row's group, first row of each group).
inline std::pair<std::vector<int64_t>, std::vector<int64_t>> dedup_rows(const float* rows, size_t n, size_t dim) {
  std::vector<int64_t> group(n), firsts;
  std::unordered_map<uint64_t, std::vector<int64_t>> by_hash;
  by_hash.reserve(n);
  const size_t bytes = dim * sizeof(float);
  for (size_t r = 0; r < n; ++r) {
    const auto* p = reinterpret_cast<const unsigned char*>(rows + r * dim);
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the row's bytes
    for (size_t b = 0; b < bytes; ++b) h = (h ^ p[b]) * 1099511628211ull;
    auto& candidates = by_hash[h];
    int64_t found = -1;
    for (int64_t g : candidates)
      if (std::memcmp(rows + firsts[g] * dim, p, bytes) == 0) {
        found = g;
        break;
      }
    if (found < 0) {
      found = static_cast<int64_t>(firsts.size());
      firsts.push_back(static_cast<int64_t>(r));
      candidates.push_back(found);
    }
    group[r] = found;
  }
  return {std::move(group), std::move(firsts)};
}

struct SwArenaSpec {
  const float* prompt_embeddings = nullptr;  // [n_prompts, dim], C order; rows no battle uses are dropped
  size_t n_prompts = 0, dim = 0;
  const int64_t* battle_prompt = nullptr;  // [n_battles] index into prompts
  const int32_t* model_a = nullptr;        // [n_battles] model index < n_models
  const int32_t* model_b = nullptr;
  const int8_t* outcome = nullptr;  // Outcome values
  size_t n_battles = 0;
  int n_models = 0;
  int num_tiers = 10;
  int anchor_model = -1;  // model whose global rating is shifted to anchor_rating (RouteLLM: llama-2-70b-chat -> 1082)
  double anchor_rating = 1082.0;
  Storage storage = Storage::f32;
  std::vector<std::string> model_names;  // for error messages; indices are used when empty
};

// Everything a built arena consists of, to restore it exactly (unpickling) without its battles or
// float32 embeddings: SwArena's accessors give each part, SwArena(SwArenaParts) checks and takes them.
struct SwArenaParts {
  size_t n_battles = 0;
  std::vector<double> ratings;      // per model, Elo scale
  std::vector<int> model_tier;      // per model, RouteLLM's tier number
  std::vector<PairRow> pair_rows;   // rows of the per-prompt fit over tier players
  std::vector<size_t> entry_begin;  // [n_prompts + 1]: CSR over prompts of (slot, count) entries
  std::vector<uint32_t> entry_slot;  // 2 * pair row + outcome (0: i wins, 1: j wins)
  std::vector<double> entry_count;
  EncodedRows prompts;  // as encode_rows made them
};

class SwArena {
 public:
  explicit SwArena(const SwArenaSpec& spec) {
    validate(spec);
    n_models_ = spec.n_models;
    n_battles_ = spec.n_battles;
    fit_global_ratings(spec);
    assign_tiers(spec.num_tiers);
    const std::vector<size_t> used = build_rows(spec);
    prompts_ = encode_rows(spec.prompt_embeddings, spec.dim, used, spec.storage, "arena embedding");
    model_names_ = spec.model_names;
  }

  // Restores an arena from its parts, checking everything scoring relies on ("arena state: ..."
  // errors for parts no arena could have). The result scores exactly like the arena they came from.
  explicit SwArena(SwArenaParts parts) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("arena state: " + what); };
    const size_t M = parts.ratings.size(), P = parts.prompts.view.rows;
    if (parts.n_battles == 0) fail("the arena has no battles");
    if (M == 0 || M > static_cast<size_t>(std::numeric_limits<int>::max())) fail("no models");
    if (parts.model_tier.size() != M)
      fail(std::to_string(M) + " model ratings but " + std::to_string(parts.model_tier.size()) + " model tiers");
    for (size_t m = 0; m < M; ++m) {
      if (!std::isfinite(parts.ratings[m])) fail("model " + std::to_string(m) + " has a non-finite rating");
      if (parts.model_tier[m] < 0) fail("model " + std::to_string(m) + " has a negative tier");
    }
    n_models_ = static_cast<int>(M);
    n_battles_ = parts.n_battles;
    ratings_ = std::move(parts.ratings);
    model_tier_ = std::move(parts.model_tier);
    index_players();
    if (parts.pair_rows.empty()) fail("no pair rows");
    for (const PairRow& r : parts.pair_rows)
      if (r.i < 0 || r.i >= n_players_ || (r.j != -1 && (r.j <= r.i || r.j >= n_players_)))
        fail("pair row (" + std::to_string(r.i) + ", " + std::to_string(r.j) + ") is not a row over the " +
             std::to_string(n_players_) + " tier players");
    rows_ = std::move(parts.pair_rows);
    if (P == 0 || parts.prompts.view.dim == 0) fail("no prompt embeddings");
    const size_t E = parts.entry_slot.size();
    if (parts.entry_begin.size() != P + 1 || parts.entry_begin.front() != 0 || parts.entry_begin.back() != E ||
        parts.entry_count.size() != E || !std::is_sorted(parts.entry_begin.begin(), parts.entry_begin.end()))
      fail("entry_begin must run from 0 to the number of entries without decreasing, one step per prompt");
    for (size_t e = 0; e < E; ++e) {
      if (parts.entry_slot[e] >= 2 * rows_.size())
        fail("entry " + std::to_string(e) + " points at slot " + std::to_string(parts.entry_slot[e]) + " of " +
             std::to_string(2 * rows_.size()));
      if (!std::isfinite(parts.entry_count[e]) || parts.entry_count[e] < 0.0)
        fail("entry " + std::to_string(e) + " has a count that is negative or not finite");
    }
    entry_begin_ = std::move(parts.entry_begin);
    entry_slot_ = std::move(parts.entry_slot);
    entry_count_ = std::move(parts.entry_count);
    prompts_ = std::move(parts.prompts);
  }

  size_t dim() const { return prompts_.view.dim; }
  size_t n_prompts() const { return prompts_.view.rows; }  // rows some battle points at
  size_t n_battles() const { return n_battles_; }
  Storage storage() const { return prompts_.view.storage; }
  size_t storage_bytes() const { return prompts_.bytes(); }
  const std::vector<double>& model_ratings() const { return ratings_; }
  const std::vector<int>& model_tier() const { return model_tier_; }
  // The remaining parts of SwArenaParts.
  const std::vector<PairRow>& pair_rows() const { return rows_; }
  const std::vector<size_t>& entry_begin() const { return entry_begin_; }
  const std::vector<uint32_t>& entry_slot() const { return entry_slot_; }
  const std::vector<double>& entry_count() const { return entry_count_; }
  const EncodedRows& prompt_rows() const { return prompts_; }

  // Strong-model win rates for n queries (rows ld_q floats apart) into out[n].
  void score(const float* queries, size_t n, size_t ld_q, int strong_model, int weak_model, double* out) const {
    check_model(strong_model, "strong_model");
    check_model(weak_model, "weak_model");
    const int strong = model_player_[strong_model];
    const int weak = model_player_[weak_model];
    if (strong == weak) {  // one tier, one rating: RouteLLM's formula gives exactly 1/2
      for (size_t q = 0; q < n; ++q) query_inv_norm(queries + q * ld_q, q);
      std::fill(out, out + n, 0.5);
      return;
    }
    for_each_query(queries, n, ld_q, [&](double* sims, double factor, size_t q) {
      out[q] = win_rate(sims, factor, q, strong, weak);
    });
  }

  // Each query's fitted tier ratings (Elo scale, one per player of the per-prompt fit: the arena's
  // non-empty tiers in tier order, see model_player()) into out[n, n_players()], with the top-rated
  // tier at its own fitted rating. Where the fit has no finite maximum, a tier's rating is the top
  // tier's plus its limiting rating difference from it (-inf for tiers that lose every battle
  // against it); a tier whose difference has no limit is refused, naming the query.
  void score_ratings(const float* queries, size_t n, size_t ld_q, double* out) const {
    const size_t T = static_cast<size_t>(n_players_);
    const double elo = 400.0 / std::log(10.0);
    for_each_query(queries, n, ld_q, [&](double* sims, double factor, size_t q) {
      const EloFit fit = prompt_fit(sims, factor, q);
      double* row = out + q * T;
      if (fit.converged) {
        for (size_t t = 0; t < T; ++t) row[t] = elo * fit.theta[t];
        return;
      }
      int top = 0;  // a tier no other tier is ordered above: the one every difference is taken from
      for (int t = 1; t < n_players_; ++t)
        if (rating_difference(fit, t, top) > 0.0) top = t;
      for (int t = 0; t < n_players_; ++t) {
        std::string why;
        const double d = t == top ? 0.0 : rating_difference(fit, t, top, &why, [&](int p) { return tier_label(p); });
        if (std::isnan(d))
          throw std::invalid_argument("query embedding row " + std::to_string(q) + ": no rating of " + tier_label(t) +
                                      " relative to " + tier_label(top) + ": " + why);
        row[t] = elo * (fit.theta[top] + d);
      }
    });
  }

  // Win rates from per-query weighted counts y[n, count_slots()] (as the GPU backend sums them:
  // kernels/sw_counts.cu), into out[n]; the fits run on the thread pool.
  void score_counts(const double* y, size_t n, int strong_model, int weak_model, double* out) const {
    check_model(strong_model, "strong_model");
    check_model(weak_model, "weak_model");
    const int strong = model_player_[strong_model], weak = model_player_[weak_model];
    const size_t slots = count_slots();
    ThreadPool::instance().parallel_for(n, [&](size_t q) {
      out[q] = strong == weak ? 0.5 : fit_win_rate(counts_fit(y + q * slots, q), q, strong, weak);
    });
  }

  // Slots of a query's weighted counts: (pair row, outcome) pairs.
  size_t count_slots() const { return 2 * rows_.size(); }

  int n_players() const { return n_players_; }
  const std::vector<int>& model_player() const { return model_player_; }

 private:
  // fn(sims, query_factor, q) for each query q, with sims its raw dot products with every arena row.
  template <class Fn>
  void for_each_query(const float* queries, size_t n, size_t ld_q, Fn&& fn) const {
    std::vector<double> query_factor(n);
    for (size_t q = 0; q < n; ++q) query_factor[q] = query_inv_norm(queries + q * ld_q, q);
    ThreadPool& pool = ThreadPool::instance();
    const size_t P = n_prompts();
    // Queries go through in groups whose similarity matrix stays within ~64 MB.
    const size_t group = std::clamp<size_t>((size_t{64} << 20) / (8 * std::max<size_t>(P, 1)), 1, 96);
    std::vector<double> sims;
    const DotKernels& kernels = active_kernels();
    for (size_t g0 = 0; g0 < n; g0 += group) {
      const size_t g = std::min(group, n - g0);
      sims.resize(g * P);
      // Rows per task: enough to amortise a task, few enough that both cores stay busy.
      const size_t chunk = std::max<size_t>(256, (P / (pool.num_threads() * 8) + 3) / 4 * 4);
      const size_t tasks = (P + chunk - 1) / chunk;
      pool.parallel_for(tasks, [&](size_t t) {
        const size_t r0 = t * chunk, r1 = std::min(P, r0 + chunk);
        kernels.dot_rows(queries + g0 * ld_q, g, ld_q, prompts_.view, r0, r1, sims.data() + r0, P);
      });
      pool.parallel_for(g, [&](size_t q) { fn(sims.data() + q * P, query_factor[g0 + q], g0 + q); });
    }
  }

  void check_model(int m, const char* what) const {
    if (m < 0 || m >= n_models_)
      throw std::invalid_argument(std::string(what) + " index " + std::to_string(m) + " is outside the arena's " +
                                  std::to_string(n_models_) + " models");
  }

  double query_inv_norm(const float* q, size_t row) const { return checked_inv_norm(q, dim(), row); }

  static void validate(const SwArenaSpec& s) {
    if (s.n_battles == 0) throw std::invalid_argument("the arena has no battles");
    if (s.n_prompts == 0 || s.dim == 0) throw std::invalid_argument("the arena has no prompt embeddings");
    if (s.n_models < 1) throw std::invalid_argument("the arena has no models");
    if (s.num_tiers < 1) throw std::invalid_argument("num_tiers must be >= 1, got " + std::to_string(s.num_tiers));
    for (size_t b = 0; b < s.n_battles; ++b) {
      if (s.battle_prompt[b] < 0 || static_cast<size_t>(s.battle_prompt[b]) >= s.n_prompts)
        throw std::invalid_argument("battle " + std::to_string(b) + " points at prompt " +
                                    std::to_string(s.battle_prompt[b]) + " but there are " +
                                    std::to_string(s.n_prompts) + " prompts");
      if (s.model_a[b] < 0 || s.model_a[b] >= s.n_models || s.model_b[b] < 0 || s.model_b[b] >= s.n_models)
        throw std::invalid_argument("battle " + std::to_string(b) + " has a model index outside [0, " +
                                    std::to_string(s.n_models) + ")");
      if (s.outcome[b] < 0 || s.outcome[b] > 2)
        throw std::invalid_argument("battle " + std::to_string(b) + " has outcome code " +
                                    std::to_string(s.outcome[b]) + " (expected 0=model_a, 1=model_b, 2=tie)");
    }
  }

  // Adds one battle's weight to a (y1, y0) pair for players (a, b) in a list of rows keyed by pair.
  template <class RowIndex>
  static void add_battle(int a, int b, Outcome o, double w, RowIndex&& row_of, std::vector<double>& y) {
    // Duplicated battles: a win counts twice, a tie once each way.
    double a_wins = o == Outcome::model_a ? 2 * w : o == Outcome::tie ? w : 0.0;
    double b_wins = o == Outcome::model_b ? 2 * w : o == Outcome::tie ? w : 0.0;
    if (a == b) {  // RouteLLM's feature overwrite: the row reads z = -theta_a, y = 1 when a "wins"
      const size_t r = row_of(a, -1);
      y[2 * r] += a_wins;
      y[2 * r + 1] += b_wins;
      return;
    }
    if (a > b) {
      std::swap(a, b);
      std::swap(a_wins, b_wins);
    }
    const size_t r = row_of(a, b);
    y[2 * r] += a_wins;
    y[2 * r + 1] += b_wins;
  }

  void fit_global_ratings(const SwArenaSpec& s) {
    std::map<std::pair<int, int>, size_t> index;
    std::vector<PairRow> rows;
    std::vector<double> y;
    auto row_of = [&](int a, int b) {
      auto [it, inserted] = index.emplace(std::make_pair(a, b), rows.size());
      if (inserted) {
        rows.push_back(PairRow{a, b});
        y.resize(y.size() + 2, 0.0);
      }
      return it->second;
    };
    for (size_t b = 0; b < s.n_battles; ++b)
      add_battle(s.model_a[b], s.model_b[b], static_cast<Outcome>(s.outcome[b]), 1.0, row_of, y);
    std::vector<double> y1(rows.size()), y0(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      y1[r] = y[2 * r];
      y0[r] = y[2 * r + 1];
    }
    const EloFit fit = fit_elo(s.n_models, rows, y1.data(), y0.data());
    if (!fit.converged)
      throw std::invalid_argument(divergence_message(s.n_models, rows, y1, y0, "model", s.model_names));
    ratings_.resize(s.n_models);
    for (int m = 0; m < s.n_models; ++m) ratings_[m] = 400.0 * fit.theta[m] / std::log(10.0) + 1000.0;
    if (s.anchor_model >= 0 && s.anchor_model < s.n_models) {
      const double shift = s.anchor_rating - ratings_[s.anchor_model];
      for (double& r : ratings_) r += shift;
    }
  }

  // Names the players that never lose or never win, the usual reason an Elo MLE does not exist.
  static std::string divergence_message(int n, const std::vector<PairRow>& rows, const std::vector<double>& y1,
                                        const std::vector<double>& y0, const char* player,
                                        const std::vector<std::string>& names = {}) {
    auto name = [&](int p) { return p < static_cast<int>(names.size()) ? names[p] : std::to_string(p); };
    std::vector<double> wins(n, 0.0), losses(n, 0.0);
    for (size_t r = 0; r < rows.size(); ++r) {
      if (rows[r].j < 0) continue;
      wins[rows[r].i] += y1[r];
      losses[rows[r].i] += y0[r];
      wins[rows[r].j] += y0[r];
      losses[rows[r].j] += y1[r];
    }
    std::string never_lose, never_win;
    for (int p = 0; p < n; ++p) {
      if (wins[p] + losses[p] == 0) continue;
      if (losses[p] == 0) never_lose += (never_lose.empty() ? "" : ", ") + name(p);
      if (wins[p] == 0) never_win += (never_win.empty() ? "" : ", ") + name(p);
    }
    std::string msg = std::string("the arena's Elo ratings have no finite maximum-likelihood solution: ") +
                      "some group of " + player + "s wins (or loses) every battle against the rest";
    if (!never_lose.empty()) msg += "; " + std::string(player) + "s that never lose: " + never_lose;
    if (!never_win.empty()) msg += "; " + std::string(player) + "s that never win: " + never_win;
    return msg + ". Add battles (or ties) that connect them, or drop them.";
  }

  void assign_tiers(int num_tiers) {
    // Descending ratings; equal ratings keep the models' first-appearance order.
    std::vector<int> order(n_models_);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return ratings_[a] > ratings_[b]; });
    std::vector<double> sorted(n_models_);
    for (int p = 0; p < n_models_; ++p) sorted[p] = ratings_[order[p]];
    const std::vector<int> tier_of_position = compute_tiers(sorted, num_tiers);
    model_tier_.assign(n_models_, -1);
    for (int p = 0; p < n_models_; ++p) model_tier_[order[p]] = tier_of_position[p];
    index_players();
  }

  // Players of the per-prompt fit: the non-empty tiers, in tier order.
  void index_players() {
    std::vector<int> tiers = model_tier_;
    std::sort(tiers.begin(), tiers.end());
    tiers.erase(std::unique(tiers.begin(), tiers.end()), tiers.end());
    n_players_ = static_cast<int>(tiers.size());
    model_player_.resize(model_tier_.size());
    for (size_t m = 0; m < model_tier_.size(); ++m)
      model_player_[m] = static_cast<int>(std::lower_bound(tiers.begin(), tiers.end(), model_tier_[m]) - tiers.begin());
  }

  // Returns the embedding rows that battles point at, in order: only those are stored.
  std::vector<size_t> build_rows(const SwArenaSpec& s) {
    // Rows over tier players, then each prompt's contribution per (row, outcome) slot, summed over
    // the prompt's battles: a prompt's weight multiplies these counts.
    std::map<std::pair<int, int>, size_t> index;
    auto row_of = [&](int a, int b) {
      auto [it, inserted] = index.emplace(std::make_pair(a, b), rows_.size());
      if (inserted) rows_.push_back(PairRow{a, b});
      return it->second;
    };
    // First pass: fix the row set so slot numbers are final.
    std::vector<int> ta(s.n_battles), tb(s.n_battles);
    for (size_t b = 0; b < s.n_battles; ++b) {
      ta[b] = model_player_[s.model_a[b]];
      tb[b] = model_player_[s.model_b[b]];
      const int lo = ta[b] == tb[b] ? ta[b] : std::min(ta[b], tb[b]);
      const int hi = ta[b] == tb[b] ? -1 : std::max(ta[b], tb[b]);
      row_of(lo, hi);
    }
    // Second pass: per prompt, a dense slot vector folded into sparse (slot, count) entries.
    std::vector<std::vector<size_t>> battles_of_prompt(s.n_prompts);
    for (size_t b = 0; b < s.n_battles; ++b) battles_of_prompt[s.battle_prompt[b]].push_back(b);
    std::vector<size_t> used;
    std::vector<double> dense(2 * rows_.size(), 0.0);
    entry_begin_.assign(1, 0);
    for (size_t p = 0; p < s.n_prompts; ++p) {
      if (battles_of_prompt[p].empty()) continue;
      used.push_back(p);
      for (size_t b : battles_of_prompt[p])
        add_battle(ta[b], tb[b], static_cast<Outcome>(s.outcome[b]), 1.0, row_of, dense);
      for (size_t slot = 0; slot < dense.size(); ++slot) {
        if (dense[slot] == 0.0) continue;
        entry_slot_.push_back(static_cast<uint32_t>(slot));
        entry_count_.push_back(dense[slot]);
        dense[slot] = 0.0;
      }
      entry_begin_.push_back(entry_slot_.size());
    }
    return used;
  }

  // The similarity-weighted Elo fit of one query from its raw dot products with the arena's rows.
  EloFit prompt_fit(double* sims, double query_factor, size_t query_row) const {
    const size_t P = n_prompts();
    double max_sim = -std::numeric_limits<double>::infinity();
    for (size_t p = 0; p < P; ++p) {
      sims[p] *= prompts_.row_factor[p] * query_factor;
      max_sim = std::max(max_sim, sims[p]);
    }
    if (max_sim == 0.0)
      throw std::invalid_argument("query embedding row " + std::to_string(query_row) +
                                  ": its largest cosine similarity to the arena is exactly 0, so the weights "
                                  "10 ** (sim / max_sim) are undefined");
    // Weights are only defined up to a common factor (the MLE does not change when every weight is
    // scaled), so take 10 ** (r - max r) with r = sim / max_sim: never overflows, even when every
    // similarity is negative and r grows without bound.
    double r_max = -std::numeric_limits<double>::infinity();
    for (size_t p = 0; p < P; ++p) {
      sims[p] /= max_sim;
      r_max = std::max(r_max, sims[p]);
    }
    const double ln10 = std::log(10.0);
    std::vector<double> y(2 * rows_.size(), 0.0);
    for (size_t p = 0; p < P; ++p) {
      const double w = std::exp(ln10 * (sims[p] - r_max));
      for (size_t e = entry_begin_[p]; e < entry_begin_[p + 1]; ++e) y[entry_slot_[e]] += w * entry_count_[e];
    }
    return counts_fit(y.data(), query_row);
  }

  // The fit from a query's weighted counts y[2 * pair row + outcome] (what prompt_fit sums, or a GPU).
  EloFit counts_fit(const double* y, size_t query_row) const {
    std::vector<double> y1(rows_.size()), y0(rows_.size());
    for (size_t r = 0; r < rows_.size(); ++r) {
      y1[r] = y[2 * r];
      y0[r] = y[2 * r + 1];
      if (!(std::isfinite(y1[r]) && std::isfinite(y0[r]) && y1[r] >= 0.0 && y0[r] >= 0.0))
        throw std::invalid_argument("query " + std::to_string(query_row) + ": weighted counts must be finite and >= 0");
    }
    EloFit fit = fit_elo(n_players_, rows_, y1.data(), y0.data());
    if (!fit.solved)
      throw std::runtime_error("query embedding row " + std::to_string(query_row) +
                               ": the similarity-weighted Elo fit did not converge (weights underflowed)");
    return fit;
  }

  double win_rate(double* sims, double query_factor, size_t query_row, int strong, int weak) const {
    return fit_win_rate(prompt_fit(sims, query_factor, query_row), query_row, strong, weak);
  }

  double fit_win_rate(const EloFit& fit, size_t query_row, int strong, int weak) const {
    const double ln10 = std::log(10.0);
    // Without a finite maximum the win rate is its limit (0 or 1 across one-sided groups of tiers);
    // refuse only when the likelihood leaves it free.
    std::string why;
    const double diff = rating_difference(fit, strong, weak, &why, [&](int p) { return tier_label(p); });
    if (std::isnan(diff))
      throw std::invalid_argument("query embedding row " + std::to_string(query_row) + ": no win rate of " +
                                  tier_label(strong) + " over " + tier_label(weak) + ": " + why);
    const double diff_elo = 400.0 * diff / ln10;
    return 1.0 - 1.0 / (1.0 + std::pow(10.0, diff_elo / 400.0));
  }

  // "tier T (model, ...)" for a player of the per-prompt fit.
  std::string tier_label(int player) const {
    int tier = -1;
    std::string models;
    for (int m = 0; m < n_models_; ++m)
      if (model_player_[m] == player) {
        tier = model_tier_[m];
        models += (models.empty() ? "" : ", ") +
                  (m < static_cast<int>(model_names_.size()) ? model_names_[m] : "model " + std::to_string(m));
      }
    return "tier " + std::to_string(tier) + " (" + models + ")";
  }

  int n_models_ = 0;
  size_t n_battles_ = 0;
  std::vector<double> ratings_;      // per model, Elo scale
  std::vector<int> model_tier_;      // per model, RouteLLM's tier number
  std::vector<int> model_player_;    // per model, its tier's player in the per-prompt fit
  int n_players_ = 0;
  std::vector<PairRow> rows_;        // tier-level rows
  std::vector<size_t> entry_begin_;  // CSR over prompts of (slot, count) entries
  std::vector<uint32_t> entry_slot_;
  std::vector<double> entry_count_;
  EncodedRows prompts_;
  std::vector<std::string> model_names_;  // for error messages
};

}  // namespace rlf
