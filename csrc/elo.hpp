// Elo ratings as RouteLLM computes them, solved exactly instead of by a logistic-regression fit.
//
// RouteLLM's compute_elo_mle_with_tie builds one logistic-regression row per battle (twice: a win
// is two wins, a tie one win each way), with feature +ln(10) for model_a and -ln(10) for model_b,
// no intercept, no penalty. The likelihood therefore depends only on weighted counts per
// (player_a, player_b, outcome). We collect those counts into "rows" and maximise
//     sum_rows  y1 * log sigmoid(z) + y0 * log sigmoid(-z)
// with z = theta_i - theta_j (a pair row) or z = -theta_i (a "self" row: RouteLLM writes model_b's
// feature over model_a's when both are the same player, which happens for battles inside one tier).
// theta is in natural-log units: Elo = 400 * theta / ln(10) + 1000.
//
// Newton's method with a backtracking line search converges to the exact optimum in a handful of
// steps. Without self rows the likelihood is flat along "add a constant to every player of a
// connected component"; sklearn's L-BFGS starts at zero and only moves along gradients, which sum to
// zero over each component, so it ends on the solution whose component sums are zero. We pin the
// same gauge by adding the component's all-ones outer product to the Newton matrix: the step then
// equals the pseudo-inverse Newton step and never leaves that subspace.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace rlf {

struct PairRow {
  int i;  // player whose win is y1
  int j;  // opponent, or -1 for a self row (z = -theta_i)
};

struct EloFit {
  std::vector<double> theta;
  bool converged = false;
  int iterations = 0;
};

