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
// Existence is decided combinatorially, not by watching an iteration fail. Draw an edge u -> v when
// u beats v with positive weight (a tie draws both edges); a self row is a game against an "anchor"
// node whose rating is fixed at 0. The maximum is finite exactly when every weakly connected
// component is strongly connected (Zermelo's condition). Otherwise the likelihood's supremum is
// approached only as every edge between two strongly connected groups gets an infinite margin,
// while the differences inside each group converge to the maximum of that group's own rows; that is
// what sklearn's nearly unregularised fit drifts towards, and rating_difference() reports those
// limits (and refuses the pairs whose difference no maximising sequence pins down).
//
// The solver is Newton's method on the rows inside strongly connected groups, which is strictly
// concave once each group's constant is removed. It is scale-free, so that weights spanning tens
// of orders of magnitude converge like unit weights (see newton_solve):
//  - steps are taken in a spanning-tree basis whose variables shift clusters of nodes joined by
//    heavier rows, so a cluster tied to the rest by tiny weights has a gradient summed from tiny
//    terms, not a tiny difference of large ones; the system is solved after Jacobi scaling;
//  - steps are judged in rating units: convergence when no row's logit moves by more than 1e-9,
//    damping from the largest move R of any row's logit (each row's log-likelihood has
//    |l'''| <= l'', so for R <= 1 the full step provably decreases it), and for larger R a line
//    search on the sign of the directional derivative, never on differences of large sums;
//  - far from the optimum, variables of very different curvature take separate steps.
// The gauge is sklearn's: its L-BFGS starts at zero and only moves along gradients, which sum to
// zero over each component without self rows, so it ends on the solution whose component sums are
// zero; components with self rows are pinned by the anchor at 0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
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
  // The maximum when it is finite; otherwise each strongly connected group's own maximum (zero
  // sum per unanchored group, absolute for the anchor's group, 0 for singletons).
  std::vector<double> theta;
  bool converged = false;  // the maximum is finite and theta is it
  bool solved = false;     // Newton converged on the rows inside strongly connected groups
  int iterations = 0;
  // Structure over nodes 0..n-1 (players) and n (the anchor of self rows), for rating_difference().
  std::vector<int> group;                     // per node: strongly connected group, -1 if in no weighted row
  std::vector<int> component;                 // per group: weakly connected component
  std::vector<std::vector<int>> group_beats;  // per group: groups it beats in every battle between them
  int anchor_group = -1;                      // group of the anchor, -1 without weighted self rows
};