namespace detail {

inline double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

inline double row_z(const PairRow& row, const std::vector<double>& theta) {
  return row.j >= 0 ? theta[row.i] - theta[row.j] : -theta[row.i];
}

// In-place Cholesky solve of the symmetric positive definite system a x = b (a is n x n, row-major).
inline bool cholesky_solve(std::vector<double>& a, std::vector<double>& b, int n) {
  for (int c = 0; c < n; ++c) {
    double d = a[c * n + c];
    for (int k = 0; k < c; ++k) d -= a[c * n + k] * a[c * n + k];
    if (!(d > 0.0)) return false;
    d = std::sqrt(d);
    a[c * n + c] = d;
    for (int r = c + 1; r < n; ++r) {
      double s = a[r * n + c];
      for (int k = 0; k < c; ++k) s -= a[r * n + k] * a[c * n + k];
      a[r * n + c] = s / d;
    }
  }
  for (int r = 0; r < n; ++r) {  // forward: L y = b
    double s = b[r];
    for (int k = 0; k < r; ++k) s -= a[r * n + k] * b[k];
    b[r] = s / a[r * n + r];
  }
  for (int r = n - 1; r >= 0; --r) {  // backward: L^T x = y
    double s = b[r];
    for (int k = r + 1; k < n; ++k) s -= a[k * n + r] * b[k];
    b[r] = s / a[r * n + r];
  }
  return true;
}

inline int find_root(std::vector<int>& parent, int x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

}  // namespace detail

// Whether the ratings have a finite maximum: every connected group of players must be strongly
// connected by wins (Zermelo's condition), or some subset that never loses to the rest would
// drift to +infinity. A self row acts as a game against a fixed-rating anchor player.
inline bool ratings_are_finite(int n_players, const std::vector<PairRow>& rows, const double* y1, const double* y0) {
  const int anchor = n_players, n = n_players + 1;
  std::vector<std::vector<int>> beats(n), beaten_by(n);
  auto win = [&](int winner, int loser) {
    beats[winner].push_back(loser);
    beaten_by[loser].push_back(winner);
  };
  for (size_t r = 0; r < rows.size(); ++r) {
    const int i = rows[r].i, j = rows[r].j >= 0 ? rows[r].j : anchor;
    // pair row: y1 is "i beats j"; self row: z = -theta_i, so y1 is "the anchor beats i"
    if (y1[r] > 0) rows[r].j >= 0 ? win(i, j) : win(j, i);
    if (y0[r] > 0) rows[r].j >= 0 ? win(j, i) : win(i, j);
  }
  auto reach = [&](int start, const std::vector<std::vector<int>>& edges, std::vector<char>& seen) {
    std::vector<int> stack{start};
    seen[start] = 1;
    while (!stack.empty()) {
      const int v = stack.back();
      stack.pop_back();
      for (int w : edges[v])
        if (!seen[w]) seen[w] = 1, stack.push_back(w);
    }
  };
  std::vector<char> done(n, 0);
  for (int v = 0; v < n; ++v) {
    if (done[v] || (beats[v].empty() && beaten_by[v].empty())) continue;
    std::vector<char> fwd(n, 0), bwd(n, 0);
    reach(v, beats, fwd);
    reach(v, beaten_by, bwd);
    // v's weakly connected component must equal its strongly connected one.
    std::vector<char> comp(n, 0);
    std::vector<int> stack{v};
    comp[v] = 1;
    while (!stack.empty()) {
      const int u = stack.back();
      stack.pop_back();
      if (!fwd[u] || !bwd[u]) return false;
      done[u] = 1;
      for (const auto* edges : {&beats[u], &beaten_by[u]})
        for (int w : *edges)
          if (!comp[w]) comp[w] = 1, stack.push_back(w);
    }
  }
  return true;
}

// Maximum-likelihood ratings for `n_players` from weighted outcome counts: y1[r] and y0[r] are the
// total weights of row r's "z wins" and "z loses" events. Players in no row with weight keep 0.
inline EloFit fit_elo(int n_players, const std::vector<PairRow>& rows, const double* y1, const double* y0,
                      int max_iterations = 100) {
  using detail::row_z;
  const int n = n_players;
  EloFit fit;
  fit.theta.assign(n, 0.0);
  if (!ratings_are_finite(n_players, rows, y1, y0)) return fit;  // converged stays false

  // Gauge: connected components of the weighted comparison graph, and whether each has a self row.
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  std::vector<char> active(n, 0), has_self(n, 0);
  double total_weight = 0.0;
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!(y1[r] + y0[r] > 0.0)) continue;
    total_weight += y1[r] + y0[r];
    active[rows[r].i] = 1;
    if (rows[r].j >= 0) {
      active[rows[r].j] = 1;
      parent[detail::find_root(parent, rows[r].i)] = detail::find_root(parent, rows[r].j);
    }
  }
  for (size_t r = 0; r < rows.size(); ++r)
    if (rows[r].j < 0 && y1[r] + y0[r] > 0.0) has_self[detail::find_root(parent, rows[r].i)] = 1;
  std::vector<int> root(n);
  for (int p = 0; p < n; ++p) root[p] = detail::find_root(parent, p);
  if (total_weight <= 0.0) {
    fit.converged = true;
    return fit;
  }

  auto nll = [&](const std::vector<double>& theta) {
    double s = 0.0;
    for (size_t r = 0; r < rows.size(); ++r) {
      if (!(y1[r] + y0[r] > 0.0)) continue;
      const double z = row_z(rows[r], theta);
      s += y1[r] * detail::softplus(-z) + y0[r] * detail::softplus(z);
    }
    return s;
  };

  std::vector<double> grad(n), hess(static_cast<size_t>(n) * n), step(n), trial(n);
  double current = nll(fit.theta);
  for (int it = 1; it <= max_iterations; ++it) {
    fit.iterations = it;
    std::fill(grad.begin(), grad.end(), 0.0);
    std::fill(hess.begin(), hess.end(), 0.0);
    for (size_t r = 0; r < rows.size(); ++r) {
      const double c = y1[r] + y0[r];
      if (!(c > 0.0)) continue;
      const double z = row_z(rows[r], fit.theta);
      const double p = detail::sigmoid(z);
      const double dz = c * p - y1[r];  // d nll / d z
      const double h = c * p * (1.0 - p);
      const int i = rows[r].i, j = rows[r].j;
      if (j >= 0) {
        grad[i] += dz;
        grad[j] -= dz;
        hess[i * n + i] += h;
        hess[j * n + j] += h;
        hess[i * n + j] -= h;
        hess[j * n + i] -= h;
      } else {
        grad[i] -= dz;
        hess[i * n + i] += h;
      }
    }
    double grad_norm = 0.0;
    for (int p = 0; p < n; ++p) grad_norm = std::max(grad_norm, std::fabs(grad[p]));
    if (grad_norm <= 1e-13 * total_weight) {
      fit.converged = true;
      break;
    }
    // Pin each gauge-free component (see the file comment); players with no data stay at zero.
    for (int p = 0; p < n; ++p) {
      if (!active[p]) {
        hess[p * n + p] = 1.0;
        continue;
      }
      if (has_self[root[p]]) continue;
      for (int q = 0; q < n; ++q)
        if (active[q] && root[q] == root[p]) hess[p * n + q] += 1.0 / n;
    }
    for (int p = 0; p < n; ++p) step[p] = -grad[p];
    if (!detail::cholesky_solve(hess, step, n)) break;  // curvature vanished: ratings diverge

    double slope = 0.0, step_size = 0.0;
    for (int p = 0; p < n; ++p) slope += grad[p] * step[p];
    double t = 1.0, next = current;
    for (int halvings = 0; halvings < 60; ++halvings, t *= 0.5) {
      for (int p = 0; p < n; ++p) trial[p] = fit.theta[p] + t * step[p];
      next = nll(trial);
      if (next <= current + 1e-4 * t * slope) break;
    }
    for (int p = 0; p < n; ++p) step_size = std::max(step_size, std::fabs(t * step[p]));
    fit.theta.swap(trial);
    current = next;
    if (step_size <= 1e-12 * std::max(1.0, *std::max_element(fit.theta.begin(), fit.theta.end(),
                                                             [](double a, double b) { return std::fabs(a) < std::fabs(b); }))) {
      fit.converged = true;
      break;
    }
  }
  // Divergent fits drift to ever larger ratings; a converged one has modest ones.
  for (double v : fit.theta)
    if (!std::isfinite(v) || std::fabs(v) > 700.0) fit.converged = false;
  return fit;
}