namespace detail {

inline int find_root(std::vector<int>& parent, int x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

// In-place Cholesky solve of the symmetric positive definite system a x = b (a is n x n, row-major).
inline bool cholesky_solve(std::vector<double>& a, std::vector<double>& b, int n) {
  for (int c = 0; c < n; ++c) {
    double d = a[c * n + c];
    for (int k = 0; k < c; ++k) d -= a[c * n + k] * a[c * n + k];
    if (!(d > 0.0) || !std::isfinite(d)) return false;
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

// Strongly connected components (Kosaraju, iterative). Returns the component of each node;
// components are numbered in a topological order of the condensation (sources first).
inline std::vector<int> strong_components(const std::vector<std::vector<int>>& out) {
  const int n = static_cast<int>(out.size());
  std::vector<std::vector<int>> in(n);
  for (int v = 0; v < n; ++v)
    for (int w : out[v]) in[w].push_back(v);
  std::vector<int> order, comp(n, -1);
  std::vector<char> seen(n, 0);
  std::vector<std::pair<int, size_t>> stack;
  for (int s = 0; s < n; ++s) {
    if (seen[s]) continue;
    seen[s] = 1;
    stack.push_back({s, 0});
    while (!stack.empty()) {
      auto& [v, k] = stack.back();
      if (k < out[v].size()) {
        const int w = out[v][k++];
        if (!seen[w]) seen[w] = 1, stack.push_back({w, 0});
      } else {
        order.push_back(v);
        stack.pop_back();
      }
    }
  }
  int count = 0;
  std::vector<int> todo;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    if (comp[*it] >= 0) continue;
    comp[*it] = count;
    todo.assign(1, *it);
    while (!todo.empty()) {
      const int v = todo.back();
      todo.pop_back();
      for (int w : in[v])
        if (comp[w] < 0) comp[w] = count, todo.push_back(w);
    }
    ++count;
  }
  return comp;
}

// A row's d/dz and d2/dz2 of its negative log-likelihood at z, from one exponential:
//   slope = c * sigmoid(z) - y1, written as y0 - c * sigmoid(-z) when z > 0 so that lopsided rows
//   keep their relative precision; curvature = c * sigmoid(z) * sigmoid(-z).
// c * sigmoid(-|z|) goes through logarithms once sigmoid(-|z|) would underflow (ratings more than
// 700 apart can still be the optimum when weights span 1e-300).
inline void row_terms(double z, double y1, double y0, double& slope, double& curvature) {
  const double c = y1 + y0, a = std::fabs(z);
  double tail, head;  // c * sigmoid(-|z|), sigmoid(|z|)
  if (a < 700.0) {
    const double e = std::exp(-a);
    head = 1.0 / (1.0 + e);
    tail = c * e * head;
  } else {
    head = 1.0;
    tail = std::exp(std::log(c) - a);
  }
  slope = z <= 0 ? tail - y1 : y0 - tail;
  curvature = tail * head;
}

// A row between two nodes: z = theta[u] - theta[v]; y1 is "u beats v".
struct NodeRow {
  int u, v;
  double y1, y0;
};

// Maximises the likelihood of `rows` (theta has one entry per node) up to one additive constant
// per connected group of nodes. Returns whether it converged.
//
// Newton steps are taken in a spanning-tree basis, rebuilt at each iteration until the final coupled
// phase (see below), where Newton's step no longer depends on it: Kruskal's algorithm
// joins nodes by decreasing curvature of the rows between them, and each join adds one variable,
// "shift the joined cluster B against the rest". The gradient of such a variable sums only the rows
// leaving B, none more curved than the join, so it is computed without cancelling large terms, and
// so is its matrix row. A cluster of tiers tied to the rest only by battles of weight 1e-30 then
// converges as precisely as the rest, which per-player coordinates cannot do (the cluster's
// gradient would be the tiny sum of large, noisy terms).
//
// Far from the optimum, a step length that suits the heaviest rows can wreck light ones, or stall
// on them. There the variables are split into "levels" of curvatures within a factor 1000, which
// take their own Newton step and step length, heaviest first (block Gauss-Seidel: every level's
// step decreases the likelihood, judged on rows of its own scale). Once every level takes full,
// small steps, one coupled Newton step over all variables per iteration finishes quadratically.
// Ordinary problems have a single level, and then this is plain damped Newton throughout.
inline bool newton_solve(const std::vector<NodeRow>& rows, int nodes, std::vector<double>& theta, int max_iterations,
                         int& iterations) {
  const size_t K = rows.size();
  if (K == 0) return true;
  std::vector<double> z(K), slope(K), curv(K), dz(K);
  std::vector<std::vector<int>> members(nodes);
  std::vector<int> parent(nodes), level_vars, touched, by_weight;
  std::vector<std::pair<int, int>> nonzero;  // per touched row: (level variable, d z / d phi)
  std::vector<size_t> nonzero_begin;
  std::vector<std::pair<double, size_t>> order;
  std::vector<char> in_b;  // V x nodes: which nodes variable e's cluster B holds
  std::vector<std::pair<int, int>> row_nz;  // per row: (variable e, d z_r / d phi_e) where nonzero
  std::vector<size_t> row_nz_begin;
  std::vector<int> level_pos;
  int V = 0;
  std::vector<double> diag, grad, hess, scale, step;
  auto refresh = [&](size_t r) {
    z[r] = theta[rows[r].u] - theta[rows[r].v];
    row_terms(z[r], rows[r].y1, rows[r].y0, slope[r], curv[r]);
  };
  double previous = std::numeric_limits<double>::infinity();
  bool coupled = false;
  for (int it = 1; it <= max_iterations; ++it) {
    iterations = it;
    for (size_t r = 0; r < K; ++r) refresh(r);
    // Kruskal over rows by decreasing curvature. Newton's step does not depend on the basis, so
    // coupled iterations (near the optimum, where the order is settled) keep the previous one.
    if (!coupled || V == 0) {
      order.clear();
      for (size_t r = 0; r < K; ++r) order.push_back({curv[r], r});
      std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
      std::iota(parent.begin(), parent.end(), 0);
      for (int v = 0; v < nodes; ++v) members[v].assign(1, v);
      in_b.clear();
      for (const auto& [c, r] : order) {
        const int ra = find_root(parent, rows[r].u), rb = find_root(parent, rows[r].v);
        if (ra == rb) continue;
        in_b.resize(in_b.size() + nodes, 0);
        char* mask = in_b.data() + in_b.size() - nodes;
        for (int v : members[rb]) mask[v] = 1;
        parent[rb] = ra;
        members[ra].insert(members[ra].end(), members[rb].begin(), members[rb].end());
        members[rb].clear();
      }
      V = static_cast<int>(in_b.size()) / nodes;
      row_nz.clear();
      row_nz_begin.assign(1, 0);
      for (size_t r = 0; r < K; ++r) {
        for (int e = 0; e < V; ++e) {
          const char* mask = in_b.data() + static_cast<size_t>(e) * nodes;
          if (const int ar = mask[rows[r].u] - mask[rows[r].v]) row_nz.push_back({e, ar});
        }
        row_nz_begin.push_back(row_nz.size());
      }
    }
    diag.assign(V, 0.0);
    for (size_t r = 0; r < K; ++r)
      for (size_t i = row_nz_begin[r]; i < row_nz_begin[r + 1]; ++i) diag[row_nz[i].first] += curv[r];
    by_weight.resize(V);
    std::iota(by_weight.begin(), by_weight.end(), 0);
    std::sort(by_weight.begin(), by_weight.end(), [&](int x, int y) { return diag[x] > diag[y]; });
    double worst = 0.0;
    bool full_steps = true, moved = false;
    for (size_t first = 0; first < by_weight.size();) {
      size_t last = first + 1;  // the level: by_weight[first, last)
      while (last < by_weight.size() && (coupled || diag[by_weight[last]] >= 1e-3 * diag[by_weight[first]])) ++last;
      level_vars.assign(by_weight.begin() + first, by_weight.begin() + last);
      first = last;
      const int m = static_cast<int>(level_vars.size());
      level_pos.assign(V, -1);
      for (int x = 0; x < m; ++x) level_pos[level_vars[x]] = x;
      // Rows this level moves, with their nonzero entries (few: one per cluster boundary crossed).
      touched.clear();
      nonzero.clear();
      nonzero_begin.assign(1, 0);
      for (size_t r = 0; r < K; ++r) {
        for (size_t i = row_nz_begin[r]; i < row_nz_begin[r + 1]; ++i)
          if (const int x = level_pos[row_nz[i].first]; x >= 0) nonzero.push_back({x, row_nz[i].second});
        if (nonzero.size() == nonzero_begin.back()) continue;
        touched.push_back(static_cast<int>(r));
        nonzero_begin.push_back(nonzero.size());
        if (moved) refresh(r);  // an earlier level moved it
      }
      grad.assign(m, 0.0);
      hess.assign(static_cast<size_t>(m) * m, 0.0);
      for (size_t k = 0; k < touched.size(); ++k) {
        const int r = touched[k];
        for (size_t i = nonzero_begin[k]; i < nonzero_begin[k + 1]; ++i) {
          const auto [x, ax] = nonzero[i];
          grad[x] += ax * slope[r];
          for (size_t j = nonzero_begin[k]; j < nonzero_begin[k + 1]; ++j)
            hess[static_cast<size_t>(x) * m + nonzero[j].first] += ax * nonzero[j].second * curv[r];
        }
      }
      // Jacobi scaling: the solve sees a unit diagonal whatever the weights' magnitudes.
      scale.resize(m);
      step.resize(m);
      for (int x = 0; x < m; ++x) {
        const double d = hess[static_cast<size_t>(x) * m + x];
        if (!(d > 0.0) || !std::isfinite(d)) return false;  // curvature underflowed
        scale[x] = 1.0 / std::sqrt(d);
      }
      for (int x = 0; x < m; ++x) {
        for (int y = 0; y < m; ++y) hess[static_cast<size_t>(x) * m + y] *= scale[x] * scale[y];
        step[x] = -grad[x] * scale[x];
      }
      if (!cholesky_solve(hess, step, m)) return false;
      double slope0 = 0.0, R = 0.0;  // phi'(0) and the largest change of any row's logit
      for (int x = 0; x < m; ++x) step[x] *= scale[x], slope0 += grad[x] * step[x];
      for (size_t k = 0; k < touched.size(); ++k) {
        double d = 0.0;
        for (size_t i = nonzero_begin[k]; i < nonzero_begin[k + 1]; ++i) d += nonzero[i].second * step[nonzero[i].first];
        dz[touched[k]] = d;
        R = std::max(R, std::fabs(d));
      }
      if (!std::isfinite(R)) return false;
      worst = std::max(worst, R);
      if (R == 0.0) continue;
      double t = 1.0;
      if (R > 1.0) {
        // phi(t) = nll(theta + t delta) is convex with phi'(0) = -phi''(0) < 0, and every row has
        // |l'''| <= l'', so phi''(t) <= phi''(0) exp(R t) and phi' stays negative up to
        // t = log1p(R) / R. From there, look for a larger t with phi'(t) <= 0 and |phi'(t)| <=
        // |phi'(0)| / 10 (double while still descending, else safeguarded Newton/bisection),
        // moving no row's logit by more than 30 (so that no curvature underflows). Only the signs
        // and sizes of phi' are used, never differences of the large sums phi.
        auto phi = [&](double tt, double& second) {
          double d1 = 0.0, d2 = 0.0;
          for (int r : touched) {
            const double zt = z[r] + tt * dz[r];
            double g1, g2;
            row_terms(zt, rows[r].y1, rows[r].y0, g1, g2);
            d1 += g1 * dz[r];
            d2 += g2 * dz[r] * dz[r];
          }
          second = d2;
          return d1;
        };
        double lo = std::log1p(R) / R, c_lo = 0.0, d_lo = phi(lo, c_lo);
        const double cap = std::max(lo, 30.0 / R);
        double hi = std::numeric_limits<double>::infinity(), trial = std::min(1.0, cap);
        for (int k = 0; k < 60 && d_lo < 0.1 * slope0 && trial > lo; ++k) {
          double c = 0.0;
          const double d = phi(trial, c);
          if (d <= 0.0) lo = trial, d_lo = d, c_lo = c;
          else hi = trial;
          if (std::isinf(hi)) {
            if (lo >= cap) break;
            trial = std::min(2.0 * trial, cap);
          } else {
            double next = c_lo > 0.0 ? lo - d_lo / c_lo : 0.5 * (lo + hi);
            if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
            if (!(next > lo && next < hi)) break;
            trial = next;
          }
        }
        t = lo;
        full_steps = false;
      }
      for (int x = 0; x < m; ++x) {
        const char* mask = in_b.data() + static_cast<size_t>(level_vars[x]) * nodes;
        for (int v = 0; v < nodes; ++v)
          if (mask[v]) theta[v] += t * step[x];
      }
      moved = true;
    }
    // Converged when full steps change no row's logit by more than 1e-9 (the error left is of the
    // order of its square), or when steps this small stop shrinking (the rounding floor).
    if (coupled && full_steps && (worst <= 1e-9 || (worst <= 1e-6 && worst > 0.5 * previous))) return true;
    previous = coupled && full_steps ? worst : std::numeric_limits<double>::infinity();
    coupled = full_steps && worst <= 1e-3;
  }
  return false;
}

}  // namespace detail

// Maximum-likelihood ratings for `n_players` from weighted outcome counts: y1[r] and y0[r] are the
// total weights of row r's "z wins" and "z loses" events. Players in no row with weight keep 0.
// Without a finite maximum, converged is false and theta holds each strongly connected group's
// own fit: ask rating_difference() for the limits.
inline EloFit fit_elo(int n_players, const std::vector<PairRow>& rows, const double* y1, const double* y0,
                      int max_iterations = 200) {
  const int n = n_players, anchor = n_players, nodes = n_players + 1;
  EloFit fit;
  fit.theta.assign(n, 0.0);
  std::vector<size_t> active;
  std::vector<std::vector<int>> beats(nodes);
  std::vector<int> parent(nodes);
  std::iota(parent.begin(), parent.end(), 0);
  std::vector<char> present(nodes, 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!(y1[r] + y0[r] > 0.0)) continue;
    active.push_back(r);
    const int i = rows[r].i, j = rows[r].j >= 0 ? rows[r].j : anchor;
    // pair row: y1 is "i beats j"; self row: z = -theta_i, so y1 is "the anchor beats i"
    const int w1 = rows[r].j >= 0 ? i : anchor, l1 = rows[r].j >= 0 ? j : i;
    if (y1[r] > 0.0) beats[w1].push_back(l1);
    if (y0[r] > 0.0) beats[l1].push_back(w1);
    present[i] = present[j] = 1;
    parent[detail::find_root(parent, i)] = detail::find_root(parent, j);
  }
  // Groups: strongly connected components of the nodes in some weighted row, numbered compactly.
  const std::vector<int> scc = detail::strong_components(beats);
  fit.group.assign(nodes, -1);
  std::vector<int> compact(nodes, -1);
  int n_groups = 0;
  for (int v = 0; v < nodes; ++v) {
    if (!present[v]) continue;
    if (compact[scc[v]] < 0) compact[scc[v]] = n_groups++;
    fit.group[v] = compact[scc[v]];
  }
  fit.component.assign(n_groups, -1);
  fit.group_beats.assign(n_groups, {});
  for (int v = 0; v < nodes; ++v) {
    if (!present[v]) continue;
    fit.component[fit.group[v]] = detail::find_root(parent, v);
    for (int w : beats[v])
      if (fit.group[w] != fit.group[v]) fit.group_beats[fit.group[v]].push_back(fit.group[w]);
  }
  for (auto& e : fit.group_beats) {
    std::sort(e.begin(), e.end());
    e.erase(std::unique(e.begin(), e.end()), e.end());
  }
  fit.anchor_group = fit.group[anchor];

  // The identifiable problem: rows inside one group. Every row qualifies exactly when the maximum is finite.
  std::vector<int> use;
  for (size_t r : active) {
    const int j = rows[r].j >= 0 ? rows[r].j : anchor;
    if (fit.group[rows[r].i] == fit.group[j]) use.push_back(static_cast<int>(r));
  }
  const bool finite = use.size() == active.size();
  // Solve over nodes (players and the anchor, a self row being a game against the anchor), then
  // move to sklearn's gauge: the anchor at 0 in its group, zero sum over each other group.
  std::vector<detail::NodeRow> node_rows;
  for (int r : use) {
    const bool self = rows[r].j < 0;
    node_rows.push_back({self ? anchor : rows[r].i, self ? rows[r].i : rows[r].j, y1[r], y0[r]});
  }
  std::vector<double> theta(nodes, 0.0);
  fit.solved = detail::newton_solve(node_rows, nodes, theta, max_iterations, fit.iterations);
  std::vector<char> solved_node(nodes, 0);
  for (const auto& row : node_rows) solved_node[row.u] = solved_node[row.v] = 1;
  std::vector<double> sum(n_groups, 0.0);
  std::vector<int> count(n_groups, 0);
  for (int p = 0; p < n; ++p)
    if (solved_node[p]) sum[fit.group[p]] += theta[p], ++count[fit.group[p]];
  for (int p = 0; p < n; ++p) {
    if (!solved_node[p]) continue;
    const int g = fit.group[p];
    fit.theta[p] = theta[p] - (g == fit.anchor_group ? theta[anchor] : sum[g] / count[g]);
    if (!std::isfinite(fit.theta[p])) fit.solved = false;
  }
  fit.converged = finite && fit.solved;
  return fit;
}

namespace detail {

inline bool group_reaches(const EloFit& fit, int from, int to) {
  std::vector<char> seen(fit.group_beats.size(), 0);
  std::vector<int> todo{from};
  seen[from] = 1;
  while (!todo.empty()) {
    const int g = todo.back();
    todo.pop_back();
    if (g == to) return true;
    for (int h : fit.group_beats[g])
      if (!seen[h]) seen[h] = 1, todo.push_back(h);
  }
  return false;
}

// Limit of theta_a - theta_b for two nodes of one weakly connected component: finite inside a
// group, +-inf when one group beats the other through a chain of one-sided results, NaN otherwise.
inline double linked_difference(const EloFit& fit, int a, int b) {
  const int ga = fit.group[a], gb = fit.group[b];
  if (ga == gb) {
    const int n = static_cast<int>(fit.theta.size());
    return (a < n ? fit.theta[a] : 0.0) - (b < n ? fit.theta[b] : 0.0);
  }
  if (group_reaches(fit, ga, gb)) return std::numeric_limits<double>::infinity();
  if (group_reaches(fit, gb, ga)) return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

// Limit of player p's rating in sklearn's gauge: relative to the anchor (fixed at 0) when its
// component has self rows, else relative to the component's mean; 0 for a player in no row.
inline double gauged_rating(const EloFit& fit, int p) {
  const int g = fit.group[p];
  if (g < 0) return 0.0;
  const int anchor = static_cast<int>(fit.theta.size());
  if (fit.anchor_group >= 0 && fit.component[g] == fit.component[fit.anchor_group])
    return linked_difference(fit, p, anchor);
  double finite_sum = 0.0;
  int members = 0;
  bool up = false, down = false;
  for (int q = 0; q < anchor; ++q) {
    if (fit.group[q] < 0 || fit.component[fit.group[q]] != fit.component[g]) continue;
    const double d = linked_difference(fit, p, q);
    ++members;
    if (std::isnan(d)) return d;
    if (std::isinf(d)) (d > 0 ? up : down) = true;
    else finite_sum += d;
  }
  if (up && down) return std::numeric_limits<double>::quiet_NaN();  // the mean moves at free rates
  if (up || down) return up ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  return finite_sum / members;
}

}  // namespace detail

// The limit of theta_a - theta_b along every sequence of ratings whose likelihood approaches the
// supremum (in sklearn's gauge): the fit's difference when the maximum is finite; +inf / -inf when
// a's group beats b's group (or the reverse) through a chain of one-sided results; NaN when the
// likelihood leaves the difference free. `why`, when given, then explains, naming players by `label`.
inline double rating_difference(const EloFit& fit, int a, int b, std::string* why = nullptr,
                                const std::function<std::string(int)>& label = nullptr) {
  if (fit.converged || a == b) return fit.theta[a] - fit.theta[b];
  const int ga = fit.group[a], gb = fit.group[b];
  double d;
  if (ga >= 0 && gb >= 0 && fit.component[ga] == fit.component[gb])
    d = detail::linked_difference(fit, a, b);
  else
    d = detail::gauged_rating(fit, a) - detail::gauged_rating(fit, b);
  if (std::isnan(d) && why) {
    const int anchor = static_cast<int>(fit.theta.size());
    auto name = [&](int v) {
      if (v == anchor) return std::string("the zero reference of same-tier battles");
      return label ? label(v) : "player " + std::to_string(v);
    };
    auto members = [&](int g) {
      std::string s;
      for (int v = 0; v <= anchor; ++v)
        if (fit.group[v] == g) s += (s.empty() ? "" : " + ") + name(v);
      return "{" + s + "}";
    };
    std::string order;
    for (size_t g = 0; g < fit.group_beats.size(); ++g)
      for (int h : fit.group_beats[g])
        order += (order.empty() ? "" : "; ") + members(static_cast<int>(g)) + " > " + members(h);
    *why = "the weighted battles have no finite maximum-likelihood ratings: some groups win every battle "
           "(no losses, no ties) against others (" + order + "), so the likelihood only approaches its "
           "supremum as those rating gaps grow without bound, and " + name(a) + " and " + name(b) +
           " are not ordered by that chain of one-sided results: their rating difference, and the win rate, "
           "can approach any value";
  }
  return d;
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