// RouteLLM's compute_tiers: split ratings sorted in descending order into at most `num_tiers`
// contiguous groups minimising the summed within-group (population) variance, with its exact
// dynamic program, its 1e9 initial bound and its first-minimum tie-breaking. Returns the tier of
// each sorted position; tiers that the program leaves empty are skipped, as in RouteLLM.
inline std::vector<int> compute_tiers(const std::vector<double>& sorted_ratings, int num_tiers) {
  const int n = static_cast<int>(sorted_ratings.size());
  if (n == 0) throw std::invalid_argument("compute_tiers: no ratings");
  if (num_tiers < 1) throw std::invalid_argument("num_tiers must be >= 1, got " + std::to_string(num_tiers));
  const int m = num_tiers;
  // var[i * n + j]: population variance of sorted_ratings[i..j] (0 when i == j), by Welford.
  std::vector<double> var(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) {
    double mean = 0.0, m2 = 0.0;
    for (int j = i; j < n; ++j) {
      const double x = sorted_ratings[j];
      const double delta = x - mean;
      mean += delta / (j - i + 1);
      m2 += delta * (x - mean);
      var[static_cast<size_t>(i) * n + j] = m2 / (j - i + 1);
    }
  }
  // Only intervals starting at 0 are ever read back, so the program runs on prefixes.
  std::vector<double> prev(n), cur(n);
  std::vector<std::vector<int>> split(m, std::vector<int>(n, 0));
  for (int j = 0; j < n; ++j) prev[j] = var[j];
  for (int tier = 1; tier < m; ++tier) {
    cur[0] = 0.0;
    for (int j = 1; j < n; ++j) {
      double best = 1000000000.0;
      for (int l = 0; l < j; ++l) {
        const double cand = prev[l] + var[static_cast<size_t>(l + 1) * n + j];
        if (best > cand) {
          best = cand;
          split[tier][j] = l;
        }
      }
      cur[j] = best;
    }
    prev.swap(cur);
  }
  std::vector<int> ends;  // last sorted position of each tier
  int cur_n = n;
  for (int tier = m - 1; tier >= 1; --tier) {
    const int s = split[tier][cur_n - 1];
    ends.push_back(s);
    cur_n = s + 1;
  }
  std::reverse(ends.begin(), ends.end());
  ends.push_back(n - 1);
  std::vector<int> tier_of(n, -1);
  int start = 0;
  for (int t = 0; t < static_cast<int>(ends.size()); ++t) {
    for (int p = start; p <= ends[t]; ++p) tier_of[p] = t;
    start = std::max(start, ends[t] + 1);
  }
  return tier_of;
}

}  // namespace rlf
